"""Teacher: a tiny random BERT fine-tunes, saves and reloads exactly; logit cache hit/miss/mismatch; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from textdistill import builtin
from textdistill.config import TeacherConfig, load_config
from textdistill.inference import predict_logits
from textdistill.pipeline import logits_stage, prepare_data, teacher_stage
from textdistill.teachers.transformer import TeacherError, fine_tune, load_classifier, load_teacher


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (2 layers, hidden 64) with a WordPiece vocabulary trained on toy reviews."""
    data = builtin.write_toy_dataset(tmp_path_factory.mktemp("toy"), sizes=(200, 60, 40))
    import pandas as pd

    texts = pd.read_parquet(data / "train.parquet")["text"].tolist()
    return builtin.build_tiny_bert(tmp_path_factory.mktemp("bert"), texts, vocab_size=300)


def _toy_sequences(tokenizer, n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Separable toy data: positive reviews use one word list, negative reviews another."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = [" ".join(rng.choice(["superb", "moving"] if y else ["awful", "boring"], 6)) for y in labels]
    encoded = tokenizer(texts)["input_ids"]
    return [np.array(e, dtype=np.int64) for e in encoded], labels


def test_fine_tune_loss_falls_and_checkpoint_reloads_exactly(tiny_bert_dir, tmp_path, single_thread):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    train, val = _toy_sequences(tokenizer, 64), _toy_sequences(tokenizer, 16, seed=1)
    config = TeacherConfig(model=str(tiny_bert_dir), epochs=4, batch_size=8, body_lr=1e-3, head_lr=3e-3)
    summary = fine_tune(train, val, ["neg", "pos"], tokenizer, config, tmp_path)
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert losses[-1] < losses[0]
    assert summary["validation"]["eval_accuracy"] >= 0.9
    assert {"eval_macro_f1", "eval_examples"} <= set(summary["validation"])  # the Trainer adds eval_ to score's names
    model = load_teacher(tmp_path / "model", "cpu")
    logits = predict_logits(model, val[0], tokenizer.pad_token_id, batch_size=5)
    again = predict_logits(
        load_teacher(tmp_path / "model", "cpu"), val[0], tokenizer.pad_token_id, batch_size=5
    )  # same batches: bit-exact
    np.testing.assert_array_equal(logits, again)
    with torch.inference_mode():
        one = model(input_ids=torch.from_numpy(np.stack(val[0][:1]))).logits.numpy()
    np.testing.assert_allclose(logits[:1], one, atol=1e-5)  # batching and padding do not change results


def test_head_with_wrong_number_of_labels_is_rejected(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir), num_labels=3)
    model.save_pretrained(str(tmp_path))
    with pytest.raises(TeacherError, match="3 labels but the data has 2"):
        load_classifier(str(tmp_path), ["neg", "pos"], 0.1)


def test_tokenizer_larger_than_model_vocabulary_is_rejected(tiny_bert_dir, tiny_tokenizer):
    from transformers import AutoTokenizer

    big = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    big.add_tokens([f"newtoken{i}" for i in range(500)])
    with pytest.raises(TeacherError, match="do not belong together"):
        load_classifier(str(tiny_bert_dir), ["neg", "pos"], 0.1, tokenizer=big)


