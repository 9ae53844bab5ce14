"""Loading, validation, splitting and fingerprinting of labelled text datasets.

A dataset comes from a Hugging Face hub name (through ``datasets``) or a local directory holding
``train`` and ``test`` files (and optionally ``unsup``) as parquet, CSV or JSON lines. The original
training set is split into train and validation (stratified, seeded); the test set is only ever
used for final evaluation. Texts repeated within a split or shared between splits (a row of
validation or test also in train, a transfer-set row also in validation or test) are counted, warned
about and, with ``data.drop_overlap``, dropped from the evaluation and transfer splits
(``data.drop_unlabelled_overlap``: from the transfer split only).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textdistill.cache import atomic_write_text
from textdistill.config import DataConfig
from textdistill.tokens import normalise_text

logger = logging.getLogger(__name__)

UNLABELLED = -1
SPLIT_FILES = {"train": "train", "validation": "validation", "test": "test", "unlabelled": "unsup"}
OPTIONAL_SPLITS = ("validation", "unlabelled")  # read when the directory has them
READERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


class DataError(ValueError):
    """The data cannot be used as given; the message says which file, column or rows and why."""


@dataclass
class Split:
    """One split: texts, label ids (``-1`` where unlabelled) and stable example ids.

    Multi-label data holds an (n, K) int64 multi-hot matrix instead (every entry ``-1`` on an unlabelled row).
    """

    name: str
    texts: list[str]
    labels: np.ndarray  # (n,) int64, or (n, K) int64 0/1 for multi-label data
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
    duplicates: DuplicateReport | None = None  # set by load_dataset
    task: str = "single_label"  # or "multi_label": every split's labels are an (n, K) multi-hot matrix

    @property
    def multi_label(self) -> bool:
        return self.task == "multi_label"

    def splits(self) -> dict[str, Split]:
        named = {"train": self.train, "validation": self.validation, "test": self.test}
        if self.unlabelled is not None:
            named["unlabelled"] = self.unlabelled
        return named

    def fingerprints(self) -> dict[str, str]:
        return {name: split.fingerprint for name, split in self.splits().items()}

    def label_mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = {"id2label": dict(enumerate(self.label_names)), "label2id": self.label2id}
        return mapping | ({"task": self.task} if self.multi_label else {})

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}


# Which splits each split is checked against: rows of the key whose text also occurs in a listed split
# are a leak (validation/test scores count rows seen in training; the transfer set holds evaluation texts).
LEAK_SOURCES = {"validation": ("train",), "test": ("train", "validation"), "unlabelled": ("validation", "test")}
DUPLICATE_NORMALISATION = "tokens.normalise_text: <br /> tags as spaces, whitespace stripped and collapsed; case kept"


@dataclass
class DuplicateReport:
    """Exact repeats of normalised text (``DUPLICATE_NORMALISATION``), counted before any drop.

    ``within_split[split]``: rows repeating the text of an earlier row of the same split.
    ``overlap[split][other]``: rows of ``split`` whose text also occurs in ``other`` (``LEAK_SOURCES``).
    ``dropped[split]``: rows removed by ``data.drop_overlap`` or ``data.drop_unlabelled_overlap`` (0 when off).
    """

    within_split: dict[str, int]
    overlap: dict[str, dict[str, int]]
    dropped: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"normalisation": DUPLICATE_NORMALISATION, **asdict(self)}


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


JSON_LINES_HINT = (
    'expected JSON Lines: one object per line, e.g. {"text": "a fine film", "label": 1} '
    "(a JSON array of such objects is read too)"
)


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
        if _starts_with_bracket(path):
            return _read_json_array(path)
        return pd.read_json(path, lines=True, dtype=False)  # keep JSON's own types: "007" stays a string
    except DataError:
        raise
    except Exception as error:  # each reader raises its own exception types
        hint = f"; {JSON_LINES_HINT}" if kind == "json" else ""
        raise DataError(f"{path}: could not be read as {kind}: {type(error).__name__}: {error}{hint}") from error


def _starts_with_bracket(path: Path) -> bool:
    """True when the file's first non-blank character is ``[``: a JSON array, not JSON Lines."""
    with path.open("rb") as handle:
        head = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"[")


