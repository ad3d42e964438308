"""Several processes and machines: two torchrun "nodes" on this machine, the accelerate configs, FSDP2 on CPU.

Each two-node test launches `torchrun --nnodes 2 --nproc_per_node 1` twice on localhost (c10d rendezvous,
gloo), each "node" with a datasets cache of its own as separate machines have, and no --use_cpu (the scripts
set it when several processes find no GPU). tests/helpers/run_probe.py records what every rank ended with.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from transformers import AutoTokenizer

from scratchbert.cli import packaged_config
from scratchbert.runs import is_complete_checkpoint
from conftest import REPO_ROOT, free_port, run_on_ranks, tiny_config

PROBE = REPO_ROOT / "tests" / "helpers" / "run_probe.py"
TINY_MODEL = [
    "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
    "--max_position_embeddings", "64", "--max_seq_length", "64", "--per_device_train_batch_size", "4",
    "--report_to", "none", "--logging_steps", "1", "--save_steps", "2", "--ddp_find_unused_parameters", "false",
]


def two_nodes(tmp_path, module: str, probe_dir, *args, timeout=600):
    """Both "machines" of a two-node torchrun launch; each must exit 0."""
    port = free_port()
    processes = []
    for node in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_DATASETS_CACHE": str(tmp_path / f"node{node}-cache")}
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", f"scratchbert-{port}",
            str(PROBE), module, str(probe_dir), *args,
        ]
        processes.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert process.returncode == 0, stderr[-3000:]


def ranks_of(probe_dir):
    return [json.loads((probe_dir / f"rank{r}.json").read_text()) for r in (0, 1)]


def vocab_hash(folder):
    import hashlib

    vocab = json.dumps(sorted(AutoTokenizer.from_pretrained(folder).get_vocab().items()))
    return hashlib.sha256(vocab.encode()).hexdigest()


@pytest.mark.slow
def test_pretraining_on_two_nodes_one_tokenizer_one_model_resumable(tmp_path):
    out = tmp_path / "out"
    args = ["--output_dir", str(out), "--output", str(tmp_path / "results.json"), "--vocab_size", "400",
            "--max_steps", "4", *TINY_MODEL]
    two_nodes(tmp_path, "pretraining", tmp_path / "first", *args)
    ranks = ranks_of(tmp_path / "first")
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["tokenizer"] == ranks[1]["tokenizer"] == vocab_hash(out), "one tokenizer on every node"
    assert ranks[0]["weights"] == ranks[1]["weights"], "both ranks end with the same weights"
    assert ranks[0]["max_output_difference"] < 1e-5, "the saved folder gives the in-memory model's outputs"
    assert json.loads((tmp_path / "results.json").read_text())["world_size"] == 2
    assert is_complete_checkpoint(out / "checkpoint-4")

    # Resumed on two nodes (caches gone): the checkpoint's tokenizer on every rank, training goes on from step 4.
    for node in (0, 1):
        shutil.rmtree(tmp_path / f"node{node}-cache")
    resumed = ["--resume_from_checkpoint", "latest", *args[:-len(TINY_MODEL) - 2], "--max_steps", "6", *TINY_MODEL]
    two_nodes(tmp_path, "pretraining", tmp_path / "resumed", *resumed)
    ranks = ranks_of(tmp_path / "resumed")
    assert ranks[0]["tokenizer"] == ranks[1]["tokenizer"] == vocab_hash(out / "checkpoint-4")
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 6


@pytest.mark.slow
def test_classification_on_two_nodes_one_tokenizer_one_model_resumable(tmp_path):
    # The offline default with no checkpoint: rank 0 trains the tokenizer, the other node loads it.
    out = tmp_path / "out"
    args = ["--output_dir", str(out), "--output", str(tmp_path / "results.json"), "--vocab_size", "400",
            "--save_strategy", "steps", *TINY_MODEL]
    two_nodes(tmp_path, "classification", tmp_path / "first", *args, "--max_steps", "4")
    ranks = ranks_of(tmp_path / "first")
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["tokenizer"] == ranks[1]["tokenizer"] == vocab_hash(out), "one tokenizer on every node"
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["max_output_difference"] < 1e-5
    assert is_complete_checkpoint(out / "checkpoint-4")

    for node in (0, 1):  # a fresh WordPiece training would now give other ids: the checkpoint's must be used
        shutil.rmtree(tmp_path / f"node{node}-cache")
    resumed = [*args, "--max_steps", "6", "--resume_from_checkpoint", "latest"]
    two_nodes(tmp_path, "classification", tmp_path / "resumed", *resumed)
    ranks = ranks_of(tmp_path / "resumed")
    assert ranks[0]["tokenizer"] == ranks[1]["tokenizer"] == vocab_hash(out / "checkpoint-4")
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 6


# --------------------------------------------------------------------------------------------------------------
# The accelerate configs
# --------------------------------------------------------------------------------------------------------------

ACCELERATE_CONFIGS = ["single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero2"]


@pytest.mark.parametrize("name", ACCELERATE_CONFIGS)
def test_accelerate_configs_load_with_accelerates_reader(name):
    config = load_config_from_file(str(packaged_config(f"accelerate/{name}.yaml")))
    expected = {"single_gpu": "NO", "multi_gpu": "MULTI_GPU", "multi_node": "MULTI_GPU", "fsdp": "FSDP",
                "deepspeed_zero2": "DEEPSPEED"}[name]
    assert config.distributed_type.value == expected
    if name == "multi_node":
        assert config.num_machines == 2 and config.rdzv_backend == "c10d"
    if name == "fsdp":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        assert config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "ScratchBertLayer"
    if name == "deepspeed_zero2":
        assert config.deepspeed_config["zero_stage"] == 2


def test_fsdp_config_wraps_scratchbert_layers():
    # The class named in fsdp.yaml is the one accelerate's transformer wrap policy finds in the model.
    from accelerate.utils.dataclasses import get_module_class_from_name

    from scratchbert import ScratchBertForPreTraining
    from scratchbert.modeling_scratchbert import ScratchBertLayer

    name = load_config_from_file(str(packaged_config("accelerate/fsdp.yaml"))).fsdp_config["fsdp_transformer_layer_cls_to_wrap"]
    assert get_module_class_from_name(ScratchBertForPreTraining(tiny_config()), name) is ScratchBertLayer


def eval_inputs(batch):
    """A held-out batch as the pretraining evaluation gets it: a few labelled positions, NSP labels."""
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 1::4] = batch["input_ids"][:, 1::4]
    labels[batch["attention_mask"] == 0] = -100
    return {**batch, "labels": labels, "next_sentence_label": torch.tensor([0, 1, 0])}


def shard_as_accelerate_does(model):
    """FSDP2 as accelerate applies it: fully_shard each ScratchBertLayer (fsdp.yaml's wrap class), then the root."""
    from torch.distributed.fsdp import fully_shard

    from scratchbert.modeling_scratchbert import ScratchBertLayer

    for module in model.modules():
        if isinstance(module, ScratchBertLayer):
            fully_shard(module)
    fully_shard(model)


def fsdp_ranks(rank, world_size, out):
    """FSDP2 as accelerate applies it (fully_shard per ScratchBertLayer, then the root), over gloo on the CPU."""
    from pathlib import Path

    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from scratchbert import ScratchBertForPreTraining
    from scratchbert.objectives import labelled_predictions
    from conftest import make_batch

    dist.init_process_group("gloo")
    config = tiny_config()
    torch.manual_seed(0)
    model = ScratchBertForPreTraining(config)
    shard_as_accelerate_does(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(3):
        batch = make_batch(config, seed=10 * rank + step)
        loss = model(**batch, labels=batch["input_ids"], next_sentence_label=torch.zeros(3, dtype=torch.long)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    probe = make_batch(config, seed=99)
    with torch.no_grad():
        logits = model(**probe).prediction_logits  # the sharded model, in memory
        # The pretraining evaluation, right after a training step (it once reached into submodules and met
        # still-sharded embeddings: "got mixed torch.Tensor and DTensor").
        evaluated = labelled_predictions(model, eval_inputs(probe))
    # What accelerate does for FULL_STATE_DICT: the full weights gathered on rank 0 for save_pretrained.
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        fresh = ScratchBertForPreTraining(config)
        fresh.save_pretrained(out, state_dict=state)
        torch.save({"logits": logits, "probe": probe, "evaluated": evaluated}, Path(out) / "in_memory.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp2_on_two_cpu_processes_saves_a_folder_that_loads(tmp_path):
    from transformers import AutoModelForPreTraining

    from scratchbert.objectives import labelled_predictions

    run_on_ranks(fsdp_ranks, str(tmp_path))
    saved = torch.load(tmp_path / "in_memory.pt")
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        logits = loaded(**saved["probe"]).prediction_logits
    torch.testing.assert_close(logits, saved["logits"], rtol=0, atol=1e-5)
    with torch.no_grad():
        loss, outputs, _ = labelled_predictions(loaded, eval_inputs(saved["probe"]))
    torch.testing.assert_close(loss, saved["evaluated"][0], rtol=0, atol=1e-5)
    for ours, theirs in zip(outputs, saved["evaluated"][1]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert not torch.allclose(logits, AutoModelForPreTraining.from_config(loaded.config).eval()(**saved["probe"]).prediction_logits)


@pytest.mark.slow
def test_streamed_mlm_only_pretraining_on_two_nodes(tmp_path):
    # Each rank reads its own share of the stream; MLM-only under DDP with ddp_find_unused_parameters false.
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(
        json.dumps({"text": " ".join(f"Document {d} sentence {s} talks about topic {d % 7}." for s in range(6))})
        for d in range(120)
    ))
    args = ["--output_dir", str(tmp_path / "out"), "--output", str(tmp_path / "results.json"), "--train_file", str(corpus),
            "--streaming", "true", "--mlm_only", "true", "--max_eval_documents", "10", "--vocab_size", "300",
            "--max_steps", "6", *TINY_MODEL]
    two_nodes(tmp_path, "pretraining", tmp_path / "probe", *args)
    ranks = ranks_of(tmp_path / "probe")
    assert ranks[0]["tokenizer"] == ranks[1]["tokenizer"] and ranks[0]["weights"] == ranks[1]["weights"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["world_size"] == 2 and results["steps"] == 6


def fsdp_rtd_ranks(rank, world_size, out):
    """Replaced-token detection under FSDP2 (fully_shard per ScratchBertLayer of both models, then the root, which
    holds the shared embeddings), over gloo: train, evaluate, gather the full weights, export on rank 0."""
    from pathlib import Path

    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from scratchbert.objectives import rtd_predictions
    from scratchbert.replaced_token_detection import ReplacedTokenDetectionModel
    from conftest import make_batch

    dist.init_process_group("gloo")
    config = rtd_tiny_config()
    torch.manual_seed(0)
    model = ReplacedTokenDetectionModel(config)
    shard_as_accelerate_does(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(3):
        inputs = eval_inputs(make_batch(config, seed=10 * rank + step))
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    probe = eval_inputs(make_batch(config, seed=99))
    with torch.no_grad():
        evaluated = rtd_predictions(model, probe, torch.Generator().manual_seed(5))
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        ReplacedTokenDetectionModel(config).save_discriminator_and_generator(out, state_dict=state)
        torch.save({"probe": probe, "evaluated": evaluated, "state": state}, Path(out) / "in_memory.pt")
    dist.barrier()
    dist.destroy_process_group()


def rtd_tiny_config():
    from scratchbert.replaced_token_detection import generator_config

    config = tiny_config(hidden_size=64, num_attention_heads=2, intermediate_size=64, pretraining_objective="rtd")
    config.rtd_generator, config.rtd_loss_weight = generator_config(config, 0.5), 50.0
    return config


@pytest.mark.slow
def test_fsdp2_trains_and_exports_replaced_token_detection(tmp_path):
    from scratchbert import ScratchBertForMaskedLM, ScratchBertForReplacedTokenDetection
    from scratchbert.objectives import rtd_predictions
    from scratchbert.replaced_token_detection import ReplacedTokenDetectionModel

    run_on_ranks(fsdp_rtd_ranks, str(tmp_path))
    saved = torch.load(tmp_path / "in_memory.pt")
    # The gathered weights, in an unsharded pair, evaluate as the sharded one did.
    model = ReplacedTokenDetectionModel(rtd_tiny_config())
    missing, unexpected = model.load_state_dict(saved["state"], strict=False)
    assert not unexpected and all(k.startswith("generator.") for k in missing)  # only the shared tensors' aliases
    with torch.no_grad():
        loss, outputs, _ = rtd_predictions(model.eval(), saved["probe"], torch.Generator().manual_seed(5))
    torch.testing.assert_close(loss, saved["evaluated"][0], rtol=0, atol=1e-5)
    for ours, theirs in zip(outputs, saved["evaluated"][1]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    # The export: the discriminator and the generator hold those weights (the generator its shared embeddings too).
    discriminator = ScratchBertForReplacedTokenDetection.from_pretrained(tmp_path)
    generator = ScratchBertForMaskedLM.from_pretrained(tmp_path / "generator")
    for name, tensor in discriminator.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, model.generator.state_dict()[name]), name
