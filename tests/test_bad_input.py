"""One test per row of docs/bad-input.md: the input is refused with the message the table promises."""

import json
import re

import pytest
import torch

from scratchbert import ScratchBertConfig, ScratchBertModel
from scratchbert import classification, glue, pretraining, token_classification
from scratchbert.convert import ConversionError, convert_bert_to_scratchbert
from conftest import REPO_ROOT, tiny_config, write_glue_folder

TABLE = (REPO_ROOT / "docs" / "bad-input.md").read_text()
TINY = [
    "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
    "--max_position_embeddings", "64", "--max_seq_length", "64", "--vocab_size", "400", "--max_steps", "2",
    "--report_to", "none", "--use_cpu", "true",
]


def script_error(capsys, main, tmp_path, *args):
    code = main(["--output_dir", str(tmp_path / "out"), *TINY, *args])
    err = capsys.readouterr().err
    assert code in (2, 3) and "Traceback" not in err, err
    assert not (tmp_path / "out" / "config.json").exists()
    return err


def corpus(tmp_path, texts, name="c.jsonl", column="text"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps({column: t}) for t in texts))
    return str(path)


def pretrained_folder(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    from scratchbert import ScratchBertForPreTraining

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    folder = tmp_path / "pretrained"
    ScratchBertForPreTraining(tiny_config(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def pairs_file(tmp_path, rows=None):
    rows = rows or [("How to learn?", "Best way to learn?", "dup"), ("Where is Paris?", "How tall is it?", "different")] * 4
    path = tmp_path / "pairs.csv"
    path.write_text("question1,question2,is_duplicate\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


PAIR_COLUMNS = ["--text_column_1", "question1", "--text_column_2", "question2", "--label_column", "is_duplicate"]


def case_missing_file(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--train_file", str(tmp_path / "corpus.txt"))


def case_empty_file(tmp_path, capsys, tokenizer_dir):
    (tmp_path / "empty.txt").write_text("")
    return script_error(capsys, pretraining.main, tmp_path, "--train_file", str(tmp_path / "empty.txt"))


def case_wrong_text_column(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--train_file", corpus(tmp_path, ["A. B."] * 5, column="body"))


def case_no_multi_sentence(tmp_path, capsys, tokenizer_dir):
    texts = [f"Only sentence number {i} here" for i in range(30)]
    return script_error(capsys, pretraining.main, tmp_path, "--train_file", corpus(tmp_path, texts))


def case_unknown_yaml_key(tmp_path, capsys, tokenizer_dir):
    (tmp_path / "bad.yaml").write_text("hidden_size: 32\nhiden_layers: 2\n")
    return script_error(capsys, classification.main, tmp_path, "--config", str(tmp_path / "bad.yaml"))


def case_yaml_wrong_type(tmp_path, capsys, tokenizer_dir):
    (tmp_path / "bad.yaml").write_text("learning_rate: fast\n")
    return script_error(capsys, pretraining.main, tmp_path, "--config", str(tmp_path / "bad.yaml"))


def case_unknown_flag(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--hiden_size", "3")


def case_size_out_of_range(tmp_path, capsys, tokenizer_dir):
    with pytest.raises(ValueError, match=r"hidden_dropout_prob must be a probability in \[0, 1\), got 1.5"):
        ScratchBertConfig(hidden_dropout_prob=1.5)
    assert "hidden_dropout_prob must be a probability" in script_error(
        capsys, pretraining.main, tmp_path, "--config_overrides", "hidden_dropout_prob=1.5")
    return script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_documents", "20",
                        "--hidden_size", "100", "--num_attention_heads", "12")


def case_seq_beyond_positions(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--max_seq_length", "128")


def case_tokenizer_model_mismatch(tmp_path, capsys, tokenizer_dir):
    checkpoint = tmp_path / "checkpoint"
    pretraining.run(["--output_dir", str(checkpoint), *TINY, "--corpus", "synthetic", "--max_documents", "40",
                     "--per_device_train_batch_size", "2", "--save_strategy", "no"])
    return script_error(capsys, pretraining.main, tmp_path, "--model_name_or_path", str(checkpoint),
                        "--tokenizer_name", str(tokenizer_dir))


def case_ids_beyond_vocab(tmp_path, capsys, tokenizer_dir):
    with pytest.raises(ValueError) as error:
        ScratchBertModel(tiny_config())(input_ids=torch.tensor([[5, 120]]))
    return str(error.value)


def case_too_long(tmp_path, capsys, tokenizer_dir):
    with pytest.raises(ValueError) as error:
        ScratchBertModel(tiny_config())(input_ids=torch.ones(1, 65, dtype=torch.long))
    return str(error.value)


def case_other_model_type(tmp_path, capsys, tokenizer_dir):
    import transformers

    gpt = tmp_path / "gpt"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(gpt)
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(gpt),
                        "--train_file", str(pairs_file(tmp_path)), *PAIR_COLUMNS)


def case_bert_not_converted(tmp_path, capsys, tokenizer_dir):
    import transformers

    from scratchbert.convert import scratchbert_config_to_bert

    bert = tmp_path / "bert"
    transformers.BertModel(scratchbert_config_to_bert(tiny_config())).save_pretrained(bert)
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(bert),
                        "--train_file", str(pairs_file(tmp_path)), *PAIR_COLUMNS)


def case_corrupt_safetensors(tmp_path, capsys, tokenizer_dir):
    folder = pretrained_folder(tmp_path, tokenizer_dir)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    err = script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(folder),
                       "--train_file", str(pairs_file(tmp_path)), *PAIR_COLUMNS, "--max_seq_length", "32")
    return err


def case_missing_column(tmp_path, capsys, tokenizer_dir):
    folder = pretrained_folder(tmp_path, tokenizer_dir)
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(folder),
                        "--train_file", str(pairs_file(tmp_path)), "--max_seq_length", "32")


def case_unknown_label(tmp_path, capsys, tokenizer_dir):
    folder = pretrained_folder(tmp_path, tokenizer_dir)
    dev = tmp_path / "dev.csv"
    dev.write_text("question1,question2,is_duplicate\na,b,maybe\nc,d,dup\n")
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(folder),
                        "--train_file", str(pairs_file(tmp_path)), "--validation_file", str(dev), *PAIR_COLUMNS,
                        "--max_seq_length", "32")


def case_num_labels_mismatch(tmp_path, capsys, tokenizer_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = pretrained_folder(tmp_path, tokenizer_dir)
    three = tmp_path / "three"
    AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}
    ).save_pretrained(three)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(three)
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(three),
                        "--train_file", str(pairs_file(tmp_path)), *PAIR_COLUMNS, "--max_seq_length", "32")