def _read_json_array(path: Path) -> pd.DataFrame:
    """A JSON array of row objects (``[{"text": ..., "label": ...}, ...]``) as rows; anything else is a DataError."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        kinds = sorted({type(row).__name__ for row in rows}) if isinstance(rows, list) else [type(rows).__name__]
        raise DataError(f"{path}: holds a JSON array of {kinds}, not of row objects; {JSON_LINES_HINT}")
    logger.info("%s: a JSON array, read as %d rows (JSON Lines is the usual format)", path, len(rows))
    return pd.DataFrame.from_records(rows)


def read_local_frames(directory: Path, want_unlabelled: bool, want_validation: bool = True) -> dict[str, pd.DataFrame]:
    """Read ``train``, ``test`` and (when present and wanted) ``validation`` and ``unsup`` files from a directory."""
    frames = {}
    wanted = {"unlabelled": want_unlabelled, "validation": want_validation}
    for split, stem in SPLIT_FILES.items():
        if not wanted.get(split, True):
            continue
        path = _find_split_file(directory, stem)
        if path is None:
            if split in OPTIONAL_SPLITS:
                continue
            raise DataError(f"{directory}: no {stem} file (looked for {[stem + ext for ext in READERS]})")
        frames[split] = read_table(path)
        logger.info("read %s: %d rows from %s", split, len(frames[split]), path)
    return frames


def load_hub_dataset(name: str, failure: str, offline: str, **kwargs: Any) -> Any:
    """``datasets.load_dataset(name, **kwargs)``; any failure (network, missing dataset, auth) becomes a DataError
    "<failure> from the Hugging Face hub (<error>); <offline> to work offline"."""
    import datasets  # imported here: slow to import and only needed for hub datasets

    try:
        return datasets.load_dataset(name, **kwargs)
    except Exception as error:
        raise DataError(
            f"{failure} from the Hugging Face hub ({type(error).__name__}: {error}); {offline} to work offline"
        ) from error


def read_hub_frames(
    name: str, want_unlabelled: bool, want_validation: bool = True, label_column: str = "label"
) -> tuple[dict[str, pd.DataFrame], list[str] | None]:
    """Read a dataset from the Hugging Face hub; returns the frames and the ClassLabel names if any."""
    loaded = load_hub_dataset(
        name, f"could not load dataset {name!r}", "set data.path to a local directory with train/test files"
    )
    missing = [key for key in ("train", "test") if key not in loaded]
    if missing:
        raise DataError(f"hub dataset {name!r} has no {missing} split(s); it has {list(loaded)}")
    wanted = {"train": "train", "test": "test"} | ({"unlabelled": "unsupervised"} if want_unlabelled else {})
    if want_validation:
        wanted["validation"] = "validation"
    frames = {split: loaded[key].to_pandas() for split, key in wanted.items() if key in loaded}
    return frames, class_label_names(loaded["train"].features.get(label_column))


def class_label_names(feature: Any) -> list[str] | None:
    """The names of a hub dataset's ClassLabel ``feature`` (or of a Sequence of them: multi-label sets); None
    for any other feature or none."""
    names = getattr(getattr(feature, "feature", feature), "names", None)
    return None if names is None else list(names)


def read_named_split(
    path: str, split: str, where: str, label_column: str | None = None
) -> tuple[pd.DataFrame, list[str] | None]:
    """One split of the dataset ``path`` names: a file (whatever its name), a directory's ``<split>`` file or a
    Hugging Face hub dataset's ``split``. Returns the frame and the ClassLabel names of ``label_column`` (hub
    datasets with one, else None). ``where`` names the config entry in errors."""
    local = Path(path).expanduser()
    if local.is_dir():
        found = _find_split_file(local, SPLIT_FILES.get(split, split))
        if found is None:
            raise DataError(f"{where} {path!r}: a directory without a {split} file")
        local = found
    if local.is_file():
        return read_table(local), None
    if local.exists() or path.startswith((".", "/", "~")):
        raise DataError(f"{where} {path!r} does not exist (give a file, a directory or a hub name)")
    failure, offline = f"{where} {path!r}: could not load its {split} split", "give a local file or directory"
    loaded = load_hub_dataset(path, failure, offline, split=split)
    return loaded.to_pandas(), class_label_names(loaded.features.get(label_column) if label_column else None)


# ---------------------------------------------------------------------------------------------------
# Validation


def _require_columns(frame: pd.DataFrame, split: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{split}: missing column(s) {missing}; the columns that exist are {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{split}: the split is empty")


def _require_text(frame: pd.DataFrame, split: str, column: str) -> None:
    """A numeric text column (ids or labels picked by mistake, or digit-only texts in a CSV) is a DataError."""
    values = frame[column]
    if values.notna().any() and pd.api.types.is_numeric_dtype(values):
        textual = [
            c
            for c in frame.columns
            if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])
        ]
        raise DataError(
            f"{split}: text column {column!r} is numeric ({values.dtype}), not text; the columns that exist are "
            f"{list(frame.columns)} (text-like: {textual}); set data.text_column to the column holding the texts "
            "(a CSV column of digits only is read as numbers: use parquet or JSON Lines to keep such texts strings)"
        )


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
# Multi-label sets


def is_label_set(value: Any) -> bool:
    """True for a list-like label value (a list, tuple or array of label names or ids)."""
    return isinstance(value, list | tuple | np.ndarray)


def detect_task(labels: pd.Series, config: DataConfig) -> str:
    """``data.task``, or with ``auto``: ``multi_label`` when a training label is a list (or ``label_delimiter`` is
    set), else ``single_label``."""
    if config.task != "auto":
        return config.task
    if config.label_delimiter is not None or any(is_label_set(value) for value in labels):
        return "multi_label"
    return "single_label"


def label_sets(labels: pd.Series, split: str, config: DataConfig, class_names: list[str] | None) -> list[list[str]]:
    """Each row's label names: a list as given, a string cut at ``data.label_delimiter`` (or one name), none for an
    empty list; a row with no label is a DataError unless ``data.allow_empty_labels``."""
    sets = [label_set(value, config.label_delimiter, class_names) for value in labels]
    empty = [i for i, names in enumerate(sets) if not names]
    if empty and not config.allow_empty_labels:
        raise DataError(
            f"{split}: {len(empty)} row(s) with no label (first rows {empty[:5]}); set data.allow_empty_labels=true "
            "if a text may carry none of the labels"
        )
    return sets


def label_set(value: Any, delimiter: str | None, class_names: list[str] | None) -> list[str]:
    if is_label_set(value):
        names = [_label_text(v, class_names) for v in value]
    elif isinstance(value, str) and delimiter is not None:
        names = value.split(delimiter)
    else:
        names = [_label_text(value, class_names)]
    return sorted({name.strip() for name in names if name.strip()})


def multi_hot(sets: list[list[str]], names: list[str], split: str) -> np.ndarray:
    """(n, K) int64 0/1 matrix of label sets; a label never seen in training is a DataError naming it."""
    mapping = {name: i for i, name in enumerate(names)}
    unknown = sorted({name for row in sets for name in row} - set(mapping))
    if unknown:
        raise DataError(f"{split}: label(s) {unknown[:10]} never seen in the training labels {names}")
    matrix = np.zeros((len(sets), len(names)), dtype=np.int64)
    for row, members in enumerate(sets):
        matrix[row, [mapping[name] for name in members]] = 1
    return matrix


# ---------------------------------------------------------------------------------------------------
# Splitting


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a stratified random subset of ``size`` rows (sorted, so order is stable).

    ``labels`` is (n,) class ids or an (n, K) multi-hot matrix (iterative stratification).
    """
    if size >= len(labels):
        return np.arange(len(labels))
    holdout = stratified_split(labels, 1.0 - size / len(labels), seed)[0]
    return holdout


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out) with ``fraction`` of each class held out, seeded.

    numpy's PCG64 generator gives the same permutation for the same seed on every platform. An (n, K)
    multi-hot ``labels`` is split by ``iterative_stratification``.
    """
    if labels.ndim == 2:
        return iterative_stratification(labels, fraction, seed)
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        cut = int(round(len(members) * fraction))
        held.append(members[:cut])
        kept.append(members[cut:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def iterative_stratification(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) indices of a multi-hot (n, K) matrix, each label's rows shared out in proportion.

    Sechidis, Tsoumakas and Vlahavas 2011, "On the Stratification of Multi-Label Data": repeatedly take the label
    with the fewest rows still unassigned and give each of its rows to the subset that most lacks that label (ties:
    the subset that most lacks rows, then at random). Rows with no label fill the subsets' remaining room.
    """
    rng = np.random.default_rng(seed)
    matrix = np.asarray(labels) > 0
    n = len(matrix)
    room = np.array([fraction * n, (1.0 - fraction) * n])  # rows each subset still wants: 0 held, 1 kept
    wanted = np.outer([fraction, 1.0 - fraction], matrix.sum(axis=0)).astype(float)  # (2, K) label rows wanted
    subset = np.full(n, -1, dtype=np.int64)
    while True:
        open_rows = subset < 0
        counts = matrix[open_rows].sum(axis=0)
        if not counts.any():
            break
        label = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
        rows = np.flatnonzero(open_rows & matrix[:, label])
        for row in rows[rng.permutation(len(rows))]:
            chosen = _neediest(wanted[:, label], room, rng)
            subset[row] = chosen
            wanted[chosen] -= matrix[row]
            room[chosen] -= 1
    for row in np.flatnonzero(subset < 0):
        chosen = _neediest(room, room, rng)
        subset[row] = chosen
        room[chosen] -= 1
    return np.flatnonzero(subset == 1), np.flatnonzero(subset == 0)