def test_missing_or_corrupt_weights_are_clear_errors(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    with pytest.raises(TeacherError, match="no config.json"):
        load_teacher(tmp_path, "cpu")
    AutoModelForSequenceClassification.from_pretrained(str(tiny_bert_dir), num_labels=2).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(TeacherError, match="could not be loaded"):
        load_teacher(tmp_path, "cpu")
    weights.unlink()
    with pytest.raises(TeacherError, match="no model.safetensors"):
        load_teacher(tmp_path, "cpu")


def _tiny_run_config(tmp_path: Path, **extra: str):
    overrides = {
        "data.path": "builtin:toy-reviews",
        "data.max_train": "80",
        "data.max_test": "40",
        "data.max_unlabelled": "20",
        "teacher.model": "builtin:tiny-bert",
        "teacher.epochs": "1",
        "teacher.batch_size": "16",
        "tokens.teacher_max_length": "32",
        "cache_dir": str(tmp_path / "cache"),
        "out_dir": str(tmp_path / "run"),
        **extra,
    }
    return load_config(None, [f"{k}={v}" for k, v in overrides.items()])


def test_logit_cache_hit_miss_and_mismatch(tmp_path, monkeypatch, single_thread):
    config = _tiny_run_config(tmp_path)
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    first = logits_stage(config, prepared, model_dir)
    assert set(first) == {"train", "validation", "test", "unlabelled"}
    assert first["train"].shape == (len(prepared.dataset.train), 2)

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher must not be loaded on a cache hit")

    monkeypatch.setattr("textdistill.pipeline.load_teacher", no_teacher)  # the name logits_stage calls
    again = logits_stage(config, prepared, model_dir)  # hit: same checkpoint, data and token settings
    np.testing.assert_array_equal(again["test"], first["test"])
    assert teacher_stage(config, prepared) == model_dir  # the teacher itself is reused too

    config.tokens.teacher_max_length = 24  # another token setting: a miss, recomputed
    with pytest.raises(AssertionError, match="must not be loaded"):
        logits_stage(config, prepared, model_dir)


def test_new_transfer_texts_are_the_only_rows_the_teacher_labels(tmp_path, monkeypatch, single_thread):
    import pandas as pd

    from textdistill import pipeline

    config = _tiny_run_config(tmp_path)
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    first = logits_stage(config, prepared, model_dir)
    extra = tmp_path / "extra.parquet"
    pd.DataFrame({"text": [f"a new text number {i}, quite unlike the reviews" for i in range(7)]}).to_parquet(extra)
    wider = _tiny_run_config(tmp_path, **{"transfer.sources": f"[{{path: {extra}, name: extra}}]"})
    prepared = prepare_data(wider)
    labelled: list[int] = []
    compute = pipeline._compute_logits

    def counting(*args, rows=None):
        labelled.append(len(rows))
        return compute(*args, rows=rows)

    monkeypatch.setattr(pipeline, "_compute_logits", counting)
    second = logits_stage(wider, prepared, model_dir)
    assert labelled == [7]  # the unlabelled split grew by 7 texts; every other row came from the first pass
    assert len(second["unlabelled"]) == len(first["unlabelled"]) + 7
    np.testing.assert_array_equal(second["unlabelled"][: len(first["unlabelled"])], first["unlabelled"])
    assert np.abs(second["unlabelled"][-7:]).sum() > 0  # the new rows were filled, not left at zero


def test_shipped_logits_must_match_the_data(tmp_path, single_thread):
    from textdistill.pipeline import export_logits

    config = _tiny_run_config(tmp_path)
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    export_logits(config, prepared, model_dir, logits_stage(config, prepared, model_dir), tmp_path / "shipped")
    config.teacher.logits_dir = str(tmp_path / "shipped")
    shipped = logits_stage(config, prepared, None)
    assert shipped["validation"].shape == (len(prepared.dataset.validation), 2)

    manifest = json.loads((tmp_path / "shipped/manifest.json").read_text())
    manifest["splits"]["test"]["key"]["data"] = "0000000000000000"
    (tmp_path / "shipped/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="split test: shipped vs this run"):
        logits_stage(config, prepared, None)


def test_int8_logit_pass_is_used_only_when_it_agrees_with_fp32(tmp_path, single_thread):
    config = _tiny_run_config(tmp_path, **{"teacher.int8_logit_pass": "true"})
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    logits = logits_stage(config, prepared, model_dir)
    check = json.loads((model_dir / "int8_logit_check.json").read_text())
    assert 0.0 <= check["agreement"] <= 1.0 and check["threshold"] == 0.995
    keys = [json.loads(str(np.load(p)["key"])) for p in (tmp_path / "cache/logits").glob("*.npz")]
    modes = {key["data"]: key["pass"] for key in keys}
    assert modes[prepared.dataset.validation.fingerprint] == "fp32"  # model selection always sees the exact teacher
    expected = "onnx-int8" if check["agreement"] >= 0.995 else "fp32"
    assert modes[prepared.dataset.test.fingerprint] == expected
    assert logits["test"].shape == (len(prepared.dataset.test), 2)


def test_chunked_logit_pass_reads_whole_texts_and_has_its_own_cache_key(tmp_path, single_thread):
    from textdistill.pipeline import teacher_split_logits
    from textdistill.tokens import window_starts

    config = _tiny_run_config(tmp_path)
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    truncated = logits_stage(config, prepared, model_dir)
    config.teacher.inference, config.teacher.chunk_stride = "chunks", 10
    chunked = logits_stage(config, prepared, model_dir)
    assert teacher_stage(config, prepared) == model_dir  # the inference settings do not retrain the teacher
    lengths = prepared.encoded["test"].lengths
    short = lengths <= config.tokens.teacher_max_length - 2  # one window: the same input as truncation
    assert short.any() and (~short).any()
    np.testing.assert_allclose(chunked["test"][short], truncated["test"][short], atol=1e-5)
    model = load_teacher(model_dir, "cpu")
    row = int(np.flatnonzero(~short)[0])  # a long text: the mean of its windows, each read on its own
    ids, budget = prepared.encoded["test"].sequence(row), config.tokens.teacher_max_length - 2
    special = prepared.special
    windows = [[special.cls, *ids[s : s + budget], special.sep] for s in window_starts(len(ids), budget, 10)]
    assert len(windows) >= 2
    with torch.inference_mode():
        by_hand = np.mean([model(input_ids=torch.tensor([w])).logits[0].numpy() for w in windows], axis=0)
    np.testing.assert_allclose(chunked["test"][row], by_hand, atol=1e-5)
    again = teacher_split_logits(config, prepared, model, "test", "fp32")
    np.testing.assert_allclose(again, chunked["test"], atol=1e-5)  # the cached logits are the chunked ones


def test_bf16_fine_tunes_and_predicts_on_cpu(tmp_path, single_thread):
    config = _tiny_run_config(tmp_path, **{"teacher.mixed_precision": "bf16"})
    prepared = prepare_data(config)
    model_dir = teacher_stage(config, prepared)
    summary = json.loads((model_dir / "metrics.json").read_text())
    assert summary["hyperparameters"]["mixed_precision"] == "bf16"
    bf16 = logits_stage(config, prepared, model_dir)
    keys = [json.loads(str(np.load(p)["key"])) for p in (tmp_path / "cache/logits").glob("*.npz")]
    assert {key["pass"] for key in keys} == {"bf16"}
    config.teacher.mixed_precision = "no"
    exact = logits_stage(config, prepared, model_dir)  # the same weights in fp32: only rounding differs
    scale = np.abs(exact["test"]).max()
    assert np.abs(bf16["test"] - exact["test"]).max() <= 0.05 * scale
