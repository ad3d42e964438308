"""Fine-tune a pretrained ScratchBert to tag words (named entities: CoNLL files or a Hub dataset such as conll2003).

    python run_token_classification.py configs/ner_conll2003.yaml --model_name_or_path outputs/pretrain-wikipedia-30min
    python run_token_classification.py configs/ner_conll2003.yaml --model_name_or_path outputs/pretrain-wikipedia-30min --random_init true --output_dir outputs/ner-conll2003-random-init

Each run writes its own folder (the first the config's outputs/ner-conll2003); a run into a folder that holds one
moves the earlier run (model, results.json, checkpoints) into superseded-<time>/ there.

Everything lives in scratchbert.token_classification; see docs/fine-tuning.md for the options.
"""

import sys

from scratchbert.token_classification import main

if __name__ == "__main__":
    sys.exit(main())
