"""Saved folders load anywhere through trust_remote_code, feed pipelines, and push_to_hub uploads them."""

import json
import re
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from scratchbert import ScratchBertForPreTraining, ScratchBertForReplacedTokenDetection, ScratchBertForSequenceClassification
from scratchbert.modeling_scratchbert import AUTO_MAP
from conftest import REPO_ROOT, tiny_config

# Runs in a fresh interpreter where `import scratchbert` fails, as on a machine without ScratchBert installed.
FRESH_PROCESS_LOAD = r"""
import json, sys, tempfile
sys.modules["scratchbert"] = None  # make the package unimportable
import torch, transformers
from safetensors.torch import load_file
folder = sys.argv[1]
saved = load_file(folder + "/model.safetensors")
report = {}
for auto_name in json.load(open(folder + "/config.json"))["auto_map"]:
    if auto_name == "AutoConfig":
        continue
    auto = getattr(transformers, auto_name)
    model = auto.from_pretrained(folder, trust_remote_code=True)
    assert "transformers_modules" in type(model).__module__, type(model).__module__
    own = model.state_dict()
    prefix = "" if auto_name == "AutoModel" else "scratchbert."
    shared = [k for k in saved if (k.removeprefix("scratchbert.") if not prefix else k) in own]
    for key in shared:
        assert torch.equal(own[key.removeprefix("scratchbert.") if not prefix else key], saved[key]), key
    # Re-save to a second folder and load again.
    second = tempfile.mkdtemp()
    model.save_pretrained(second)
    again = auto.from_pretrained(second, trust_remote_code=True)
    for key, value in again.state_dict().items():
        assert torch.equal(value, own[key]), key
    report[auto_name] = [type(model).__name__, len(shared)]
print(json.dumps(report))
"""


def saved_pretraining_folder(tmp_path, tokenizer_dir=None):
    torch.manual_seed(0)
    model = ScratchBertForPreTraining(tiny_config(vocab_size=120))
    model.save_pretrained(tmp_path)
    if tokenizer_dir is not None:
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    return model


