"""Multi-label decisions: per-label sigmoid probabilities, decision thresholds chosen on validation, and scoring of
any model's logits whatever the task.

A multi-label model outputs one logit per label; a label is predicted when its sigmoid probability reaches the
label's threshold. ``choose_thresholds`` compares one global threshold with one threshold per label by cross-fitting
on validation (choose on one half, score macro F1 on the other, both ways) and keeps the winner, refitted on the
whole validation split; the choice and both held-out scores are saved with the model (``Thresholds.to_dict``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from textdistill.metrics import Scores, score, score_label_sets

logger = logging.getLogger(__name__)

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05, 0.10, ..., 0.95
DEFAULT_THRESHOLD = 0.5


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Per-label probabilities σ(logits), same shape, computed without overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -logits))


@dataclass
class Thresholds:
    """The decision thresholds of a multi-label model, as chosen on validation.

    ``values``: (K,) the threshold of each label in use (all equal when ``method`` is ``global``).
    ``method``: ``global`` or ``per_label``, the one with the higher held-out validation macro F1.
    ``held_out_macro_f1``: {``global``, ``per_label``} macro F1 of each method chosen on one half of validation and
    scored on the other (mean of both directions).
    ``global_threshold``: the best single threshold on the whole validation split.
    """

    values: list[float]
    method: str = "global"
    global_threshold: float = DEFAULT_THRESHOLD
    held_out_macro_f1: dict[str, float] | None = None

    @classmethod
    def fixed(cls, num_labels: int, value: float = DEFAULT_THRESHOLD) -> Thresholds:
        return cls(values=[value] * num_labels, method="global", global_threshold=value)

    def predict(self, logits: np.ndarray) -> np.ndarray:
        """(n, K) 0/1 int64 label sets of (n, K) logits."""
        return (sigmoid(logits) >= np.asarray(self.values)).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Thresholds:
        return cls(**values)


def _f1_per_label(probabilities: np.ndarray, labels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(G, K) F1 of each label at each threshold of ``grid`` (G,), from (n, K) probabilities and 0/1 labels."""
    predicted = probabilities[None, :, :] >= grid[:, None, None]  # (G, n, K)
    truth = labels[None, :, :] > 0
    tp = (predicted & truth).sum(axis=1)
    fp = (predicted & ~truth).sum(axis=1)
    fn = (~predicted & truth).sum(axis=1)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _fit(probabilities: np.ndarray, labels: np.ndarray, method: str, grid: np.ndarray) -> np.ndarray:
    """(K,) thresholds maximising macro F1: one shared value (``global``) or each label's own (``per_label``)."""
    f1 = _f1_per_label(probabilities, labels, grid)
    if method == "global":
        return np.full(labels.shape[1], grid[int(f1.mean(axis=1).argmax())])
    return grid[f1.argmax(axis=0)]


def _macro_f1(probabilities: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> float:
    predicted = (probabilities >= thresholds).astype(np.int64)
    return float(score_label_sets(labels, predicted).macro_f1 or 0.0)


def choose_thresholds(
    logits: np.ndarray, labels: np.ndarray, seed: int = 0, grid: tuple[float, ...] = THRESHOLD_GRID
) -> Thresholds:
    """Thresholds for (n, K) validation ``logits`` and 0/1 ``labels``: global vs per label by held-out macro F1.

    The validation rows are halved by iterative stratification; each method is chosen on one half and scored on
    the other, both ways. The method with the higher mean wins (ties go to ``global``, the simpler one) and is
    refitted on every validation row.
    """
    from textdistill.data import iterative_stratification  # data imports nothing from here; avoids a cycle

    probabilities, labels, values = sigmoid(logits), np.asarray(labels), np.asarray(grid, dtype=np.float64)
    first, second = iterative_stratification(labels, 0.5, seed)
    held_out = {}
    for method in ("global", "per_label"):
        scores = [
            _macro_f1(probabilities[test], labels[test], _fit(probabilities[fit], labels[fit], method, values))
            for fit, test in ((first, second), (second, first))
        ]
        held_out[method] = float(np.mean(scores))
    method = "per_label" if held_out["per_label"] > held_out["global"] else "global"
    chosen = _fit(probabilities, labels, method, values)
    global_value = float(_fit(probabilities, labels, "global", values)[0])
    logger.info("thresholds: %s wins on held-out validation macro F1 %s", method, held_out)
    return Thresholds([float(v) for v in chosen], method, global_value, held_out)


def score_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    teacher_logits: np.ndarray | None = None,
    thresholds: Thresholds | None = None,
    teacher_thresholds: Thresholds | None = None,
    details: bool = False,
) -> Scores:
    """Scores of a model's (n, K) logits against ``labels``, whatever the task.

    Single-label (``labels`` (n,)): ``score`` of the argmax (``details``: confusion matrix and per-label scores).
    Multi-label (``labels`` (n, K)): ``score_label_sets`` of the label sets at ``thresholds`` (default 0.5), with
    agreement against the teacher's label sets at ``teacher_thresholds`` (default 0.5); ``details``: per label.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        num_labels = labels.shape[1]
        thresholds = thresholds or Thresholds.fixed(num_labels)
        teacher_sets = None
        if teacher_logits is not None:
            teacher_sets = (teacher_thresholds or Thresholds.fixed(num_labels)).predict(teacher_logits)
        return score_label_sets(labels, thresholds.predict(logits), teacher_sets, per_label=details)
    return score(labels, np.asarray(logits).argmax(-1), np.asarray(logits).shape[1], teacher_logits, details)
