"""Run under torchrun with 2 CPU processes: one Trainer step of ScratchBert pretraining over gloo.

Each rank writes what it saw (rank, world size, the ids of its first batch) and a checksum of its weights
after the step, so the test can check that ranks saw different data and ended with identical weights.
"""

import hashlib
import json
import sys

import torch
import torch.distributed as dist
from transformers import AutoTokenizer, Trainer, TrainingArguments

from scratchbert import ScratchBertConfig, ScratchBertForPreTraining, train_wordpiece_tokenizer
from scratchbert.corpus import load_documents
from scratchbert.pretraining_data import DataCollatorForPretraining, build_dataset
from scratchbert.runs.distributed import end_process_group

out_dir = sys.argv[1]


class RecordingTrainer(Trainer):
    first_batch = None

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.first_batch is None:
            self.first_batch = inputs["input_ids"].tolist()
        return super().training_step(model, inputs, num_items_in_batch)


args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=4, max_steps=1, report_to="none",
                         save_strategy="no", use_cpu=True, seed=0, ddp_backend="gloo")
documents = load_documents(corpus="synthetic", max_documents=200)
# WordPiece training is not deterministic across processes: rank 0 trains and saves, the other rank loads.
with args.main_process_first():
    if args.process_index == 0:
        train_wordpiece_tokenizer(documents["text"], vocab_size=500, model_max_length=64, save_directory=f"{out_dir}/tokenizer")
tokenizer = AutoTokenizer.from_pretrained(f"{out_dir}/tokenizer")
dataset = build_dataset(documents, tokenizer, max_seq_length=64, seed=0, description="train")
config = ScratchBertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64)
torch.manual_seed(0)
model = ScratchBertForPreTraining(config)
trainer = RecordingTrainer(model=model, args=args, train_dataset=dataset,
                           data_collator=DataCollatorForPretraining(tokenizer=tokenizer))
trainer.train()
weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
report = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "backend": dist.get_backend(),
          "first_batch": trainer.first_batch, "weights": weights, "args_world_size": args.world_size}
with open(f"{out_dir}/rank{dist.get_rank()}.json", "w") as f:
    json.dump(report, f)
del trainer
end_process_group()  # as the scripts do: a gloo group left to interpreter exit can abort a rank