def test_save_writes_full_auto_map_and_code(tmp_path):
    saved_pretraining_folder(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP
    assert config["model_type"] == "scratchbert" and config["architectures"] == ["ScratchBertForPreTraining"]
    assert (tmp_path / "modeling_scratchbert.py").read_text() == (
        REPO_ROOT / "scratchbert" / "modeling_scratchbert.py"
    ).read_text()
    assert (tmp_path / "configuration_scratchbert.py").is_file()


def test_modeling_file_imports_only_torch_transformers_config_and_the_standard_library():
    source = (REPO_ROOT / "scratchbert" / "modeling_scratchbert.py").read_text()
    imports = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all(name.split(".")[0] in {"torch", "transformers", "dataclasses", "json", "os"} or name == ".configuration_scratchbert" for name in imports), imports
    assert not any("models.bert" in name for name in imports)


@pytest.mark.slow
def test_fresh_process_loads_every_head_with_trust_remote_code(tmp_path):
    saved_pretraining_folder(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_LOAD, str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) == set(AUTO_MAP) - {"AutoConfig"}
    assert report["AutoModelForPreTraining"] == ["ScratchBertForPreTraining", len(ScratchBertForPreTraining(tiny_config(vocab_size=120)).state_dict()) - 1]
    assert all(count > 0 for _, count in report.values())


def test_pipelines(tmp_path, tokenizer_dir):
    saved_pretraining_folder(tmp_path, tokenizer_dir)
    fill = pipeline("fill-mask", model=str(tmp_path), top_k=3)
    predictions = fill("the cat sat on the [MASK].")
    assert len(predictions) == 3 and all("token_str" in p for p in predictions)

    features = pipeline("feature-extraction", model=str(tmp_path))
    vectors = torch.tensor(features("the cat sat.")[0])
    assert vectors.shape[-1] == 32

    torch.manual_seed(0)
    classifier_dir = tmp_path / "classifier"
    ScratchBertForSequenceClassification(tiny_config(vocab_size=120, id2label={0: "no", 1: "yes"}, label2id={"no": 0, "yes": 1})).save_pretrained(classifier_dir)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(classifier_dir)
    classify = pipeline("text-classification", model=str(classifier_dir))
    result = classify({"text": "the cat sat.", "text_pair": "the dog sleeps."})
    assert result[0]["label"] in {"no", "yes"} if isinstance(result, list) else result["label"] in {"no", "yes"}


@pytest.mark.slow
def test_pipeline_with_trust_remote_code_in_fresh_process(tmp_path, tokenizer_dir):
    saved_pretraining_folder(tmp_path, tokenizer_dir)
    code = (
        "import sys; sys.modules['scratchbert'] = None\n"
        "from transformers import pipeline\n"
        f"fill = pipeline('fill-mask', model={str(tmp_path)!r}, trust_remote_code=True, top_k=2)\n"
        "print(len(fill('the cat sat on the [MASK].')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "2"


def fake_hub(monkeypatch) -> list:
    """Up to the network boundary: every commit handed to the Hub client, as (repo_id, {path_in_repo: bytes})."""
    import huggingface_hub
    import transformers.utils.hub as transformers_hub

    commits = []

    def fake_create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def fake_create_commit(self, repo_id, operations, **kwargs):
        files = {}
        for op in operations:
            source = op.path_or_fileobj
            files[op.path_in_repo] = open(source, "rb").read() if isinstance(source, str) else bytes(source)
        commits.append((repo_id, files))
        return None

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", fake_create_commit)
    monkeypatch.setattr(  # the stock card would be fetched from the Hub; build it locally instead
        transformers_hub, "create_and_tag_model_card", lambda repo_id, tags=None, token=None: huggingface_hub.ModelCard("---\nlibrary_name: transformers\n---\n# card\n")
    )
    return commits


SAVED_FILES = ("config.json", "model.safetensors", "modeling_scratchbert.py", "configuration_scratchbert.py")


def test_push_to_hub_uploads_the_saved_folder(tmp_path, monkeypatch):
    """The commit handed to the Hub client holds exactly the exported folder."""
    commits = fake_hub(monkeypatch)
    model = ScratchBertForPreTraining(tiny_config())
    model.push_to_hub("someone/scratchbert-tiny", token="hf_fake")
    (repo_id, files), = commits
    assert repo_id == "someone/scratchbert-tiny"
    model.save_pretrained(tmp_path)
    for name in SAVED_FILES:
        assert files[name] == (tmp_path / name).read_bytes(), name
    assert json.loads(files["config.json"])["auto_map"] == AUTO_MAP


@pytest.mark.parametrize("model_class", [ScratchBertForPreTraining, ScratchBertForReplacedTokenDetection])
def test_save_pretrained_with_push_to_hub_uploads_the_whole_folder(tmp_path, monkeypatch, model_class):
    """The code files too, for the head no Auto class names: they are copied after transformers' own save."""
    commits = fake_hub(monkeypatch)
    model = model_class(tiny_config())
    model.save_pretrained(tmp_path / "folder", push_to_hub=True, repo_id="someone/tiny", token="hf_fake")
    (repo_id, files), = commits
    assert repo_id == "someone/tiny"
    for name in SAVED_FILES:
        assert files[name] == (tmp_path / "folder" / name).read_bytes(), name


@pytest.mark.slow
def test_remote_code_never_runs_without_trust_remote_code(tmp_path):
    """A checkpoint whose code would run something is refused unless the user passes trust_remote_code."""
    saved_pretraining_folder(tmp_path)
    marker = tmp_path / "code-ran"
    modeling = tmp_path / "modeling_scratchbert.py"
    modeling.write_text(f"open({str(marker)!r}, 'w').write('x')\n" + modeling.read_text())
    code = (
        "import sys; sys.modules['scratchbert'] = None\n"
        "from transformers import AutoModel\n"
        f"try:\n    AutoModel.from_pretrained({str(tmp_path)!r})\nexcept Exception as error:\n    print('refused:', type(error).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert "refused:" in done.stdout, done.stdout + done.stderr[-2000:]
    assert not marker.exists(), "the checkpoint's code ran without trust_remote_code"
    # In-process, `import scratchbert` serves the installed classes: the planted file is not imported either.
    from transformers import AutoModel

    AutoModel.from_pretrained(tmp_path)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("task, layout", [
    ("feature-extraction", {}),
    ("fill-mask", {}),
    ("text-classification", {}),
    ("feature-extraction", {"attention_position_bias": "alibi"}),
    ("text-classification", {"layer_norm_position": "pre"}),
])
def test_onnx_export_matches_pytorch_in_onnxruntime(tmp_path, tokenizer_dir, task, layout):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from scratchbert.export import INPUT_NAMES, export_onnx, padded_batch

    model_class = {"feature-extraction": ScratchBertForPreTraining, "fill-mask": ScratchBertForPreTraining,
                   "text-classification": ScratchBertForSequenceClassification}[task]
    torch.manual_seed(0)
    model = model_class(tiny_config(num_labels=3, **layout)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path / "ckpt")
    report = export_onnx(str(tmp_path / "ckpt"), tmp_path / "onnx", task=task if task == "feature-extraction" else None)
    assert report["task"] == task and report["max_difference_vs_pytorch"] <= 1e-4
    assert {"model.onnx", "config.json", "tokenizer.json", "onnx_export.json"} <= {p.name for p in (tmp_path / "onnx").iterdir()}

    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert all(isinstance(d, str) for i in session.get_inputs() for d in i.shape)  # batch and sequence are dynamic
    base = model.scratchbert if hasattr(model, "scratchbert") else model
    for batch_size, seq_len in ((1, 3), (5, 33), (4, 64)):  # shapes the export never saw, with padding
        batch = padded_batch(model.config, batch_size, seq_len, seed=100 + seq_len)
        got = dict(zip(report["outputs"], session.run(report["outputs"], {n: batch[n].numpy() for n in INPUT_NAMES})))
        with torch.no_grad():
            if task == "feature-extraction":
                out = base(**batch)
                expected = {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output}
            elif task == "fill-mask":
                expected = {"logits": model(**batch).prediction_logits}
            else:
                expected = {"logits": model(**batch).logits}
        real = batch["attention_mask"].bool()
        for name, value in expected.items():
            value = value[real] if value.dim() == 3 else value
            have = torch.from_numpy(got[name])
            torch.testing.assert_close(have[real] if have.dim() == 3 else have, value, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_onnx_export_refuses_what_it_cannot_do_and_keeps_what_is_there(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from scratchbert.export import main as export_main

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.onnx").write_text("mine")
    ScratchBertForPreTraining(tiny_config()).save_pretrained(tmp_path / "ckpt")
    assert export_main(["onnx", str(tmp_path / "ckpt"), str(tmp_path / "out")]) == 2
    assert "already holds a model.onnx; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "model.onnx").read_text() == "mine"
    assert export_main(["onnx", str(tmp_path / "missing"), str(tmp_path / "other")]) == 2
    assert "cannot load the config of" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_every_head_exports_as_its_own_task_and_unknown_heads_are_refused():
    """Each head in AUTO_CLASSES has an export task of its own (a new head cannot fall back to feature-extraction)."""
    from scratchbert.export import HEAD_TASKS, TASKS, ExportError, task_of
    from scratchbert.modeling_scratchbert import AUTO_CLASSES

    assert set(HEAD_TASKS) == {model_class.__name__ for model_class in AUTO_CLASSES.values()} | {
        "ScratchBertForReplacedTokenDetection"}  # the one head no Auto class names
    assert all(set(tasks) <= set(TASKS) for tasks in HEAD_TASKS.values())
    expected = {"ScratchBertModel": "feature-extraction", "ScratchBertForPreTraining": "fill-mask",
                "ScratchBertForMaskedLM": "fill-mask", "ScratchBertForNextSentencePrediction": "next-sentence-prediction",
                "ScratchBertForSequenceClassification": "text-classification",
                "ScratchBertForTokenClassification": "token-classification",
                "ScratchBertForQuestionAnswering": "question-answering", "ScratchBertForMultipleChoice": "multiple-choice",
                "ScratchBertForReplacedTokenDetection": "feature-extraction"}
    for head, task in expected.items():
        assert task_of(tiny_config(architectures=[head])) == task, head
    assert task_of(tiny_config()) == "feature-extraction"  # no architectures: the encoder
    with pytest.raises(ExportError, match="no ONNX export for a ScratchBertForSomethingNew head"):
        task_of(tiny_config(architectures=["ScratchBertForSomethingNew"]))


def fresh_load(auto_class, folder):
    """The checkpoint loaded anew (not the object that was saved, nor the one the export used), every weight found."""
    model, loading = auto_class.from_pretrained(folder, output_loading_info=True)
    assert not loading["missing_keys"], loading["missing_keys"]
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("head, task, outputs", [
    ("ScratchBertForTokenClassification", "token-classification", ["logits"]),
    ("ScratchBertForQuestionAnswering", "question-answering", ["start_logits", "end_logits"]),
    ("ScratchBertForMultipleChoice", "multiple-choice", ["logits"]),
    ("ScratchBertForNextSentencePrediction", "next-sentence-prediction", ["logits"]),
])
def test_onnx_export_keeps_the_fine_tuned_head(tmp_path, tokenizer_dir, head, task, outputs):
    """A fine-tuned head exports with its head (not as feature-extraction with a random pooler), and onnxruntime
    gives what a fresh load of the saved weights gives in PyTorch, on shapes the export never saw."""
    import transformers

    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import scratchbert
    from scratchbert.export import INPUT_NAMES, export_onnx, padded_batch
    from scratchbert.modeling_scratchbert import AUTO_CLASSES

    auto_name = next(name for name, model_class in AUTO_CLASSES.items() if model_class.__name__ == head)
    torch.manual_seed(0)
    labels = {"num_labels": 5} if task == "token-classification" else {}
    saved = getattr(scratchbert, head)(tiny_config(vocab_size=120, **labels)).eval()
    with torch.no_grad():  # a trained head, far from its initialisation
        for parameter in saved.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    saved.save_pretrained(tmp_path / "ckpt")
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path / "ckpt")

    report = export_onnx(str(tmp_path / "ckpt"), tmp_path / "onnx")
    assert (report["task"], report["outputs"]) == (task, outputs)  # before: feature-extraction, a random pooler_output
    assert report["head"] == head
    assert report["max_difference_vs_pytorch"] <= 1e-4

    reference = fresh_load(getattr(transformers, auto_name), tmp_path / "ckpt")
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == outputs
    for batch_size, seq_len, choices in ((1, 3, 2), (5, 33, 3), (2, 64, 5)):
        batch = padded_batch(reference.config, batch_size, seq_len, seed=100 + seq_len,
                             choices=choices if task == "multiple-choice" else None)
        got = dict(zip(outputs, session.run(outputs, {n: batch[n].numpy() for n in INPUT_NAMES})))
        with torch.no_grad():
            expected = reference(**batch)
        real = batch["attention_mask"].bool()
        for name in outputs:
            want, have = expected[name], torch.from_numpy(got[name])
            if task in ("token-classification", "question-answering"):  # per token: padding positions are free
                want, have = want[real], have[real]
            torch.testing.assert_close(have, want, atol=1e-4, rtol=0)
    if task == "token-classification":
        assert got["logits"].shape == (2, 64, 5)


@pytest.mark.parametrize("case", ["edited architectures", "no architectures", "another head's task"])
def test_onnx_export_refuses_weights_the_checkpoint_does_not_hold(tmp_path, capsys, case):
    """A head whose weights the checkpoint lacks would be initialised at random on every export (and pass the
    onnxruntime check, which compares against that same random model): refused, naming the weights, nothing written."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from scratchbert.export import ExportError, export_onnx
    from scratchbert.export import main as export_main

    ScratchBertForPreTraining(tiny_config()).save_pretrained(tmp_path / "ckpt")  # encoder + MLM + NSP, no classifier
    config_path = tmp_path / "ckpt" / "config.json"
    config = json.loads(config_path.read_text())
    task = None
    if case == "edited architectures":
        config["architectures"] = ["ScratchBertForTokenClassification"]
        message = "lacks weights that the token-classification export needs: classifier.bias, classifier.weight"
    elif case == "no architectures":
        del config["architectures"]
        task = "question-answering"
        message = "lacks weights that the question-answering export needs: qa_outputs.bias, qa_outputs.weight"
    else:
        task = "text-classification"
        message = "saved as ScratchBertForPreTraining, which has no text-classification head"
    config_path.write_text(json.dumps(config))

    with pytest.raises(ExportError, match=message):
        export_onnx(str(tmp_path / "ckpt"), tmp_path / "out", task=task)
    assert not (tmp_path / "out").exists()
    assert export_main(["onnx", str(tmp_path / "ckpt"), str(tmp_path / "out")] + (["--task", task] if task else [])) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("model_class, overrides", [
    (ScratchBertForSequenceClassification, {"classifier_pooling": "mean"}),
    ("ScratchBertForTokenClassification", {}),
])
def test_onnx_feature_extraction_without_a_saved_pooler_has_no_pooler_output(tmp_path, model_class, overrides):
    """feature-extraction of a checkpoint that holds no pooler (a mean-pooled classifier, a tagger) exports
    last_hidden_state alone: no pooler_output from a pooler initialised at random on every export."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import scratchbert
    from transformers import AutoModel

    from scratchbert.export import INPUT_NAMES, export_onnx, padded_batch

    model_class = getattr(scratchbert, model_class) if isinstance(model_class, str) else model_class
    torch.manual_seed(0)
    model_class(tiny_config(**overrides)).save_pretrained(tmp_path / "ckpt")
    report = export_onnx(str(tmp_path / "ckpt"), tmp_path / "onnx", task="feature-extraction")
    assert report["outputs"] == ["last_hidden_state"]
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state"]

    model, loading = AutoModel.from_pretrained(tmp_path / "ckpt", output_loading_info=True)
    assert sorted(loading["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]  # only the pooler is new
    batch = padded_batch(model.config, 3, 21, seed=5)
    (have,) = session.run(["last_hidden_state"], {n: batch[n].numpy() for n in INPUT_NAMES})
    with torch.no_grad():
        want = model.eval()(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(torch.from_numpy(have)[real], want[real], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_a_replaced_token_detection_discriminator_exports_its_encoder(tmp_path):
    """An rtd run's checkpoint (the discriminator) exports as feature-extraction by default, pooler included (it is
    saved), equal to a fresh AutoModel load of the folder in onnxruntime."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from transformers import AutoModel

    from scratchbert.export import INPUT_NAMES, export_onnx, padded_batch

    torch.manual_seed(0)
    ScratchBertForReplacedTokenDetection(tiny_config(pretraining_objective="rtd")).save_pretrained(tmp_path / "ckpt")
    report = export_onnx(str(tmp_path / "ckpt"), tmp_path / "onnx")
    assert report["task"] == "feature-extraction" and report["outputs"] == ["last_hidden_state", "pooler_output"]
    model = fresh_load(AutoModel, tmp_path / "ckpt")
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = padded_batch(model.config, 2, 13, seed=3)
    _, pooled = session.run(["last_hidden_state", "pooler_output"], {n: batch[n].numpy() for n in INPUT_NAMES})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(pooled), model(**batch).pooler_output, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("head", ["ScratchBertForPreTraining", "ScratchBertForReplacedTokenDetection"])
def test_onnx_export_refuses_a_pair_head_that_never_trained(tmp_path, capsys, head):
    """Issue 43 item 2: an MLM-only run (or an rtd run without a pair objective) saves nsp_loss_weight 0 and never
    trains its pooler or next-sentence head: next-sentence prediction is refused by name, and feature-extraction
    leaves pooler_output out, as it does where no pooler is saved. A classifier fine-tuned from it keeps its pooler."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import scratchbert
    from scratchbert.export import ExportError, export_onnx
    from scratchbert.export import main as export_main

    torch.manual_seed(0)
    overrides = {"nsp_loss_weight": 0.0}
    if head == "ScratchBertForReplacedTokenDetection":
        overrides["pretraining_objective"] = "rtd"
    getattr(scratchbert, head)(tiny_config(**overrides)).save_pretrained(tmp_path / "mlm-only")
    if head == "ScratchBertForPreTraining":
        message = "pretrained without a pair objective (nsp_loss_weight 0: MLM only), so its next-sentence head never trained"
        with pytest.raises(ExportError, match=re.escape(message)):
            export_onnx(str(tmp_path / "mlm-only"), tmp_path / "nsp", task="next-sentence-prediction")
        assert export_main(["onnx", str(tmp_path / "mlm-only"), str(tmp_path / "nsp"),
                            "--task", "next-sentence-prediction"]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "nsp").exists()
    report = export_onnx(str(tmp_path / "mlm-only"), tmp_path / "encoder", task="feature-extraction")
    assert report["outputs"] == ["last_hidden_state"]

    ScratchBertForSequenceClassification(tiny_config(**overrides)).save_pretrained(tmp_path / "classifier")
    report = export_onnx(str(tmp_path / "classifier"), tmp_path / "classifier-encoder", task="feature-extraction")
    assert report["outputs"] == ["last_hidden_state", "pooler_output"]  # fine-tuning trained its pooler
