"""Quality metrics: accuracy, F1, confusion matrix, agreement between two models."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, num_labels: int | None = None) -> dict:
    """Accuracy, macro F1 and the confusion matrix (rows: true label, columns: predicted) of label ids (n,)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    classes = list(range(num_labels or int(max(labels.max(), predictions.max()) + 1)))
    return {
        "accuracy": float((labels == predictions).mean()),
        "f1_macro": float(f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
        "n": int(len(labels)),
    }


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Share of rows where two models' argmax predictions agree; logits are (n, num_labels)."""
    return float((np.asarray(logits_a).argmax(-1) == np.asarray(logits_b).argmax(-1)).mean())
