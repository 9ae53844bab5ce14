"""deploy: choosing the best student, the pruning sweep, variant scores and the JSON it writes, on tiny students."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from textdistill.deploy import best_student, evaluate_variants, pruning_sweep, write_json
from textdistill.students import build_student
from textdistill.students.hub import predict_logits

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, PAD = 40, 0


def _student(name: str, arch: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_student(name, arch, vocab_size=VOCAB, num_labels=2, pad_id=PAD).eval()


def _cnn() -> torch.nn.Module:
    return _student("cnn", {"embedding_dim": 8, "num_filters": 8, "kernel_sizes": [2, 3]})


def _reviews(count: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    sequences = [np.concatenate([[2], rng.integers(5, VOCAB, 3 + i % 5), [3]]).astype(np.int64) for i in range(count)]
    return sequences, np.arange(count) % 2


def _summary(tag: str, validation: float | None, test: float) -> dict:
    return {"tag": tag, "training": {"best_val_accuracy": validation}, "test": {"accuracy": test}}


def test_best_student_is_chosen_by_validation_not_test():
    summaries = [_summary("high-test", 0.70, 0.95), _summary("high-validation", 0.80, 0.60)]
    assert best_student(summaries)["tag"] == "high-validation"


def test_best_student_ranks_a_student_without_validation_accuracy_last():
    summaries = [_summary("unvalidated", None, 0.99), _summary("validated", 0.5, 0.5)]
    assert best_student(summaries)["tag"] == "validated"


def test_pruning_sweep_rows_for_a_cnn():
    model = _cnn()
    before = copy.deepcopy(model.state_dict())
    sequences, labels = _reviews()
    rows = pruning_sweep(model, sequences, labels, [0.0, 0.5], PAD)
    assert [(row["method"], row["sparsity"]) for row in rows] == [
        ("L1 unstructured (global)", 0.0),
        ("structured (smaller dense model)", 0.0),
        ("L1 unstructured (global)", 0.5),
        ("structured (smaller dense model)", 0.5),
    ]
    unpruned = float((predict_logits(model, sequences, PAD).argmax(-1) == labels).mean())
    assert rows[0]["accuracy"] == rows[1]["accuracy"] == unpruned  # nothing removed: the same predictions
    assert rows[0]["achieved_sparsity"] == 0.0 and rows[2]["achieved_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert rows[2]["parameters"]["nonzero"] < rows[0]["parameters"]["nonzero"]
    assert rows[3]["parameters"]["total"] < rows[1]["parameters"]["total"]  # a smaller dense model
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())  # model untouched


def test_pruning_sweep_skips_structured_rows_for_a_student_without_them():
    model = _student("ngram-bag", {"embedding_dim": 8, "bigram_buckets": 16})
    sequences, labels = _reviews()
    rows = pruning_sweep(model, sequences, labels, [0.25, 0.5], PAD)
    assert [(row["method"], row["sparsity"]) for row in rows] == [
        ("L1 unstructured (global)", 0.25),
        ("L1 unstructured (global)", 0.5),
    ]


def test_evaluate_variants_scores_each_model_and_its_agreement_with_the_float_student(tmp_path):
    model = _cnn()
    sequences, labels = _reviews()
    predicted = predict_logits(model, sequences, PAD).argmax(-1)
    teacher = np.eye(2, dtype=np.float32)[1 - predicted]  # a teacher that disagrees on every review
    smaller = _student("cnn", {"embedding_dim": 8, "num_filters": 2, "kernel_sizes": [2]})
    scores = evaluate_variants({"float": model, "other": smaller}, sequences, labels, teacher, PAD, tmp_path)
    assert set(scores) == {"float", "other"}  # no model.int8.onnx in tmp_path: no int8 row
    assert scores["float"]["accuracy"] == pytest.approx(float((predicted == labels).mean()))
    assert scores["float"]["agreement"] == 0.0
    assert scores["float"]["agreement_with_float_student"] == 1.0
    other = predict_logits(smaller, sequences, PAD).argmax(-1)
    assert scores["other"]["agreement_with_float_student"] == pytest.approx(float((other == predicted).mean()))


def test_write_json_creates_the_directory_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "compress" / "compress.json"
    write_json(path, {"key": "abc", "model_dir": tmp_path})
    assert json.loads(path.read_text()) == {"key": "abc", "model_dir": str(tmp_path)}
    assert [p.name for p in path.parent.iterdir()] == ["compress.json"]
