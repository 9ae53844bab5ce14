"""Quality metrics under one set of names (scikit-learn's): accuracy, macro F1, agreement, examples, confusion matrix,
per-label precision/recall/F1; for multi-label data micro F1 and subset accuracy as well.

``score`` is the one producer: training, teacher evaluation, test scoring and the compressed variants all use it,
so a metric has the same name in code, JSON and reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass(frozen=True, kw_only=True)
class Scores:
    """Quality of predicted labels against true labels (and, optionally, against a teacher).

    ``examples`` counts every row scored. ``accuracy``, ``macro_f1`` and ``confusion_matrix`` (rows: true label,
    columns: predicted) cover the labelled rows (label >= 0) and are None when no row is labelled;
    ``confusion_matrix`` is also None unless asked for. ``agreement`` is the share of rows whose predicted label
    is the teacher's, None without teacher logits. ``per_label`` (with the confusion matrix) holds one-vs-rest
    ``precision``, ``recall``, ``f1`` and ``support`` lists indexed by label id.

    Multi-label scores (``score_label_sets``) leave ``accuracy`` and ``confusion_matrix`` out and fill
    ``subset_accuracy`` (the whole predicted set right), ``micro_f1``, ``macro_f1`` and ``per_label``; their
    ``agreement`` is the share of rows whose predicted set is the teacher's.
    """

    accuracy: float | None = None
    macro_f1: float | None = None
    micro_f1: float | None = None
    subset_accuracy: float | None = None
    agreement: float | None = None
    examples: int = 0
    confusion_matrix: list[list[int]] | None = None
    per_label: dict[str, list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the fields that are not None (an absent metric is left out, never written as null)."""
        return {name: value for name, value in asdict(self).items() if value is not None}


# Part of the cache keys of stored scores, so that scores written under older names are recomputed.
METRIC_NAMES = [field.name for field in fields(Scores)]


def score(
    labels: np.ndarray,
    predictions: np.ndarray,
    num_labels: int | None = None,
    teacher_logits: np.ndarray | None = None,
    with_confusion: bool = False,
) -> Scores:
    """Score predicted label ids; the single place where metric values and names are made.

    Args:
        labels: (n,) true label ids, -1 for an unlabelled row (it counts in ``examples`` and ``agreement`` only).
        predictions: (n,) predicted label ids.
        num_labels: C, so a class absent from both arrays still counts in macro F1; default: largest id + 1.
        teacher_logits: (n, C) teacher logits for ``agreement``, or None.
        with_confusion: also compute the (C, C) confusion matrix.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"score: labels {labels.shape} and predictions {predictions.shape} must both be (n,)")
    labelled = labels >= 0
    quality = {}
    if labelled.any():
        quality = _label_quality(labels[labelled], predictions[labelled], num_labels, with_confusion)
    return Scores(examples=len(labels), agreement=_teacher_agreement(predictions, teacher_logits), **quality)


def _label_quality(labels: np.ndarray, predictions: np.ndarray, num_labels: int | None, with_confusion: bool):
    """Accuracy, macro F1 and (optionally) the confusion matrix of labelled rows, labels and predictions (m,)."""
    largest = int(max(labels.max(), predictions.max()))
    if num_labels is not None and largest >= num_labels:
        raise ValueError(f"score: label id {largest} is out of range for num_labels={num_labels}")
    classes = list(range(num_labels or largest + 1))
    quality: dict[str, Any] = {
        "accuracy": float((labels == predictions).mean()),
        "macro_f1": float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)),
    }
    if with_confusion:
        quality["confusion_matrix"] = confusion_matrix(labels, predictions, labels=classes).tolist()
        quality["per_label"] = per_label_scores(labels, predictions, classes)
    return quality


def per_label_scores(labels: np.ndarray, predictions: np.ndarray, classes: list[int] | None = None):
    """One-vs-rest precision, recall, F1 and support per label: (m,) class ids or (m, K) 0/1 label sets."""
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, average=None, zero_division=0
    )
    return {
        "precision": [float(v) for v in precision],
        "recall": [float(v) for v in recall],
        "f1": [float(v) for v in f1],
        "support": [int(v) for v in support],
    }


def score_label_sets(
    labels: np.ndarray, predictions: np.ndarray, teacher_predictions: np.ndarray | None = None, per_label: bool = False
) -> Scores:
    """Score multi-label predictions: subset accuracy, micro and macro F1 (and per label) on the labelled rows.

    Args:
        labels: (n, K) 0/1 true label sets; a row of ``-1`` is unlabelled (it counts in ``examples`` and
            ``agreement`` only).
        predictions: (n, K) 0/1 predicted label sets.
        teacher_predictions: (n, K) 0/1 label sets of the teacher (its thresholds applied), or None.
        per_label: also give per-label precision, recall, F1 and support.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions).astype(np.int64)
    if labels.shape != predictions.shape or labels.ndim != 2:
        raise ValueError(f"score_label_sets: labels {labels.shape} and predictions {predictions.shape} must be (n, K)")
    labelled = (labels >= 0).all(axis=1)
    quality: dict[str, Any] = {}
    if labelled.any():
        truth, guess = labels[labelled], predictions[labelled]
        quality = {
            "subset_accuracy": float((truth == guess).all(axis=1).mean()),
            "micro_f1": float(f1_score(truth, guess, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(truth, guess, average="macro", zero_division=0)),
        }
        if per_label:
            quality["per_label"] = per_label_scores(truth, guess)
    agreement_value = None
    if teacher_predictions is not None and len(predictions):
        teacher = np.asarray(teacher_predictions).astype(np.int64)
        if teacher.shape != predictions.shape:
            raise ValueError(f"score_label_sets: teacher {teacher.shape} and predictions {predictions.shape} differ")
        agreement_value = float((teacher == predictions).all(axis=1).mean())
    return Scores(examples=len(labels), agreement=agreement_value, **quality)


def _teacher_agreement(predictions: np.ndarray, teacher_logits: np.ndarray | None) -> float | None:
    if teacher_logits is None or not len(predictions):
        return None
    teacher = np.asarray(teacher_logits)
    if teacher.ndim != 2 or len(teacher) != len(predictions):
        raise ValueError(f"score: teacher_logits {teacher.shape} must be (n, C) with n = {len(predictions)}")
    return float((predictions == teacher.argmax(-1)).mean())


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, num_labels: int | None = None) -> dict:
    """``score`` with the confusion matrix, as JSON: {accuracy, macro_f1, examples, confusion_matrix}."""
    return score(labels, predictions, num_labels, with_confusion=True).to_dict()


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Share of rows where two models' argmax predictions agree; logits are (n, num_labels)."""
    return float((np.asarray(logits_a).argmax(-1) == np.asarray(logits_b).argmax(-1)).mean())