def _neediest(need: np.ndarray, room: np.ndarray, rng: np.random.Generator) -> int:
    """The subset with the largest ``need``; ties broken by ``room``, then at random."""
    best = np.flatnonzero(need == need.max())
    if len(best) > 1:
        best = best[room[best] == room[best].max()]
    return int(best[0] if len(best) == 1 else rng.choice(best))


# ---------------------------------------------------------------------------------------------------
# Entry point


def _labelled_split(frame: pd.DataFrame, name: str, config: DataConfig, names, class_names, task: str) -> Split:
    if task == "multi_label":
        labels = multi_hot(label_sets(frame[config.label_column], name, config, class_names), names, name)
    else:
        labels = encode_labels(frame[config.label_column], names, name, class_names)
    texts = frame[config.text_column].tolist()
    return Split(name=name, texts=texts, labels=labels, ids=example_ids(frame, name, config.id_column))


def _unlabelled_split(frame: pd.DataFrame, config: DataConfig, seed: int, num_labels: int, task: str) -> Split:
    if config.max_unlabelled is not None and config.max_unlabelled < len(frame):
        rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[: config.max_unlabelled])
        frame = frame.iloc[rows].reset_index(drop=True)
    texts = frame[config.text_column].tolist()
    ids = example_ids(frame, "unlabelled", config.id_column)
    shape = (len(texts), num_labels) if task == "multi_label" else (len(texts),)
    return Split(name="unlabelled", texts=texts, labels=np.full(shape, UNLABELLED, dtype=np.int64), ids=ids)


