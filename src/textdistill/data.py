"""Loading, validation, splitting and fingerprinting of labelled text datasets.

A dataset comes from a Hugging Face hub name (through ``datasets``) or a local directory holding
``train`` and ``test`` files (and optionally ``unsup``) as parquet, CSV or JSON lines. The original
training set is split into train and validation (stratified, seeded); the test set is only ever
used for final evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textdistill.config import DataConfig

logger = logging.getLogger(__name__)

UNLABELLED = -1
SPLIT_FILES = {"train": "train", "test": "test", "unlabelled": "unsup"}
READERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


class DataError(ValueError):
    """The data cannot be used as given; the message says which file, column or rows and why."""


@dataclass
class Split:
    """One split: texts, label ids (``-1`` where unlabelled) and stable example ids."""

    name: str
    texts: list[str]
    labels: np.ndarray  # (n,) int64
    ids: list[str]
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.texts, self.labels, self.ids)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: np.ndarray, name: str | None = None) -> Split:
        return Split(
            name=name or self.name,
            texts=[self.texts[i] for i in indices],
            labels=self.labels[indices],
            ids=[self.ids[i] for i in indices],
        )


@dataclass
class Dataset:
    """The splits of one run and the label mapping shared by every artifact made from them."""

    train: Split
    validation: Split
    test: Split
    label_names: list[str]
    unlabelled: Split | None = None
    dropped_rows: dict[str, int] = field(default_factory=dict)

    def splits(self) -> dict[str, Split]:
        named = {"train": self.train, "validation": self.validation, "test": self.test}
        if self.unlabelled is not None:
            named["unlabelled"] = self.unlabelled
        return named

    def fingerprints(self) -> dict[str, str]:
        return {name: split.fingerprint for name, split in self.splits().items()}

    def label_mapping(self) -> dict[str, Any]:
        return {"id2label": dict(enumerate(self.label_names)), "label2id": self.label2id}

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}


def fingerprint(texts: list[str], labels: np.ndarray, ids: list[str]) -> str:
    """A sha256 over the exact rows (texts, labels and ids, in order): keys every downstream cache."""
    digest = hashlib.sha256()
    for text, label, example_id in zip(texts, labels.tolist(), ids, strict=True):
        digest.update(f"{example_id}\x1f{label}\x1f".encode())
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Reading raw frames


def _find_split_file(directory: Path, stem: str) -> Path | None:
    matches = [directory / f"{stem}{ext}" for ext in READERS if (directory / f"{stem}{ext}").is_file()]
    if len(matches) > 1:
        raise DataError(f"{directory}: several files for split {stem!r}: {[m.name for m in matches]}; keep one")
    return matches[0] if matches else None


def read_table(path: Path) -> pd.DataFrame:
    """Read one parquet, CSV or JSON-lines file; a file that is not what its extension says is a DataError."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported extension; use one of {sorted(READERS)}")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        return pd.read_json(path, lines=True, dtype=False)  # keep JSON's own types: "007" stays a string
    except Exception as error:  # each reader raises its own exception types
        raise DataError(f"{path}: could not be read as {kind}: {type(error).__name__}: {error}") from error


def read_local_frames(directory: Path, want_unlabelled: bool) -> dict[str, pd.DataFrame]:
    """Read ``train``, ``test`` and (optionally) ``unsup`` files from a local directory."""
    frames = {}
    for split, stem in SPLIT_FILES.items():
        if split == "unlabelled" and not want_unlabelled:
            continue
        path = _find_split_file(directory, stem)
        if path is None:
            if split == "unlabelled":
                continue
            raise DataError(f"{directory}: no {stem} file (looked for {[stem + ext for ext in READERS]})")
        frames[split] = read_table(path)
        logger.info("read %s: %d rows from %s", split, len(frames[split]), path)
    return frames


