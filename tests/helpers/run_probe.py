"""One rank of a script run under torchrun, recording what this rank ended with.

    python tests/helpers/run_probe.py pretraining|classification PROBE_DIR SCRIPT_ARGS...

Runs `scratchbert.<module>.main(SCRIPT_ARGS)` unchanged, except that its final save is observed: after
`save_final_model` returns on every rank, each rank writes PROBE_DIR/rank<R>.json with the sha256 of its
tokenizer's vocabulary and of its weights, and the world size; rank 0 also loads the saved folder with the
Auto class and records how far its outputs are from the in-memory model's on a fixed batch.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoModelForPreTraining, AutoModelForSequenceClassification

import scratchbert.classification
import scratchbert.pretraining

module_name, probe_dir, script_args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
module = getattr(scratchbert, module_name)
auto_class = AutoModelForPreTraining if module_name == "pretraining" else AutoModelForSequenceClassification
save_final_model = module.save_final_model


def observed_save(trainer, output_dir):
    save_final_model(trainer, output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    vocab = json.dumps(sorted(trainer.processing_class.get_vocab().items()))
    weights = b"".join(p.detach().float().contiguous().numpy().tobytes() for p in model.state_dict().values())
    rank = dist.get_rank() if dist.is_initialized() else 0
    report = {
        "rank": rank,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "tokenizer": hashlib.sha256(vocab.encode()).hexdigest(),
        "weights": hashlib.sha256(weights).hexdigest(),
    }
    if rank == 0:
        batch = trainer.processing_class(["the first sentence of a pair"], ["and its second sentence"], return_tensors="pt")
        loaded = auto_class.from_pretrained(output_dir).eval()
        model.eval()
        with torch.no_grad():
            ours, theirs = model(**batch), loaded(**batch)
        first = "prediction_logits" if module_name == "pretraining" else "logits"
        report["max_output_difference"] = max(
            float((getattr(ours, name) - getattr(theirs, name)).abs().max())
            for name in (first, "seq_relationship_logits") if getattr(ours, name, None) is not None
        )
    probe_dir.mkdir(parents=True, exist_ok=True)
    (probe_dir / f"rank{rank}.json").write_text(json.dumps(report))


module.save_final_model = observed_save
sys.exit(module.main(script_args))