def case_unwritable_output(tmp_path, capsys, tokenizer_dir):
    code = pretraining.main(["--output_dir", "/proc/x", *TINY])
    err = capsys.readouterr().err
    assert code == 2
    return err


def case_output_holds_run(tmp_path, capsys, tokenizer_dir):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text("{}")
    code = pretraining.main(["--output_dir", str(tmp_path / "out"), *TINY, "--overwrite_output_dir", "false"])
    assert code == 2 and (tmp_path / "out" / "config.json").read_text() == "{}"
    return capsys.readouterr().err


def case_nothing_to_resume(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--resume_from_checkpoint", "latest")


def case_pickle_code(tmp_path, capsys, tokenizer_dir):
    import transformers

    from scratchbert.convert import scratchbert_config_to_bert

    folder = tmp_path / "evil"
    transformers.BertModel(scratchbert_config_to_bert(tiny_config())).save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"embeddings.word_embeddings.weight": Evil()}, folder / "pytorch_model.bin")
    with pytest.raises(ConversionError) as error:
        convert_bert_to_scratchbert(folder, tmp_path / "out")
    with pytest.raises(Exception):  # transformers' own loader refuses it too
        transformers.BertModel.from_pretrained(folder)
    assert not marker.exists(), "the pickled code never ran"
    return str(error.value)


def case_not_a_bert(tmp_path, capsys, tokenizer_dir):
    import transformers

    gpt = tmp_path / "gpt"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(gpt)
    with pytest.raises(ConversionError) as error:
        convert_bert_to_scratchbert(gpt, tmp_path / "out")
    return str(error.value)


def case_nan_loss(tmp_path, capsys, tokenizer_dir):
    from test_runs_trainer import classification_trainer

    from scratchbert.runs import TrainingFailure

    with pytest.raises(TrainingFailure) as error:
        classification_trainer(tmp_path, nan_at_call=3).train()
    return str(error.value)


