"""One name per metric (accuracy, macro_f1, agreement, examples, confusion_matrix): made by metrics.score, read
under the same names by the run report."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from textdistill.metrics import METRIC_NAMES, Scores, classification_metrics, score
from textdistill.report import _report_rows, results_table

# Labelled rows 0, 2, 3: predictions 0, 0, 1 for labels 0, 1, 1 → accuracy 2/3; F1 class 0: 2/3, class 1: 2/3.
LABELS = np.array([0, -1, 1, 1])
PREDICTIONS = np.array([0, 1, 0, 1])
TEACHER = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # argmax 0, 0, 0, 1 → agrees on 3 of 4 rows


def test_score_uses_scikit_learn_names_and_scores_labelled_rows_only():
    scores = score(LABELS, PREDICTIONS, num_labels=2, teacher_logits=TEACHER, with_confusion=True)
    result = scores.to_dict()
    assert result.pop("confusion_matrix") == [[1, 0], [1, 1]]  # rows: true label, columns: predicted
    per_label = result.pop("per_label")  # one-vs-rest, indexed by label id: comes with the confusion matrix
    assert per_label["precision"] == [0.5, 1.0] and per_label["recall"] == [1.0, 0.5]
    assert per_label["f1"] == pytest.approx([2 / 3, 2 / 3]) and per_label["support"] == [1, 2]
    assert result == pytest.approx({"accuracy": 2 / 3, "macro_f1": 2 / 3, "agreement": 3 / 4, "examples": 4})
    assert METRIC_NAMES == [
        "accuracy",
        "macro_f1",
        "micro_f1",
        "subset_accuracy",
        "agreement",
        "examples",
        "confusion_matrix",
        "per_label",
    ]


def test_to_dict_leaves_out_what_was_not_measured():
    assert score(LABELS, PREDICTIONS).to_dict().keys() == {"accuracy", "macro_f1", "examples"}
    assert score(np.full(3, -1), np.zeros(3, dtype=int)).to_dict() == {"examples": 3}  # nothing labelled
    assert Scores().to_dict() == {"examples": 0}


def test_classification_metrics_is_score_with_the_confusion_matrix():
    assert (
        classification_metrics(LABELS, PREDICTIONS, 2) == score(LABELS, PREDICTIONS, 2, with_confusion=True).to_dict()
    )


@pytest.mark.parametrize(
    ("labels", "predictions", "num_labels", "teacher", "message"),
    [
        (np.array([0, 1]), np.array([0, 1, 1]), None, None, r"labels \(2,\) and predictions \(3,\)"),
        (np.array([0, 2]), np.array([0, 1]), 2, None, "label id 2 is out of range for num_labels=2"),
        (np.array([0, 1]), np.array([0, 1]), 2, np.zeros((3, 2)), r"teacher_logits \(3, 2\) must be \(n, C\)"),
    ],
)
def test_mismatched_inputs_are_errors_not_silent_scores(labels, predictions, num_labels, teacher, message):
    with pytest.raises(ValueError, match=message):
        score(labels, predictions, num_labels, teacher)


def _run_metrics() -> dict:
    """A run's metrics holding only the new names: teacher, one student and its ONNX int8 variant."""
    student_test = {"accuracy": 0.75, "macro_f1": 0.7312, "agreement": 0.8, "examples": 8}
    int8_test = {"accuracy": 0.625, "macro_f1": 0.6032, "agreement": 0.7, "examples": 8}
    return {
        "teacher": {"test_metrics": {"accuracy": 0.875, "macro_f1": 0.8571, "examples": 8}},
        "students": [{"tag": "bag", "tokens": {"max_length": 48}, "test": student_test}],
        "compress": {
            "students": {"bag": {"scores": {"float": student_test, "onnx-int8": int8_test}, "onnx_parity": 0}}
        },
        "bench": [],
    }


def test_report_reads_macro_f1_of_every_model():
    config = SimpleNamespace(tokens=SimpleNamespace(teacher_max_length=32, student_max_length=48))
    rows = _report_rows(config, _run_metrics())
    assert [(row["model"], row["macro_f1"]) for row in rows] == [
        ("teacher (32 tokens)", 0.8571),
        ("bag (48 tokens)", 0.7312),
        ("bag onnx (48 tokens)", 0.7312),  # the float ONNX export carries the float student's scores
        ("bag onnx int8 (48 tokens)", 0.6032),
    ]
    table = results_table(rows)
    assert "| test macro F1 |" in table.splitlines()[0]
    assert "| teacher (32 tokens) | 0.8750 | 0.8571 | – |" in table
    assert "| bag onnx int8 (48 tokens) | 0.6250 | 0.6032 | 0.7000 |" in table
