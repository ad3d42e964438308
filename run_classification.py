"""Fine-tune a pretrained ScratchBert to classify sentence pairs (QQP, GLUE, local files, NSP-style pairs).

    python run_classification.py                                   # offline default, configs/classify_offline.yaml
    python run_classification.py configs/classify_qqp_shared.yaml --model_name_or_path outputs/pretrain-wikipedia-sample
    accelerate launch run_classification.py configs/classify_qqp.yaml --model_name_or_path my-checkpoint

Everything lives in scratchbert.classification; see the README for the options.
"""

import sys

from scratchbert.classification import main

if __name__ == "__main__":
    sys.exit(main())