def case_disk_full(tmp_path, capsys, tokenizer_dir):
    import errno
    import os

    from transformers import Trainer

    original, calls = Trainer._save_optimizer_and_scheduler, {"n": 0}

    def disk_full(self, output_dir):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(output_dir, "optimizer.pt"))
        return original(self, output_dir)

    Trainer._save_optimizer_and_scheduler = disk_full
    try:
        err = script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_documents", "40",
                           "--max_steps", "6", "--save_steps", "2", "--per_device_train_batch_size", "2")
    finally:
        Trainer._save_optimizer_and_scheduler = original
    return err


TABLE_IDS = re.findall(r"^\| ([a-z-]+) \|", TABLE, re.M)[1:]  # skip the header row


def case_budget_not_positive(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_train_minutes", "0")


def case_budget_schedule(tmp_path, capsys, tokenizer_dir):
    budget = ["--max_train_minutes", "1", "--lr_scheduler_type", "polynomial"]
    # run_classification.py once accepted max_train_minutes and never handed it to its Trainer.
    classify = script_error(capsys, classification.main, tmp_path, "--nsp_corpus", "synthetic", "--nsp_documents", "40", *budget)
    pretrain = script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_documents", "40", *budget)
    assert classify == pretrain
    return pretrain


def case_null_text(tmp_path, capsys, tokenizer_dir):
    rows = [{"sentence1": "A fine day.", "label": "yes"}, {"sentence1": None, "label": "no"}] * 4
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(pretrained_folder(tmp_path, tokenizer_dir)),
                        "--train_file", str(data), "--validation_file", str(data))


def case_bad_fine_tuning_option(tmp_path, capsys, tokenizer_dir):
    folder = str(pretrained_folder(tmp_path, tokenizer_dir))
    pooling = script_error(capsys, classification.main, tmp_path, "--model_name_or_path", folder, "--nsp_corpus", "synthetic",
                           "--classifier_pooling", "max")
    decay = script_error(capsys, classification.main, tmp_path, "--model_name_or_path", folder, "--nsp_corpus", "synthetic",
                         "--layerwise_lr_decay", "1.5")
    assert "layerwise_lr_decay must be in (0, 1] (1: off), got 1.5" in decay
    return pooling


def case_learning_rate_grid(tmp_path, capsys, tokenizer_dir):
    return glue_error(capsys, tmp_path, tokenizer_dir, write_glue_folder(tmp_path / "glue", folders=("RTE",)),
                      "--learning_rates", "fast,1e-4")


def case_skip_under_deepspeed(tmp_path, capsys, tokenizer_dir):
    from scratchbert.cli import ConfigError
    from scratchbert.runs import RunArguments, ScratchBertTrainingArguments, check_run_options

    # DeepSpeed is not installed here (TrainingArguments would refuse a deepspeed config without it), so the
    # argument is set after construction, as a parsed --deepspeed ds.json would leave it.
    training_args = ScratchBertTrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True)
    training_args.deepspeed = "ds_config.json"
    with pytest.raises(ConfigError) as error:
        check_run_options(training_args, RunArguments(on_nonfinite_loss="skip"))
    check_run_options(training_args, RunArguments(on_nonfinite_loss="stop"))  # stop works under DeepSpeed
    return str(error.value)


def case_layerwise_under_deepspeed_optimizer(tmp_path, capsys, tokenizer_dir):
    from scratchbert.cli import ConfigError
    from scratchbert.runs import RunArguments, ScratchBertTrainingArguments, check_run_options

    ds_config = tmp_path / "ds_config.json"
    ds_config.write_text(json.dumps({"zero_optimization": {"stage": 2}, "optimizer": {"type": "AdamW"}}))
    training_args = ScratchBertTrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True)
    training_args.deepspeed = str(ds_config)  # as a parsed --deepspeed would leave it (DeepSpeed is not installed here)
    with pytest.raises(ConfigError) as error:
        check_run_options(training_args, RunArguments(), layerwise_lr_decay=0.8)
    check_run_options(training_args, RunArguments(), layerwise_lr_decay=1.0)  # no decay: DeepSpeed's optimizer is fine
    ds_config.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    check_run_options(training_args, RunArguments(), layerwise_lr_decay=0.8)  # the Trainer's optimizer: regrouped
    return str(error.value)


def case_unknown_architecture_option(tmp_path, capsys, tokenizer_dir):
    return script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_documents", "40",
                        "--attention_position_bias", "rope")