def _load_frames(config: DataConfig) -> tuple[dict[str, pd.DataFrame], list[str] | None]:
    local = Path(config.path).expanduser()
    if local.is_dir():
        return read_local_frames(local, config.use_unlabelled, config.use_validation_split), None
    if local.exists():
        raise DataError(f"data.path {config.path!r} is not a directory (give a hub name or a local directory)")
    if config.path.startswith((".", "/", "~")):
        raise DataError(f"data.path {config.path!r} does not exist (give a hub name or a local directory)")
    return read_hub_frames(config.path, config.use_unlabelled, config.use_validation_split, config.label_column)


def training_label_names(train: pd.Series, config: DataConfig, class_names: list[str] | None, task: str) -> list[str]:
    """The label names of the run: sorted distinct training labels (every name of every set, multi-label)."""
    if task == "multi_label":
        sets = label_sets(train, "train", config, class_names)
        names = sorted({name for row in sets for name in row})
    else:
        names = label_names_from(train, class_names)
    if len(names) < 2:
        raise DataError(f"train: only one label {names}; a classifier needs at least two")
    return names


def _train_and_validation(original_train: Split, shipped: Split | None, config: DataConfig) -> tuple[Split, Split]:
    """The shipped validation split when there is one (``data.use_validation_split``), else a stratified
    ``data.validation_fraction`` of the training rows."""
    if shipped is not None:
        logger.info("validation: the dataset's own split (%d rows; data.use_validation_split)", len(shipped))
        return original_train, shipped
    kept, held = stratified_split(original_train.labels, config.validation_fraction, config.seed)
    if len(kept) == 0 or len(held) == 0:
        raise DataError(
            f"train: data.validation_fraction={config.validation_fraction} of {len(original_train)} rows leaves "
            f"{len(kept)} train and {len(held)} validation rows; both need at least one"
        )
    return original_train.subset(kept, "train"), original_train.subset(held, "validation")


