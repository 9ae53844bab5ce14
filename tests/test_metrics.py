"""metrics: accuracy, macro F1 and the confusion matrix on a case computed by hand, and agreement."""

from __future__ import annotations

import numpy as np
import pytest

from textdistill.metrics import agreement, classification_metrics, score

# Class 2 is never predicted. Per class: 0 has precision 1/3, recall 1/2, F1 0.4; 1 has precision 2/3,
# recall 1, F1 0.8; 2 has F1 0. Macro F1 (0.4 + 0.8 + 0) / 3 = 0.4; accuracy 3/6.
LABELS = np.array([0, 0, 1, 1, 2, 2])
PREDICTIONS = np.array([0, 1, 1, 1, 0, 0])


def test_classification_metrics_on_a_hand_computed_case():
    metrics = classification_metrics(LABELS, PREDICTIONS)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx(0.4)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [2, 0, 0]]  # rows: true, columns: predicted
    assert metrics["examples"] == 6


def test_a_class_absent_from_labels_and_predictions_still_counts_with_num_labels():
    metrics = classification_metrics(LABELS, PREDICTIONS, num_labels=4)
    assert metrics["macro_f1"] == pytest.approx((0.4 + 0.8 + 0 + 0) / 4)
    assert np.asarray(metrics["confusion_matrix"]).shape == (4, 4)
    assert metrics["confusion_matrix"][3] == [0, 0, 0, 0]


def test_perfect_predictions():
    metrics = classification_metrics(LABELS, LABELS)
    assert metrics["accuracy"] == 1.0 and metrics["macro_f1"] == pytest.approx(1.0)
    assert metrics["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_agreement_compares_argmax_rows():
    first = np.array([[2.0, 1.0], [0.0, 1.0], [3.0, 3.0]])  # argmax 0, 1, 0 (a tie goes to the first label)
    second = np.array([[0.0, 1.0], [0.0, 5.0], [1.0, 0.0]])  # argmax 1, 1, 0
    assert agreement(first, second) == pytest.approx(2 / 3)
    assert agreement(first, first) == 1.0


def test_score_agreement_is_the_share_of_predictions_matching_the_teacher_argmax():
    teacher = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] * 2)  # argmax 0, 1, 2, 0, 1, 2
    scores = score(LABELS, PREDICTIONS, 3, teacher_logits=teacher)
    assert scores.agreement == pytest.approx(2 / 6)  # rows 0 and 1 match (predictions 0, 1, 1, 1, 0, 0)
    assert scores.accuracy == pytest.approx(0.5) and scores.macro_f1 == pytest.approx(0.4)
    assert score(LABELS, PREDICTIONS).agreement is None  # no teacher: no agreement figure