def read_hub_frames(name: str, want_unlabelled: bool) -> tuple[dict[str, pd.DataFrame], list[str] | None]:
    """Read a dataset from the Hugging Face hub; returns the frames and the ClassLabel names if any."""
    import datasets  # imported here: slow to import and only needed for hub datasets

    try:
        loaded = datasets.load_dataset(name)
    except Exception as error:  # network, missing dataset, auth: all are reported the same way
        raise DataError(
            f"could not load dataset {name!r} from the Hugging Face hub ({type(error).__name__}: {error}); "
            "set data.path to a local directory with train/test files to work offline"
        ) from error
    missing = [key for key in ("train", "test") if key not in loaded]
    if missing:
        raise DataError(f"hub dataset {name!r} has no {missing} split(s); it has {list(loaded)}")
    wanted = {"train": "train", "test": "test"} | ({"unlabelled": "unsupervised"} if want_unlabelled else {})
    frames = {split: loaded[key].to_pandas() for split, key in wanted.items() if key in loaded}
    label_feature = loaded["train"].features.get("label")
    return frames, list(label_feature.names) if hasattr(label_feature, "names") else None


# ---------------------------------------------------------------------------------------------------
# Validation


def _require_columns(frame: pd.DataFrame, split: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{split}: missing column(s) {missing}; the columns that exist are {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{split}: the split is empty")


def _bad_text_mask(texts: pd.Series) -> np.ndarray:
    """True where a text is null, not a string, or empty after stripping whitespace."""
    return np.array([not isinstance(t, str) or not t.strip() for t in texts], dtype=bool)


def clean_rows(frame: pd.DataFrame, split: str, config: DataConfig) -> tuple[pd.DataFrame, int]:
    """Reject (or drop, by config) rows with empty, null or non-text texts and rows with null labels."""
    bad = _bad_text_mask(frame[config.text_column])
    if config.label_column in frame.columns and split != "unlabelled":
        bad |= frame[config.label_column].isna().to_numpy()
    count = int(bad.sum())
    if count and config.bad_rows == "error":
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(
            f"{split}: {count} row(s) with an empty, null or non-text {config.text_column!r} or a null label "
            f"(first rows {rows}); fix them or set data.bad_rows=drop"
        )
    if count:
        logger.warning("%s: dropped %d bad row(s) (empty, null or non-text)", split, count)
    kept = frame.loc[~bad].reset_index(drop=True)
    if kept.empty:
        raise DataError(f"{split}: no rows left after dropping {count} bad row(s)")
    return kept, count


def label_names_from(train_labels: pd.Series, class_names: list[str] | None) -> list[str]:
    """Sorted distinct training labels as strings (ClassLabel names when the hub provides them)."""
    values = sorted(train_labels.unique().tolist(), key=lambda v: (str(type(v)), v))
    return [_label_text(v, class_names) for v in values]


def encode_labels(labels: pd.Series, names: list[str], split: str, class_names: list[str] | None) -> np.ndarray:
    """Map raw labels to ids; a label never seen in training is a DataError naming it."""
    as_text = labels.map(lambda value: _label_text(value, class_names))
    mapping = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(as_text) - set(mapping))
    if unknown:
        raise DataError(f"{split}: label(s) {unknown[:10]} never seen in the training labels {names}")
    return as_text.map(mapping).to_numpy(dtype=np.int64)


def _label_text(value: Any, class_names: list[str] | None) -> str:
    if class_names is not None and isinstance(value, int | np.integer) and 0 <= value < len(class_names):
        return class_names[int(value)]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # CSV reads ints as floats when a column has nulls
    return str(value)


def example_ids(frame: pd.DataFrame, split: str, id_column: str) -> list[str]:
    """The id column when it is unique in the split, else the row number (IMDB's ids repeat per class)."""
    if id_column in frame.columns and frame[id_column].is_unique:
        return [str(v) for v in frame[id_column]]
    return [f"{split}:{i}" for i in range(len(frame))]


# ---------------------------------------------------------------------------------------------------
# Splitting


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a stratified random subset of ``size`` rows (sorted, so order is stable)."""
    if size >= len(labels):
        return np.arange(len(labels))
    holdout = stratified_split(labels, 1.0 - size / len(labels), seed)[0]
    return holdout


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with ``fraction`` of each class held out, seeded.

    numpy's PCG64 generator gives the same permutation for the same seed on every platform.
    """
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        cut = int(round(len(members) * fraction))
        held.append(members[:cut])
        kept.append(members[cut:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


# ---------------------------------------------------------------------------------------------------
# Entry point


def _labelled_split(frame: pd.DataFrame, name: str, config: DataConfig, names, class_names) -> Split:
    labels = encode_labels(frame[config.label_column], names, name, class_names)
    texts = frame[config.text_column].tolist()
    return Split(name=name, texts=texts, labels=labels, ids=example_ids(frame, name, config.id_column))


def _unlabelled_split(frame: pd.DataFrame, config: DataConfig, seed: int) -> Split:
    if config.max_unlabelled is not None and config.max_unlabelled < len(frame):
        rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[: config.max_unlabelled])
        frame = frame.iloc[rows].reset_index(drop=True)
    texts = frame[config.text_column].tolist()
    ids = example_ids(frame, "unlabelled", config.id_column)
    return Split(name="unlabelled", texts=texts, labels=np.full(len(texts), UNLABELLED, dtype=np.int64), ids=ids)


def _load_frames(config: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str] | None]:
    local = Path(config.path).expanduser()
    if local.is_dir():
        return read_local_frames(local, config.use_unlabelled), None
    if local.exists():
        raise DataError(f"data.path {config.path!r} is not a directory (give a hub name or a local directory)")
    if config.path.startswith((".", "/", "~")):
        raise DataError(f"data.path {config.path!r} does not exist (give a hub name or a local directory)")
    return read_hub_frames(config.path, config.use_unlabelled)


def load_dataset(config: DataConfig) -> Dataset:
    """Load, validate and split a dataset as ``config`` says."""
    frames, class_names = _load_frames(config)
    dropped = {}
    for name, frame in frames.items():
        columns = [config.text_column] + ([config.label_column] if name != "unlabelled" else [])
        _require_columns(frame, name, columns)
        frames[name], dropped[name] = clean_rows(frame, name, config)
    names = label_names_from(frames["train"][config.label_column], class_names)
    if len(names) < 2:
        raise DataError(f"train: only one label {names}; a classifier needs at least two")
    original_train = _labelled_split(frames["train"], "train", config, names, class_names)
    test = _labelled_split(frames["test"], "test", config, names, class_names)
    if config.max_train is not None:
        original_train = original_train.subset(stratified_sample(original_train.labels, config.max_train, config.seed))
    if config.max_test is not None:
        test = test.subset(stratified_sample(test.labels, config.max_test, config.seed))
    kept, held = stratified_split(original_train.labels, config.validation_fraction, config.seed)
    if len(kept) == 0 or len(held) == 0:
        raise DataError(
            f"train: data.validation_fraction={config.validation_fraction} of {len(original_train)} rows leaves "
            f"{len(kept)} train and {len(held)} validation rows; both need at least one"
        )
    unlabelled = _unlabelled_split(frames["unlabelled"], config, config.seed) if "unlabelled" in frames else None
    dataset = Dataset(
        train=original_train.subset(kept, "train"),
        validation=original_train.subset(held, "validation"),
        test=test,
        label_names=names,
        unlabelled=unlabelled,
        dropped_rows=dropped,
    )
    for name, split in dataset.splits().items():
        logger.info("%s: %d rows, fingerprint %s", name, len(split), split.fingerprint)
    return dataset


def label_balance(split: Split, label_names: list[str]) -> dict[str, int]:
    """Count of rows per label name."""
    counts = np.bincount(split.labels[split.labels >= 0], minlength=len(label_names))
    return {name: int(c) for name, c in zip(label_names, counts, strict=True)}


def save_label_mapping(dataset: Dataset, path: Path) -> None:
    """Write the label mapping saved next to every artifact."""
    path.write_text(json.dumps(dataset.label_mapping(), indent=2), encoding="utf-8")