def load_dataset(config: DataConfig) -> Dataset:
    """Load, validate and split a dataset as ``config`` says."""
    frames, class_names = _load_frames(config)
    dropped = {}
    for name, frame in frames.items():
        columns = [config.text_column] + ([config.label_column] if name != "unlabelled" else [])
        _require_columns(frame, name, columns)
        _require_text(frame, name, config.text_column)
        frames[name], dropped[name] = clean_rows(frame, name, config)
    task = detect_task(frames["train"][config.label_column], config)
    names = training_label_names(frames["train"][config.label_column], config, class_names, task)
    splits: dict[str, Split] = {
        name: _labelled_split(frames[name], name, config, names, class_names, task)
        for name in ("train", "validation", "test")
        if name in frames
    }
    for name, cap in (("train", config.max_train), ("test", config.max_test)):
        if cap is not None:
            splits[name] = splits[name].subset(stratified_sample(splits[name].labels, cap, config.seed))
    train, validation = _train_and_validation(splits["train"], splits.get("validation"), config)
    unlabelled = None
    if "unlabelled" in frames:
        unlabelled = _unlabelled_split(frames["unlabelled"], config, config.seed, len(names), task)
    dataset = Dataset(
        train=train,
        validation=validation,
        test=splits["test"],
        label_names=names,
        unlabelled=unlabelled,
        dropped_rows=dropped,
        task=task,
    )
    cleaned = tuple(LEAK_SOURCES) if config.drop_overlap else ("unlabelled",) if config.drop_unlabelled_overlap else ()
    dataset = flag_duplicates(dataset, cleaned)
    for name, split in dataset.splits().items():
        logger.info("%s: %d rows, fingerprint %s", name, len(split), split.fingerprint)
    return dataset


# ---------------------------------------------------------------------------------------------------
# Duplicates and leaks between splits


