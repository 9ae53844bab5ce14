"""Several teachers, one honest target: temperature calibration, weights chosen on validation, and a report.

Each teacher's logits are first calibrated by one temperature T fitted on the validation split (Guo et al. 2017,
"On Calibration of Modern Neural Networks"): T minimises the validation NLL of softmax(logits / T). One-vs-rest
decision values (the n-gram teacher) and fine-tuned transformers are both miscalibrated, in opposite directions,
so averaging their raw scores would weight them arbitrarily.

Two combiners are compared, both judged by held-out NLL on validation (cross-fitted, the same folds):

- weight search: a mixture Σ_t w_t softmax(l_t / T_t) with w on the simplex, chosen by validation NLL on a grid
  (≤ 3 teachers) or by pairwise coordinate search (more);
- stacking: a multinomial logistic regression on the concatenated calibrated log-probabilities.

The temperatures are fitted once on all of validation (one scalar per teacher, shared by both combiners), so the
cross-fitted NLLs are very slightly optimistic for both alike. The combiner with the lower held-out NLL wins
(ties: the weights, the simpler one). Test data plays no part in any choice.

The combined target is a log-probability (n, K): log Σ_t w_t p_t, so that softmax of it is the mixture.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from textdistill.metrics import agreement, score

logger = logging.getLogger(__name__)

TEMPERATURE_BOUNDS = (0.05, 20.0)
WEIGHT_TIE = 1e-9  # NLL differences below this are ties (float noise of the same mixture)
STACKING_C = 1.0


# ---------------------------------------------------------------------------------------------------
# Input checks


def _check_logits(logits: Any, labels: Any | None = None, name: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """logits (n, K) float64 with n ≥ 1, K ≥ 2, finite; labels (n,) ints in 0..K-1 (or empty when not given)."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2 or len(logits) == 0:
        raise ValueError(f"{name}: expected logits of shape (n, K) with n >= 1 and K >= 2, got {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError(f"{name}: {int((~np.isfinite(logits)).sum())} non-finite logits (NaN or inf)")
    if labels is None:
        return logits, np.zeros(0, dtype=np.int64)
    y = np.asarray(labels)
    if y.shape != (len(logits),) or y.dtype.kind not in "iu":
        raise ValueError(
            f"{name}: labels must be integer class ids of shape ({len(logits)},), got {y.dtype} {y.shape}"
        )
    if y.min() < 0 or y.max() >= logits.shape[1]:
        raise ValueError(
            f"{name}: labels must lie in 0..{logits.shape[1] - 1} (no unlabelled rows), got {y.min()}..{y.max()}"
        )
    return logits, y.astype(np.int64)


def _check_teachers(by_teacher: Mapping[str, Any], labels: Any | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every teacher's logits (n, K) with the same n and K; labels (n,)."""
    if not by_teacher:
        raise ValueError("no teachers given; pass {name: logits (n, K)}")
    shapes = {name: np.shape(values) for name, values in by_teacher.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"teachers' logits differ in shape {shapes}; they must cover the same rows and labels")
    checked = {name: _check_logits(values, labels, name) for name, values in by_teacher.items()}
    return {name: values for name, (values, _) in checked.items()}, next(iter(checked.values()))[1]


# ---------------------------------------------------------------------------------------------------
# Calibration


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood −(1/n) Σ_i log softmax(logits_i)[y_i]; logits (n, K), labels (n,)."""
    logits, labels = _check_logits(logits, labels)
    return float(-log_softmax(logits, axis=1)[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] minimising nll(logits / T, labels); logits (n, K) (validation), labels (n,).

    A bounded 1-D search on log T (the NLL is smooth and, in practice, unimodal in log T). A result at a bound
    (e.g. perfectly separated logits, whose NLL keeps falling as T → 0) is logged as a warning.
    """
    logits, labels = _check_logits(logits, labels)
    rows = np.arange(len(labels))

    def objective(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, labels].mean())

    low, high = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    found = minimize_scalar(objective, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    temperature = float(np.exp(found.x))
    if min(found.x - low, high - found.x) < 1e-3:
        logger.warning("fit_temperature: T=%.3g is at the search bound %s", temperature, TEMPERATURE_BOUNDS)
    return temperature


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top label: Σ_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|.

    probabilities (n, K) rows summing to 1; labels (n,). ``bins`` equal-width confidence bins (lo, hi] on [0, 1].
    """
    probabilities, labels = _check_logits(probabilities, labels, "probabilities")
    if bins < 1:
        raise ValueError(f"calibration_error: bins must be >= 1, got {bins}")
    if (probabilities < 0).any() or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("calibration_error: rows must be probabilities summing to 1; pass softmax(logits)")
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    gaps = np.bincount(which, weights=correct - confidence, minlength=bins)  # per bin: Σ (correct − confidence)
    return float(np.abs(gaps[counts > 0]).sum() / len(labels))


def calibrate(logits_by_teacher: Mapping[str, np.ndarray], temperatures: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Each teacher's logits divided by its temperature, (n, K) float64."""
    missing = sorted(set(logits_by_teacher) - set(temperatures))
    if missing:
        raise ValueError(f"no temperature for teachers {missing}; fit them with fit_temperature on validation")
    return {
        name: np.asarray(values, dtype=np.float64) / temperatures[name] for name, values in logits_by_teacher.items()
    }


# ---------------------------------------------------------------------------------------------------
# Combining


def _log_probabilities(calibrated: Mapping[str, np.ndarray]) -> np.ndarray:
    """Stacked log-softmax of each teacher, (T, n, K)."""
    return np.stack([log_softmax(np.asarray(values, dtype=np.float64), axis=1) for values in calibrated.values()])


def _mixture(log_probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """log Σ_t w_t p_t for log_probabilities (T, n, K), weights (T,) → (n, K); zero weights drop out exactly."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return logsumexp(log_probabilities + log_weights[:, None, None], axis=0)


def _check_weights(calibrated: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    if set(weights) != set(calibrated):
        raise ValueError(f"weights are for {sorted(weights)} but the teachers are {sorted(calibrated)}")
    values = np.array([float(weights[name]) for name in calibrated])
    if (values < 0).any() or not np.isclose(values.sum(), 1.0, atol=1e-6):
        raise ValueError(f"weights must be >= 0 and sum to 1, got {dict(weights)}")
    return values


def combine(calibrated: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The combined target log Σ_t w_t softmax(calibrated_t), (n, K) float32: softmax of it is the mixture.

    calibrated: {teacher: (n, K) logits already divided by the teacher's temperature}; weights: on the simplex.
    """
    checked, _ = _check_teachers(calibrated, None)
    return _mixture(_log_probabilities(checked), _check_weights(checked, weights)).astype(np.float32)


def _mixture_nll(log_probabilities: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """NLL of the mixture; log_probabilities (T, n, K) of the rows ``labels`` (n,) refers to."""
    picked = log_probabilities[:, np.arange(len(labels)), labels]  # (T, n)
    with np.errstate(divide="ignore"):
        return float(-logsumexp(picked + np.log(weights)[:, None], axis=0).mean())


def simplex_grid(teachers: int, step: float) -> np.ndarray:
    """Every weight vector (T,) with entries in multiples of ``step`` summing to 1, as rows (G, T)."""
    units = round(1.0 / step)
    if not np.isclose(units * step, 1.0):
        raise ValueError(f"step must divide 1 (e.g. 0.05, 0.1), got {step}")
    rows = [c for c in itertools.product(range(units + 1), repeat=teachers - 1) if sum(c) <= units]
    return np.array([[*c, units - sum(c)] for c in rows], dtype=np.float64) / units


def _unevenness(weights: np.ndarray) -> float:
    """Squared distance from equal weights: the tie-break (more even first)."""
    return float(((weights - 1.0 / len(weights)) ** 2).sum())


def _best_on_grid(log_probabilities: np.ndarray, labels: np.ndarray, step: float) -> np.ndarray:
    candidates = simplex_grid(len(log_probabilities), step)
    losses = np.array([_mixture_nll(log_probabilities, labels, w) for w in candidates])
    tied = np.flatnonzero(losses <= losses.min() + WEIGHT_TIE)
    return candidates[min(tied, key=lambda i: _unevenness(candidates[i]))]


def _coordinate_search(log_probabilities: np.ndarray, labels: np.ndarray, step: float) -> np.ndarray:
    """From equal weights, move ``step`` of weight between two teachers while that lowers the NLL."""
    teachers = len(log_probabilities)
    weights = np.full(teachers, 1.0 / teachers)
    best = _mixture_nll(log_probabilities, labels, weights)
    improved = True
    while improved:
        improved = False
        for to, source in itertools.permutations(range(teachers), 2):
            moved = min(step, weights[source])
            if moved <= 0:
                continue
            trial = weights.copy()
            trial[to] += moved
            trial[source] -= moved
            loss = _mixture_nll(log_probabilities, labels, trial)
            if loss < best - WEIGHT_TIE:
                weights, best, improved = trial, loss, True
    return weights


def _search_weights(log_probabilities: np.ndarray, labels: np.ndarray, step: float) -> np.ndarray:
    if len(log_probabilities) <= 3:
        return _best_on_grid(log_probabilities, labels, step)
    return _coordinate_search(log_probabilities, labels, step)


def choose_weights(calibrated: Mapping[str, np.ndarray], labels: np.ndarray, step: float = 0.05) -> dict[str, float]:
    """Mixture weights on the simplex minimising the NLL of Σ_t w_t softmax(calibrated_t) on these rows.

    calibrated: {teacher: (n, K)} validation logits divided by each teacher's temperature; labels (n,).
    A grid of multiples of ``step`` for ≤ 3 teachers, pairwise coordinate search for more; ties go to the more
    even weights.
    """
    checked, y = _check_teachers(calibrated, labels)
    weights = _search_weights(_log_probabilities(checked), y, step)
    return {name: round(float(w), 10) for name, w in zip(checked, weights, strict=True)}


# ---------------------------------------------------------------------------------------------------
# Stacking


@dataclass
class Stacker:
    """Multinomial logistic regression on concatenated calibrated log-probabilities (teachers in ``teachers``
    order); coef (M, T·K), intercept (M,), M = 1 for two classes (sklearn's binary form) and K otherwise."""

    teachers: list[str]
    coef: np.ndarray
    intercept: np.ndarray

    def log_probabilities(self, calibrated: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n, K) float32 log-probabilities of the stacked model."""
        features = _stacking_features({name: calibrated[name] for name in self.teachers})
        scores = features @ self.coef.T + self.intercept
        if scores.shape[1] == 1:  # binary: p(class 1) = sigmoid(score) = softmax([0, score])[1]
            scores = np.hstack([np.zeros_like(scores), scores])
        return log_softmax(scores, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"teachers": self.teachers, "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}


def _stacking_features(calibrated: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concatenated log-softmax of each teacher, (n, T·K)."""
    return np.concatenate([log_softmax(np.asarray(v, dtype=np.float64), axis=1) for v in calibrated.values()], axis=1)


def fit_stacker(calibrated: Mapping[str, np.ndarray], labels: np.ndarray, c: float = STACKING_C) -> Stacker:
    """A logistic regression (lbfgs, L2 with inverse strength ``c``) from the teachers' log-probabilities."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=1000).fit(_stacking_features(calibrated), labels)
    return Stacker(list(calibrated), model.coef_.astype(np.float64), model.intercept_.astype(np.float64))


# ---------------------------------------------------------------------------------------------------
# Weight search against stacking


@dataclass
class EnsembleChoice:
    """The chosen combiner and how both did: held-out (cross-fitted) validation NLL of each, the winner, the
    weights and the stacker fitted on all validation rows."""

    method: str  # "weights" or "stacking"
    weights: dict[str, float]
    stacker: Stacker
    weight_search_nll: float
    stacking_nll: float
    folds: int
    fold_weights: list[dict[str, float]] = field(default_factory=list)

    def combine(self, calibrated: Mapping[str, np.ndarray]) -> np.ndarray:
        """The chosen combiner's target, (n, K) float32 log-probabilities."""
        if self.method == "stacking":
            return self.stacker.log_probabilities(calibrated)
        return combine(calibrated, self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stacker": self.stacker.to_dict()}


def _held_out_nlls(
    checked: dict[str, np.ndarray], labels: np.ndarray, step: float, folds: int, seed: int
) -> tuple[float, float, list[dict[str, float]]]:
    """Cross-fitted NLL of weight search and of stacking over the same stratified folds; and each fold's weights."""
    from sklearn.model_selection import StratifiedKFold

    log_probabilities = _log_probabilities(checked)
    out_weights = np.zeros(log_probabilities.shape[1:])
    out_stacked = np.zeros_like(out_weights)
    fold_weights = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(np.zeros(len(labels)), labels):
        weights = _search_weights(log_probabilities[:, fit_rows], labels[fit_rows], step)
        fold_weights.append({name: round(float(w), 10) for name, w in zip(checked, weights, strict=True)})
        out_weights[held_rows] = _mixture(log_probabilities[:, held_rows], weights)
        stacker = fit_stacker({n: v[fit_rows] for n, v in checked.items()}, labels[fit_rows])
        out_stacked[held_rows] = stacker.log_probabilities({n: v[held_rows] for n, v in checked.items()})
    rows = np.arange(len(labels))
    return float(-out_weights[rows, labels].mean()), float(-out_stacked[rows, labels].mean()), fold_weights


def choose_combiner(
    calibrated: Mapping[str, np.ndarray], labels: np.ndarray, step: float = 0.05, folds: int = 5, seed: int = 0
) -> EnsembleChoice:
    """Weight search vs stacking on validation: both judged by ``folds``-fold held-out NLL; the lower wins.

    calibrated: {teacher: (n, K)} validation logits divided by each teacher's temperature; labels (n,).
    The winner's final form (weights or stacker) is then fitted on all n rows.
    """
    checked, y = _check_teachers(calibrated, labels)
    if np.bincount(y).min(initial=len(y)) < folds:
        raise ValueError(f"choose_combiner: {folds} folds need at least {folds} validation rows of every class")
    weight_nll, stacking_nll, fold_weights = _held_out_nlls(checked, y, step, folds, seed)
    choice = EnsembleChoice(
        method="stacking" if stacking_nll < weight_nll else "weights",
        weights=choose_weights(checked, y, step),
        stacker=fit_stacker(checked, y),
        weight_search_nll=weight_nll,
        stacking_nll=stacking_nll,
        folds=folds,
        fold_weights=fold_weights,
    )
    logger.info(
        "ensemble: held-out validation NLL weights %.4f vs stacking %.4f → %s (weights %s)",
        weight_nll,
        stacking_nll,
        choice.method,
        choice.weights,
    )
    return choice


# ---------------------------------------------------------------------------------------------------
# Report


def model_report(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """accuracy, macro_f1 (metrics.score), nll and ece of one model's logits (n, K) against labels (n,)."""
    logits, y = _check_logits(logits, labels)
    scores = score(y, logits.argmax(axis=1), num_labels=logits.shape[1])
    probabilities = np.exp(log_softmax(logits, axis=1))
    return {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "nll": nll(logits, y),
        "ece": calibration_error(probabilities, y, bins),
        "examples": scores.examples,
    }


def teacher_report(logits_by_teacher: Mapping[str, np.ndarray], labels: np.ndarray | None) -> dict[str, Any]:
    """Per model (teachers and, if included, the ensemble): accuracy, macro F1, NLL, ECE; and pairwise agreement.

    logits_by_teacher: {name: (n, K) logits or log-probabilities}, all over the same rows; labels (n,), or None
    for unlabelled rows (then only agreement). Agreement keys are "a vs b" in the given order.
    """
    checked, _ = _check_teachers(logits_by_teacher, None)
    report: dict[str, Any] = {}
    if labels is not None:
        report["models"] = {name: model_report(values, labels) for name, values in checked.items()}
    report["agreement"] = {
        f"{a} vs {b}": agreement(checked[a], checked[b]) for a, b in itertools.combinations(checked, 2)
    }
    return report