def case_retired_option(tmp_path, capsys, tokenizer_dir):
    (tmp_path / "old.yaml").write_text("hidden_size: 32\ndeepnorm: true\n")
    retired = script_error(capsys, pretraining.main, tmp_path, "--config", str(tmp_path / "old.yaml"))
    assert "batch_size_ramp_start was retired" in script_error(
        capsys, pretraining.main, tmp_path, "--batch_size_ramp_start", "8")
    for script in (classification.main, token_classification.main):  # a retired run option: every script refuses it
        assert "log_file was retired" in script_error(capsys, script, tmp_path, "--log_file", "run.log")
    return retired + script_error(capsys, pretraining.main, tmp_path, "--hidden_act", "gelu")


def case_pair_objective(tmp_path, capsys, tokenizer_dir):
    conflict = script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_documents", "40",
                            "--pair_objective", "sop", "--mlm_only", "true")
    assert "needs sentence pairs, but mlm_only trains on single segments" in conflict
    return script_error(capsys, pretraining.main, tmp_path, "--corpus", "synthetic", "--max_documents", "40",
                        "--pair_objective", "nextsent")


def case_no_bert_layout(tmp_path, capsys, tokenizer_dir):
    from scratchbert import ScratchBertForPreTraining
    from scratchbert.convert import convert_scratchbert_to_bert

    ScratchBertForPreTraining(tiny_config(attention_position_bias="alibi")).save_pretrained(tmp_path / "alibi")
    with pytest.raises(ConversionError) as error:
        convert_scratchbert_to_bert(tmp_path / "alibi", tmp_path / "bert")
    assert not (tmp_path / "bert").exists()
    return str(error.value)


def case_resume_without_tokenizer(tmp_path, capsys, tokenizer_dir):
    common = ["--corpus", "synthetic", "--max_documents", "40", "--save_steps", "1"]
    assert pretraining.main(["--output_dir", str(tmp_path / "first"), *TINY, *common]) == 0
    checkpoint = tmp_path / "first" / "checkpoint-1"
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (checkpoint / name).unlink(missing_ok=True)
    capsys.readouterr()
    return script_error(capsys, pretraining.main, tmp_path, *common, "--resume_from_checkpoint", str(checkpoint))


def case_blank_label(tmp_path, capsys, tokenizer_dir):
    rows = [("How to learn?", "Best way to learn?", "dup"), ("Where is Paris?", "How tall is it?", "")] * 4
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", str(pretrained_folder(tmp_path, tokenizer_dir)),
                        "--train_file", str(pairs_file(tmp_path, rows)), *PAIR_COLUMNS)


def glue_error(capsys, tmp_path, tokenizer_dir, glue_dir, *args):
    code = glue.main(["--model_name_or_path", str(pretrained_folder(tmp_path, tokenizer_dir)), "--glue_dir", str(glue_dir),
                      "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--use_cpu", "true", *args])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "out" / "runs").exists(), err
    return err


def case_glue_missing_files(tmp_path, capsys, tokenizer_dir):
    glue_dir = write_glue_folder(tmp_path / "glue", folders=("RTE", "MRPC"))
    (glue_dir / "MRPC" / "dev.tsv").unlink()
    return glue_error(capsys, tmp_path, tokenizer_dir, glue_dir)


def case_glue_wrong_header(tmp_path, capsys, tokenizer_dir):
    glue_dir = write_glue_folder(tmp_path / "glue", folders=("RTE", "QQP"))
    (glue_dir / "RTE" / "train.tsv").write_text((glue_dir / "QQP" / "train.tsv").read_text())
    return glue_error(capsys, tmp_path, tokenizer_dir, glue_dir, "--tasks", "rte")


def case_glue_unknown_task(tmp_path, capsys, tokenizer_dir):
    return glue_error(capsys, tmp_path, tokenizer_dir, write_glue_folder(tmp_path / "glue", folders=("RTE",)), "--tasks", "mprc")


def ner_error(capsys, tmp_path, tokenizer_dir, train: str, dev: str):
    (tmp_path / "train.conll").write_text(train)
    (tmp_path / "dev.conll").write_text(dev)
    code = token_classification.main([
        "--model_name_or_path", str(pretrained_folder(tmp_path, tokenizer_dir)), "--output_dir", str(tmp_path / "out"),
        "--train_file", str(tmp_path / "train.conll"), "--validation_file", str(tmp_path / "dev.conll"), "--use_cpu", "true",
    ])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not list((tmp_path / "out").glob("*")), err
    return err