def text_keys(texts: list[str]) -> list[bytes]:
    """One 16-byte digest per normalised text: equal keys are the same text up to whitespace and ``<br />``."""
    return [
        hashlib.blake2b(normalise_text(t).encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts
    ]


def repeated_rows(keys: list[bytes]) -> int:
    """Rows whose key already occurred earlier in ``keys``."""
    return len(keys) - len(set(keys))


def duplicate_report(keys: dict[str, list[bytes]]) -> DuplicateReport:
    """Count in-split repeats and cross-split overlap (``LEAK_SOURCES``) from each split's text keys."""
    within = {name: repeated_rows(split_keys) for name, split_keys in keys.items()}
    distinct = {name: set(split_keys) for name, split_keys in keys.items()}
    overlap = {
        name: {other: sum(key in distinct[other] for key in keys[name]) for other in LEAK_SOURCES[name]}
        for name in keys
        if name in LEAK_SOURCES
    }
    return DuplicateReport(within, overlap, {name: 0 for name in overlap})


def flag_duplicates(dataset: Dataset, cleaned: tuple[str, ...] = ()) -> Dataset:
    """Count repeated and leaked texts, warn when there are any, and remove the leaked rows of the ``cleaned``
    splits (``data.drop_overlap``: all of validation, test and unlabelled; ``data.drop_unlabelled_overlap``:
    unlabelled only, so the train and validation splits the teacher is keyed on stay as they are).

    Repeats within a split are reported but kept: they leak nothing between training and evaluation.
    """
    keys = {name: text_keys(split.texts) for name, split in dataset.splits().items()}
    dataset.duplicates = duplicate_report(keys)
    _warn_about_duplicates(dataset.duplicates, cleaned)
    if cleaned:
        _drop_leaks(dataset, keys, dataset.duplicates, cleaned)
    return dataset


def _drop_leaks(
    dataset: Dataset, keys: dict[str, list[bytes]], report: DuplicateReport, cleaned: tuple[str, ...]
) -> None:
    """Drop validation rows whose text is in train, test rows whose text is in train or validation, and
    unlabelled rows whose text is in validation or test (in that order, each against the cleaned splits), for the
    ``cleaned`` splits."""
    for name in (n for n in LEAK_SOURCES if n in keys and n in cleaned):
        seen = set().union(*(keys[other] for other in LEAK_SOURCES[name]))
        kept = np.array([i for i, key in enumerate(keys[name]) if key not in seen], dtype=np.int64)
        if len(kept) == 0:
            raise DataError(f"{name}: every row repeats a text of {list(LEAK_SOURCES[name])}; nothing would be left")
        report.dropped[name] = len(keys[name]) - len(kept)
        setattr(dataset, name, getattr(dataset, name).subset(kept))
        keys[name] = [keys[name][i] for i in kept]
    if any(report.dropped.values()):
        logger.warning("dropped rows repeating texts of other splits: %s", report.dropped)


def _warn_about_duplicates(report: DuplicateReport, cleaned: tuple[str, ...]) -> None:
    repeats = {name: count for name, count in report.within_split.items() if count}
    if repeats:
        logger.warning("rows repeating an earlier row's text within their split (kept): %s", repeats)
    leaks = {
        f"{name} in {other}": n
        for name, others in report.overlap.items()
        if name not in cleaned
        for other, n in others.items()
        if n
    }
    if leaks:
        logger.warning(
            "rows whose text also occurs in another split: %s; they inflate validation/test scores (seen in "
            "training or in the transfer set); set data.drop_overlap=true to drop them (or "
            "data.drop_unlabelled_overlap=true for the transfer set's only)",
            leaks,
        )


def label_balance(split: Split, label_names: list[str]) -> dict[str, int]:
    """Count of rows per label name (rows carrying the label, for multi-label data)."""
    if split.labels.ndim == 2:
        counts = np.clip(split.labels, 0, 1).sum(axis=0)
    else:
        counts = np.bincount(split.labels[split.labels >= 0], minlength=len(label_names))
    return {name: int(c) for name, c in zip(label_names, counts, strict=True)}


def save_label_mapping(dataset: Dataset, path: Path) -> None:
    """Write the label mapping saved next to every artifact."""
    atomic_write_text(path, json.dumps(dataset.label_mapping(), indent=2))
