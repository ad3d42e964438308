"""Pretrain a ScratchBert with masked language modelling + next sentence prediction.

    python run_pretraining.py                                   # offline default, configs/pretrain_offline.yaml
    python run_pretraining.py configs/pretrain_wikipedia_sample.yaml --max_steps 2000
    accelerate launch run_pretraining.py configs/pretrain_bert_base_wikipedia.yaml

Everything lives in scratchbert.pretraining; see the README for the options.
"""

import sys

from scratchbert.pretraining import main

if __name__ == "__main__":
    sys.exit(main())
