"""``ngram`` teacher: NB-weighted logistic regression over binary word n-grams (Wang & Manning 2012).

Features are n-gram presence bits x ∈ {0, 1}^V (``CountVectorizer(binary=True)`` on lower-cased text with the
``<br />`` tags of IMDB turned into spaces). For one class against the rest, the naive-Bayes log-count ratio is

    p = alpha + Σ_{i: y_i = k} x_i,   q = alpha + Σ_{i: y_i ≠ k} x_i,   r = log((p / ‖p‖₁) / (q / ‖q‖₁))   (V,)

and an L2 logistic regression is fitted on the scaled features x ⊙ r: NBSVM with the logistic loss instead of
the hinge loss (and without NBSVM's interpolation towards the mean weight). Its decision value is
(r ⊙ w)·x + b.

- Multi-class (K > 2): one-vs-rest, one r and one binary model per class; logits (n, K) are the K decision values.
- Two classes: one model for class 1 against class 0 with decision value m, and logits [-m/2, m/2]. Then
  softmax(logits)[1] = sigmoid(m) is exactly the logistic regression's probability, and the logits are
  centred (zero sum), so a logit-matching loss sees no arbitrary offset.

One-vs-rest decision values are not calibrated probabilities; the ensemble step calibrates them by a temperature.
C is chosen on the validation split from ``c_grid`` (ties go to the smaller, more regularised C).

``out_of_fold_logits`` gives the training rows honest targets by k-fold cross-fitting: each fold's logits come
from a model fitted on the other folds (with the chosen C and the full model's vocabulary, which uses no labels).

Saved without pickle: ``config.json`` (settings, chosen C, label names, validation accuracy), ``vocabulary.json``
(the n-grams in column order) and ``weights.safetensors`` (ratios and coefficients (M, V), intercepts (M,), float64,
with M = 1 for two classes and M = K otherwise).

Paper: Sida Wang and Christopher D. Manning, "Baselines and Bigrams: Simple, Good Sentiment and Topic
Classification", ACL 2012.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from textdistill.config import ConfigError, from_dict
from textdistill.tokens import normalise_text

logger = logging.getLogger(__name__)

KIND = "ngram"
FORMAT_VERSION = 1
SOLVERS = ("liblinear", "saga")
# Words (with inner apostrophes: "don't") plus "!" and "?", which carry sentiment in reviews.
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w[\w']*\b|[!?]"
CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE = "config.json", "vocabulary.json", "weights.safetensors"


@dataclass
class NgramTeacherConfig:
    """Settings of the n-gram teacher: features (n-gram range, min_df, max_features, token pattern), NB smoothing
    ``alpha``, the C grid searched on validation, the logistic-regression solver and the out-of-fold folds/seed."""

    ngram_range: list[int] = field(default_factory=lambda: [1, 3])
    min_df: int = 2
    max_features: int | None = None
    alpha: float = 1.0
    c_grid: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0])
    folds: int = 5
    seed: int = 42
    solver: str = "liblinear"
    max_iter: int = 1000
    token_pattern: str = DEFAULT_TOKEN_PATTERN

    def __post_init__(self) -> None:
        low_high = self.ngram_range
        if len(low_high) != 2 or not 1 <= low_high[0] <= low_high[1]:
            raise ConfigError(f"ngram teacher: ngram_range must be [low, high] with 1 <= low <= high, got {low_high}")
        if self.min_df < 1 or (self.max_features is not None and self.max_features < 1):
            raise ConfigError("ngram teacher: min_df >= 1 and max_features >= 1 (or null) required")
        if not self.alpha > 0:
            raise ConfigError(f"ngram teacher: alpha (NB smoothing) must be > 0, got {self.alpha}")
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ConfigError(
                f"ngram teacher: c_grid must be a non-empty list of positive C values, got {self.c_grid}"
            )
        if self.folds < 2 or self.max_iter < 1:
            raise ConfigError("ngram teacher: folds >= 2 and max_iter >= 1 required")
        if self.solver not in SOLVERS:
            raise ConfigError(f"ngram teacher: solver must be one of {list(SOLVERS)}, got {self.solver!r}")
        try:
            re.compile(self.token_pattern)
        except re.error as error:
            raise ConfigError(f"ngram teacher: token_pattern is not a valid regex: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class NgramWeights:
    """One-vs-rest models: NB ratios and coefficients (M, V), intercepts (M,), float64 (M = 1 for two classes)."""

    ratios: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def decision_values(self, features: sparse.spmatrix) -> np.ndarray:
        """features (n, V) → (r ⊙ w)·x + b, (n, M) float64."""
        return np.asarray(features @ (self.ratios * self.coef).T) + self.intercept


# ---------------------------------------------------------------------------------------------------
# Input checks


def _check_texts(texts: Sequence[str], split: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"{split}: expected a list of texts, got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{split}: text {index} is {type(text).__name__}, expected str")
    return list(texts)


def _check_labelled(texts: Sequence[str], labels: Any, split: str, num_labels: int | None = None) -> np.ndarray:
    """Texts and integer class ids 0..num_labels-1 of equal, non-zero length; returns labels (n,) int64."""
    texts = _check_texts(texts, split)
    if not texts:
        raise ValueError(f"{split}: no texts; the n-gram teacher needs labelled texts for every class")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(texts):
        raise ValueError(f"{split}: {len(texts)} texts but labels of shape {y.shape}; give one class id per text")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{split}: labels must be integer class ids, got dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"{split}: label {y.min()} is negative (unlabelled rows?); keep only labelled texts")
    if num_labels is not None and y.max() >= num_labels:
        raise ValueError(f"{split}: label {y.max()} is outside the {num_labels} classes (ids 0..{num_labels - 1})")
    return y.astype(np.int64)


def _resolve_label_names(label_names: Sequence[str] | None, train_y: np.ndarray, val_y: np.ndarray) -> list[str]:
    """The given names, or "0".."K-1" from the largest id; every class must have training examples."""
    names = (
        list(label_names) if label_names is not None else [str(i) for i in range(max(train_y.max(), val_y.max()) + 1)]
    )
    if len(names) < 2:
        raise ValueError(f"the n-gram teacher needs at least two classes, got label names {names}")
    for split, y in (("train", train_y), ("validation", val_y)):
        if y.max() >= len(names):
            raise ValueError(f"{split}: label {y.max()} is outside the {len(names)} label names {names}")
    missing = [name for i, name in enumerate(names) if not np.any(train_y == i)]
    if missing:
        raise ValueError(f"train: classes {missing} have no training examples; every class needs some")
    return names


def _check_folds(y: np.ndarray, folds: int, label_names: list[str]) -> None:
    counts = np.bincount(y, minlength=len(label_names))
    too_few = {name: int(c) for name, c in zip(label_names, counts, strict=True) if c < folds}
    if folds < 2 or too_few:
        raise ValueError(
            f"out-of-fold logits with {folds} folds need >= 2 folds and >= {folds} texts per class; "
            f"too few: {too_few}. Use fewer folds or more data"
        )


# ---------------------------------------------------------------------------------------------------
# Fitting


def review_text(text: str) -> str:
    """``<br />`` tags as spaces, whitespace collapsed, lower-cased: what the n-gram vectorizer reads."""
    return normalise_text(text).lower()


def nb_log_count_ratios(features: sparse.spmatrix, positive: np.ndarray, alpha: float) -> np.ndarray:
    """r = log((p/‖p‖₁) / (q/‖q‖₁)) with p, q = alpha + feature counts of the positive / other rows; (V,) float64."""
    p = alpha + np.asarray(features[positive].sum(axis=0), dtype=np.float64).ravel()
    q = alpha + np.asarray(features[~positive].sum(axis=0), dtype=np.float64).ravel()
    return np.log(p / p.sum()) - np.log(q / q.sum())


def one_vs_rest_targets(y: np.ndarray, num_labels: int) -> list[np.ndarray]:
    """The binary problems: class 1 vs 0 for two classes, else each class vs the rest; M boolean (n,) arrays."""
    if num_labels == 2:
        return [y == 1]
    return [y == k for k in range(num_labels)]


class NgramTeacher:
    """NB-weighted logistic regression over binary word n-grams; logits (n, num_labels) float32.

    ``NgramTeacher(config).fit(train_texts, train_labels, val_texts, val_labels)`` chooses C on validation;
    ``predict_logits``, ``out_of_fold_logits``, ``save`` and ``NgramTeacher.load`` use the fitted model.
    """

    def __init__(self, config: NgramTeacherConfig | None = None) -> None:
        self.config = config or NgramTeacherConfig()
        self.vectorizer: Any = None
        self.weights: NgramWeights | None = None
        self.label_names: list[str] = []
        self.chosen_c: float | None = None
        self.validation_accuracy: float | None = None
        self.validation_accuracy_by_c: dict[float, float] = {}
        self.fit_seconds: float | None = None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def _new_vectorizer(self, vocabulary: list[str] | None = None) -> Any:
        from sklearn.feature_extraction.text import CountVectorizer

        config = self.config
        return CountVectorizer(
            binary=True,
            ngram_range=(config.ngram_range[0], config.ngram_range[1]),
            min_df=config.min_df,
            max_features=config.max_features,
            token_pattern=config.token_pattern,
            preprocessor=review_text,
            vocabulary=vocabulary,
            dtype=np.float64,
        )

    def _logistic_regression(self, c: float) -> Any:
        from sklearn.linear_model import LogisticRegression

        config = self.config
        dual = config.solver == "liblinear"  # the dual is faster when features outnumber texts
        return LogisticRegression(
            C=c, solver=config.solver, dual=dual, max_iter=config.max_iter, random_state=config.seed
        )

    def _fit_weights(self, features: sparse.spmatrix, y: np.ndarray, cs: list[float]) -> dict[float, NgramWeights]:
        """NB ratios (shared by every C) and one logistic regression per binary problem and C."""
        targets = one_vs_rest_targets(y, self.num_labels)
        ratios = np.stack([nb_log_count_ratios(features, t, self.config.alpha) for t in targets])
        scaled = [features @ sparse.diags(r) for r in ratios]
        by_c = {}
        for c in cs:
            models = [self._logistic_regression(c).fit(x, t) for x, t in zip(scaled, targets, strict=True)]
            coef = np.concatenate([m.coef_ for m in models]).astype(np.float64)
            intercept = np.concatenate([m.intercept_ for m in models]).astype(np.float64)
            by_c[c] = NgramWeights(ratios=ratios, coef=coef, intercept=intercept)
        return by_c

    def _logits(self, features: sparse.spmatrix, weights: NgramWeights) -> np.ndarray:
        """Decision values → logits (n, num_labels) float32 ([-m/2, m/2] for two classes)."""
        values = weights.decision_values(features)
        if self.num_labels == 2:
            values = np.hstack([-values / 2, values / 2])
        return values.astype(np.float32)

    def _vectorize_train(self, texts: list[str]) -> sparse.spmatrix:
        self.vectorizer = self._new_vectorizer()
        try:
            return self.vectorizer.fit_transform(texts)
        except ValueError as error:  # e.g. min_df above every n-gram's count
            raise ValueError(
                f"ngram teacher: no n-gram features from the training texts ({error}); "
                f"lower min_df (now {self.config.min_df}) or give more text"
            ) from error

    def fit(
        self,
        train_texts: Sequence[str],
        train_labels: Any,
        val_texts: Sequence[str],
        val_labels: Any,
        label_names: Sequence[str] | None = None,
    ) -> NgramTeacher:
        """Fit on train, choose C by validation accuracy; labels are class ids (n,), names default to "0".."K-1"."""
        started = time.perf_counter()
        train_y = _check_labelled(train_texts, train_labels, "train")
        val_y = _check_labelled(val_texts, val_labels, "validation")
        self.label_names = _resolve_label_names(label_names, train_y, val_y)
        train_x = self._vectorize_train(list(train_texts))
        val_x = self.vectorizer.transform(list(val_texts))
        cs = sorted(set(self.config.c_grid))
        candidates = self._fit_weights(train_x, train_y, cs)
        self.validation_accuracy_by_c = {
            c: float(np.mean(self._logits(val_x, w).argmax(1) == val_y)) for c, w in candidates.items()
        }
        self.chosen_c = max(cs, key=lambda c: (self.validation_accuracy_by_c[c], -c))  # ties: smaller C
        self.weights = candidates[self.chosen_c]
        self.validation_accuracy = self.validation_accuracy_by_c[self.chosen_c]
        self.fit_seconds = time.perf_counter() - started
        logger.info(
            "ngram teacher: %d features; validation accuracy by C %s; chose C=%g (%.4f) in %.0f s",
            train_x.shape[1],
            self.validation_accuracy_by_c,
            self.chosen_c,
            self.validation_accuracy,
            self.fit_seconds,
        )
        return self

    def _require_fitted(self) -> NgramWeights:
        if self.weights is None or self.vectorizer is None:
            raise ValueError("the n-gram teacher is not fitted: call fit(...) or NgramTeacher.load(directory) first")
        return self.weights

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits (n, num_labels) float32 in input order (an empty list gives shape (0, num_labels))."""
        weights = self._require_fitted()
        texts = _check_texts(texts, "predict")
        if not texts:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        return self._logits(self.vectorizer.transform(texts), weights)

    def out_of_fold_logits(
        self, texts: Sequence[str], labels: Any, folds: int | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Cross-fitted logits (n, num_labels) float32: row i's logits come from a model that never saw row i.

        Stratified ``folds``-fold split (default ``config.folds``, shuffled with ``seed``, default ``config.seed``);
        each fold's model uses the chosen C and this model's vocabulary (built without labels) and refits the
        NB ratios and the logistic regressions on the other folds.
        """
        from sklearn.model_selection import StratifiedKFold

        self._require_fitted()
        assert self.chosen_c is not None
        y = _check_labelled(texts, labels, "out-of-fold", self.num_labels)
        folds = self.config.folds if folds is None else folds
        _check_folds(y, folds, self.label_names)
        features = self.vectorizer.transform(list(texts))
        out = np.zeros((len(y), self.num_labels), dtype=np.float32)
        splitter = StratifiedKFold(
            n_splits=folds, shuffle=True, random_state=self.config.seed if seed is None else seed
        )
        for fold, (fit_rows, held_rows) in enumerate(splitter.split(np.zeros(len(y)), y)):
            weights = self._fit_weights(features[fit_rows], y[fit_rows], [self.chosen_c])[self.chosen_c]
            out[held_rows] = self._logits(features[held_rows], weights)
            logger.info("ngram teacher: out-of-fold logits, fold %d/%d done", fold + 1, folds)
        return out

    # -----------------------------------------------------------------------------------------------
    # Artifacts

    def summary(self) -> dict[str, Any]:
        """What config.json holds: kind, settings, chosen C, label names and validation accuracy."""
        return {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "label_names": self.label_names,
            "chosen_c": self.chosen_c,
            "validation_accuracy": self.validation_accuracy,
            "validation_accuracy_by_c": {str(c): a for c, a in self.validation_accuracy_by_c.items()},
            "num_features": len(self.vectorizer.vocabulary_) if self.vectorizer is not None else None,
            "fit_seconds": self.fit_seconds,
        }

    def save(self, directory: str | Path) -> Path:
        """Write config.json, vocabulary.json (n-grams in column order) and weights.safetensors; no pickle."""
        from safetensors.numpy import save_file

        weights = self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocabulary = self.vectorizer.get_feature_names_out().tolist()
        (directory / VOCABULARY_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        tensors = {name: np.ascontiguousarray(getattr(weights, name)) for name in ("ratios", "coef", "intercept")}
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"kind": KIND})
        (directory / CONFIG_FILE).write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> NgramTeacher:
        """The teacher saved by ``save``; missing files or mismatched shapes are ValueErrors naming the file."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        missing = [name for name in (CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
        if missing:
            raise ValueError(f"{directory}: not a saved n-gram teacher (missing {missing})")
        saved = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        if saved.get("kind") != KIND or saved.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory / CONFIG_FILE}: kind {saved.get('kind')!r} version "
                f"{saved.get('format_version')!r}, expected {KIND!r} version {FORMAT_VERSION}"
            )
        teacher = cls(from_dict(NgramTeacherConfig, saved["config"], prefix="ngram_teacher."))
        teacher.label_names = list(saved["label_names"])
        teacher.chosen_c, teacher.validation_accuracy = saved["chosen_c"], saved["validation_accuracy"]
        teacher.validation_accuracy_by_c = {float(c): a for c, a in saved["validation_accuracy_by_c"].items()}
        teacher.fit_seconds = saved.get("fit_seconds")
        vocabulary = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
        teacher.vectorizer = teacher._new_vectorizer(vocabulary)
        teacher.vectorizer.fit([])  # checks the fixed vocabulary and sets vocabulary_; learns nothing
        teacher.weights = NgramWeights(**load_file(str(directory / WEIGHTS_FILE)))
        teacher._check_shapes(directory, len(vocabulary))
        return teacher

    def _check_shapes(self, directory: Path, num_features: int) -> None:
        weights = self._require_fitted()
        rows = 1 if self.num_labels == 2 else self.num_labels
        expected = {"ratios": (rows, num_features), "coef": (rows, num_features), "intercept": (rows,)}
        for name, shape in expected.items():
            if getattr(weights, name).shape != shape:
                raise ValueError(
                    f"{directory / WEIGHTS_FILE}: {name} has shape {getattr(weights, name).shape}, expected {shape} "
                    f"for {self.num_labels} labels and {num_features} n-grams; the files do not belong together"
                )
