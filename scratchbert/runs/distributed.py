"""Several processes: whether this is one of them, the one tokenizer they share, ending the process group."""

import gc
import pickle
import tempfile
from pathlib import Path

import torch.distributed as dist
from transformers import AutoTokenizer


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def tokenizer_for_run(load_or_train):
    """One tokenizer for every process of a run, on every node: global rank 0 loads or trains it.

    `main_process_first` is per node, and WordPiece training is not deterministic (two trainings on one corpus
    give some tokens other ids), so no other rank may train its own. Rank 0's saved files travel to every rank
    through torch.distributed (no shared disk needed) and every rank, rank 0 included, loads those same files.
    If rank 0 fails (a tokenizer that does not load), every rank raises its error instead of waiting forever.
    """
    if not is_distributed():
        return load_or_train()
    payload = [None]
    if dist.get_rank() == 0:
        try:
            with tempfile.TemporaryDirectory() as folder:
                load_or_train().save_pretrained(folder)
                payload[0] = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        except Exception as error:
            try:
                pickle.dumps(error)
                payload[0] = error
            except Exception:  # an error that cannot travel: its message does
                payload[0] = RuntimeError(f"{type(error).__name__}: {error}")
    dist.broadcast_object_list(payload, src=0)
    if isinstance(payload[0], Exception):
        raise payload[0]
    with tempfile.TemporaryDirectory() as folder:
        for name, data in payload[0].items():
            (Path(folder) / name).write_bytes(data)
        return AutoTokenizer.from_pretrained(folder)



def end_process_group():
    """Destroy the process group, and free its worker threads, while the interpreter is still whole.

    Left to interpreter exit, a gloo worker thread can still be dropping the tensors of the last all_gather when
    Python finalizes; it cannot take the GIL and aborts the rank ("terminate called without an active exception",
    exit -6; pytorch/pytorch#190489), failing a run that had saved everything. destroy_process_group alone is not
    enough: the Trainer's DDP wrapper holds the group too, so the collection here frees it (its destructor joins
    the worker threads without the GIL). transformers' Trainer.end() (5.24+) destroys the group but not the wrapper.
    """
    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()
