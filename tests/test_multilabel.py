"""Multi-label: thresholds chosen on validation, label-set scores, and a whole offline run on a toy label-set dataset
(teacher with a sigmoid head, students, ONNX/int8, report, predict, serve)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_pipeline import TINY_RUN

from textdistill.config import load_config
from textdistill.metrics import score_label_sets
from textdistill.multilabel import Thresholds, choose_thresholds, score_logits, sigmoid

pytestmark = pytest.mark.usefixtures("single_thread")


def logit(p):
    return np.log(p) - np.log1p(-np.asarray(p))


def test_score_label_sets_by_hand():
    truth = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [-1, -1, -1]])
    guess = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [1, 0, 0]])
    teacher = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1], [1, 0, 0]])
    scores = score_label_sets(truth, guess, teacher, per_label=True)
    assert scores.examples == 4 and scores.subset_accuracy == pytest.approx(1 / 3)  # row 2 only; row 4 unlabelled
    # label 0: tp 2; label 1: tp 2; label 2: tp 0, fn 1, fp 1 → F1 1, 1, 0; micro: tp 4, fp 1, fn 1 → 0.8
    assert scores.per_label["f1"] == pytest.approx([1.0, 1.0, 0.0])
    assert scores.macro_f1 == pytest.approx(2 / 3) and scores.micro_f1 == pytest.approx(0.8)
    assert scores.agreement == pytest.approx(0.75)  # every row but the second has the teacher's set
    assert scores.accuracy is None and scores.confusion_matrix is None


def test_per_label_thresholds_win_when_labels_need_different_cuts():
    rng = np.random.default_rng(0)
    labels = (rng.random((2000, 3)) < 0.3).astype(np.int64)
    # label 0 is separable at 0.2, label 1 at 0.8, label 2 at 0.5: no single threshold serves all three
    centres = np.array([0.2, 0.8, 0.5])
    spread = rng.uniform(0.02, 0.15, size=labels.shape)
    probabilities = np.clip(np.where(labels == 1, centres + spread, centres - spread), 0.01, 0.99)
    chosen = choose_thresholds(logit(probabilities), labels, seed=0)
    assert chosen.method == "per_label"
    assert chosen.held_out_macro_f1["per_label"] > chosen.held_out_macro_f1["global"] + 0.1
    assert chosen.values == pytest.approx([0.2, 0.8, 0.5], abs=0.051)
    assert score_logits(logit(probabilities), labels, thresholds=chosen).macro_f1 == pytest.approx(1.0)


def test_global_threshold_kept_when_one_cut_serves_every_label():
    rng = np.random.default_rng(1)
    labels = (rng.random((1000, 4)) < 0.4).astype(np.int64)
    probabilities = np.where(labels == 1, rng.uniform(0.35, 0.9, labels.shape), rng.uniform(0.05, 0.3, labels.shape))
    chosen = choose_thresholds(logit(probabilities), labels)
    assert chosen.method == "global" and len(set(chosen.values)) == 1
    assert Thresholds.from_dict(json.loads(json.dumps(chosen.to_dict()))) == chosen
    assert chosen.predict(logit(probabilities)).tolist() == labels.tolist()


def test_sigmoid_is_stable_for_large_logits():
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == pytest.approx([0.0, 0.5, 1.0])


# ---------------------------------------------------------------------------------------------------
# A whole run

CUES = {
    "joy": ["happy", "great", "lovely"],
    "anger": ["furious", "hate", "angry"],
    "fear": ["scared", "afraid", "worried"],
    "surprise": ["wow", "unexpected", "shocked"],
}
FILLER = ["the", "a", "day", "it", "was", "some", "thing", "that", "we", "saw", "today", "and", "then"]


def label_set_rows(count: int, prefix: str, rng: np.random.Generator) -> pd.DataFrame:
    """Texts whose cue words name their 1-2 labels; a list of label names per row (the go_emotions layout)."""
    rows = []
    for i in range(count):
        labels = sorted(rng.choice(list(CUES), size=int(rng.integers(1, 3)), replace=False).tolist())
        words = [str(rng.choice(CUES[label])) for label in labels for _ in range(2)] + list(rng.choice(FILLER, 8))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": labels, "id": f"{prefix}{i}"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory):
    from textdistill.workflow import run

    root = tmp_path_factory.mktemp("multi-label")
    rng = np.random.default_rng(0)
    data = root / "data"
    data.mkdir()
    for split, count in (("train", 300), ("validation", 80), ("test", 80)):
        label_set_rows(count, split[:2], rng).to_parquet(data / f"{split}.parquet")
    overrides = TINY_RUN | {
        "data.path": str(data),
        "data.label_column": "labels",
        "data.max_train": "null",
        "data.max_test": "null",
        "teacher.epochs": "3",
        "teacher.body_lr": "3e-3",
        "teacher.head_lr": "1e-2",
        "distill.epochs": "8",
        "distill.lr": "1e-2",
        "out_dir": str(root / "run"),
        "cache_dir": str(root / "cache"),
    }
    config = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    return config, run(config)


def test_run_distills_label_sets_end_to_end(multi_label_run):
    config, metrics = multi_label_run
    teacher = metrics["teacher"]
    assert teacher["thresholds"]["method"] in ("global", "per_label")
    assert {"subset_accuracy", "micro_f1", "macro_f1", "per_label"} <= set(teacher["test_metrics"])
    assert teacher["test_metrics"]["macro_f1"] > 0.7  # cue words make the sets easy: the teacher learns them
    teacher_dir = Path(config.cache_dir).glob("teachers/*/model/config.json")
    assert json.loads(next(teacher_dir).read_text())["problem_type"] == "multi_label_classification"
    for summary in metrics["students"]:
        test = summary["test"]
        assert {"subset_accuracy", "micro_f1", "macro_f1", "agreement", "per_label"} <= set(test)
        assert "accuracy" not in test and "confusion_matrix" not in test
        assert summary["validation"]["macro_f1"] > 0.6 and summary["thresholds"]["values"]
    results = (Path(config.out_dir) / "results.md").read_text()
    assert "| test subset accuracy | test micro F1 | test macro F1 | same label set as teacher |" in results
    assert "Per label on test: teacher" in results and "thresholds:" in results and "wins" in results
    assert not (Path(config.out_dir) / "confusion_matrices.png").exists()
    int8 = metrics["compress"]["students"]["rnn-attention"]
    assert int8["int8"].startswith(("shipped", "refused")) and int8["int8_check"]["agreement"] >= 0.9


def test_saved_student_predicts_label_sets_in_python_onnx_and_http(multi_label_run, capsys):
    from fastapi.testclient import TestClient

    from textdistill import Student
    from textdistill.compress import load_onnx_student
    from textdistill.serve import create_app

    _, metrics = multi_label_run
    model_dir = Path(metrics["students"][0]["model_dir"])
    student = Student.from_pretrained(model_dir)
    assert student.multi_label and student.config["task"] == "multi_label"
    texts = ["happy lovely great day", "so scared and afraid wow shocked", "the a it"]
    predictions = student.predict(texts)
    probabilities = student.predict_proba(texts)
    assert probabilities.shape == (3, 4) and not np.allclose(probabilities.sum(1), 1.0)  # sigmoids, not a softmax
    for row, prediction in zip(probabilities, predictions, strict=True):
        expected = [name for name, p, t in zip(student.label_names, row, student.thresholds, strict=True) if p >= t]
        assert prediction["labels"] == expected and "label" not in prediction
    deploy_dir = metrics["compress"]["students"]["rnn-attention"]["deploy_dir"]  # vocabulary-pruned under TINY_RUN
    onnx, deployable = load_onnx_student(deploy_dir, "model.onnx"), Student.from_pretrained(deploy_dir)
    assert [p["labels"] for p in onnx.predict(texts)] == [p["labels"] for p in deployable.predict(texts)]
    answer = TestClient(create_app(student)).post("/predict", json={"texts": texts}).json()
    assert [p["labels"] for p in answer["predictions"]] == [p["labels"] for p in predictions]
    assert "label" not in answer["predictions"][0] and len(answer["predictions"][0]["probabilities"]) == 4
    from textdistill.cli import main

    capsys.readouterr()
    assert main(["predict", str(model_dir), *texts]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["labels"] for r in records] == [p["labels"] for p in predictions]


def test_python_api_distills_label_sets_from_given_logits(tmp_path):
    from textdistill import Distiller, Student
    from textdistill.builtin import build_tiny_bert

    rng = np.random.default_rng(5)
    train, validation = label_set_rows(240, "tr", rng), label_set_rows(80, "va", rng)
    tokenizer_dir = build_tiny_bert(tmp_path / "tokenizer", train.text.tolist())
    names = sorted(CUES)

    def teacher(frame: pd.DataFrame) -> np.ndarray:  # a confident, always-right teacher: ±3 per label
        return np.array([[3.0 if name in labels else -3.0 for name in names] for labels in frame["labels"]])

    distiller = Distiller(
        "cnn",
        teacher={"train": teacher(train), "validation": teacher(validation)},
        tokenizer=tokenizer_dir,
        arch={"num_filters": 16},
        embeddings={"enabled": False},
        distill={"epochs": 8, "batch_size": 16, "lr": 1e-2},
    )
    student = distiller.fit(train.text, train["labels"], validation=(validation.text, validation["labels"]))
    assert student.multi_label and student.label_names == names
    assert student.config["thresholds"]["method"] in ("global", "per_label")
    predicted = [set(p["labels"]) for p in student.predict(validation.text.tolist())]
    right = np.mean([p == set(labels) for p, labels in zip(predicted, validation["labels"], strict=True)])
    assert right >= 0.8  # cue words name the labels: most sets come out exactly right
    student.save_pretrained(tmp_path / "student")
    reloaded = Student.from_pretrained(tmp_path / "student")
    texts = validation.text.tolist()[:5]
    assert [set(p["labels"]) for p in reloaded.predict(texts)] == predicted[:5]