def case_conll_no_tag(tmp_path, capsys, tokenizer_dir):
    return ner_error(capsys, tmp_path, tokenizer_dir, "EU NNP I-NP I-ORG\nrejects\n", "EU NNP I-NP I-ORG\n")


def case_ner_unseen_tag(tmp_path, capsys, tokenizer_dir):
    return ner_error(capsys, tmp_path, tokenizer_dir, "EU NNP I-NP I-ORG\nrejects VBZ I-VP O\n", "German JJ I-NP B-MISC\n")


def case_problem_type_contradicts_data(tmp_path, capsys, tokenizer_dir):
    folder = str(pretrained_folder(tmp_path, tokenizer_dir))
    unknown = script_error(capsys, classification.main, tmp_path, "--model_name_or_path", folder, "--nsp_corpus", "synthetic",
                           "--problem_type", "median")
    assert "--problem_type/--problem-type: invalid choice: 'median'" in unknown
    return script_error(capsys, classification.main, tmp_path, "--model_name_or_path", folder, "--nsp_corpus", "synthetic",
                        "--problem_type", "regression")


def case_rtd_from_discriminator(tmp_path, capsys, tokenizer_dir):
    folder = pretrained_folder(tmp_path, tokenizer_dir)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "pretraining_objective": "rtd"}))
    return script_error(capsys, pretraining.main, tmp_path, "--objective", "rtd", "--model_name_or_path", str(folder))


def case_rtd_options(tmp_path, capsys, tokenizer_dir):
    rtd = lambda *bad: script_error(capsys, pretraining.main, tmp_path, "--objective", "rtd", *bad)  # noqa: E731
    assert "generator_width=1.5" in rtd("--generator_width", "1.5")
    assert "generator_layers must be a positive" in rtd("--generator_layers", "0")
    assert "sparse_mlm_prediction" in rtd("--config_overrides", "sparse_mlm_prediction=False")
    assert "objective must be one of mlm, rtd" in script_error(capsys, pretraining.main, tmp_path, "--objective", "electra")
    return rtd("--rtd_loss_weight", "0")


def case_fill_mask_on_rtd(tmp_path, capsys, tokenizer_dir):
    from transformers import AutoModelForMaskedLM

    from scratchbert import ScratchBertForReplacedTokenDetection

    folder = tmp_path / "rtd"
    ScratchBertForReplacedTokenDetection(tiny_config(pretraining_objective="rtd")).save_pretrained(folder)
    with pytest.raises(ValueError) as error:
        AutoModelForMaskedLM.from_pretrained(folder)
    return str(error.value)


def case_onnx_untrained_pair_head(tmp_path, capsys, tokenizer_dir):
    from scratchbert import ScratchBertForPreTraining
    from scratchbert.export import main as export_main

    ScratchBertForPreTraining(tiny_config(nsp_loss_weight=0.0)).save_pretrained(tmp_path / "mlm-only")
    code = export_main(["onnx", str(tmp_path / "mlm-only"), str(tmp_path / "onnx"), "--task", "next-sentence-prediction"])
    assert code == 2 and not (tmp_path / "onnx").exists()
    return capsys.readouterr().err


def test_every_table_row_has_a_case():
    assert TABLE_IDS and all(f"case_{i.replace('-', '_')}" in globals() for i in TABLE_IDS)


@pytest.mark.parametrize("row", TABLE_IDS)
def test_row(row, tmp_path, capsys, tokenizer_dir):
    message = globals()[f"case_{row.replace('-', '_')}"](tmp_path, capsys, tokenizer_dir)
    line = next(l for l in TABLE.splitlines() if l.startswith(f"| {row} |"))
    promised = line.rstrip(" |").rsplit("|", 1)[1].strip()
    # Every literal fragment of the promised message (between `...` elisions and placeholders) appears.
    for excerpt in re.findall(r"`([^`]*)`", promised):
        for fragment in re.split(r"\s*\.\.\.\s*", excerpt):
            fragment = fragment.strip()
            if fragment and not re.search(r"corpus.txt|empty.txt|bad.yaml|/proc/x|run/checkpoint|run failed", fragment):
                assert fragment in message or any(fragment in m for m in [message.replace("\n", " ")]), (row, fragment, message)
