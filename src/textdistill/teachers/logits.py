"""Bring-your-own teacher logits: read a directory of per-split logits aligned to the data's example ids, and
write one (float16 npz + ``manifest.json`` with counts and a sha256 per file).

A logits directory holds one file per split, ``<split>.npz``, ``<split>.csv`` or ``<split>.parquet``:

- ``.npz``: arrays ``logits`` (n, K) float and ``ids`` (n,) (what ``write_logits_dir`` and ``textdistill``'s own
  logit export write);
- ``.csv`` / ``.parquet``: an ``id`` column and one column per label. With ``label_names`` given the label
  columns must be exactly those names (in any order; they are put in label order), otherwise every column but
  ``id`` is a label column, taken in file order.

Rows may come in any order; they are aligned to the data's ids. Missing, extra or duplicate ids, a wrong number
of label columns and non-finite values are ValueErrors naming the file and the first offending ids: logits that
do not match the data are never used silently. When the directory has a ``manifest.json`` with a ``sha256`` for
a file, the file's hash is checked too.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textdistill.cache import atomic_open, atomic_write_text

logger = logging.getLogger(__name__)

FORMAT = "textdistill-logits"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SUFFIXES = (".npz", ".csv", ".parquet")
ID_COLUMN = "id"
SHOWN_IDS = 5  # how many offending ids an error message lists


def _some(ids: Sequence[str]) -> str:
    """The first few ids and the count, for error messages: "['a', 'b', ...] (12 in all)"."""
    head = list(ids[:SHOWN_IDS])
    return f"{head}{' ...' if len(ids) > SHOWN_IDS else ''} ({len(ids)} in all)"


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Reading


def _split_file(directory: Path, split: str) -> Path:
    """The one ``<split>.npz|csv|parquet`` of the directory; none or several is an error."""
    found = [directory / f"{split}{suffix}" for suffix in SUFFIXES if (directory / f"{split}{suffix}").is_file()]
    if len(found) > 1:
        raise ValueError(f"{directory}: several logit files for split {split!r}: {[p.name for p in found]}; keep one")
    if not found:
        present = sorted(p.name for p in directory.iterdir() if p.suffix in SUFFIXES)
        raise ValueError(
            f"{directory}: no logits for split {split!r} (expected {split}.npz, {split}.csv or {split}.parquet; "
            f"found {present})"
        )
    return found[0]


def _read_npz(path: Path) -> tuple[list[str], np.ndarray]:
    with np.load(path, allow_pickle=False) as stored:
        missing = [name for name in ("logits", "ids") if name not in stored.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing} (has {stored.files}); expected 'logits' and 'ids'")
        return [str(i) for i in stored["ids"].tolist()], np.asarray(stored["logits"])


def _label_columns(path: Path, columns: list[str], label_names: Sequence[str] | None) -> list[str]:
    """The label columns in label order: ``label_names`` when given (all must be there), else all but ``id``."""
    others = [c for c in columns if c != ID_COLUMN]
    if label_names is None:
        return others
    if sorted(others) != sorted(label_names):
        raise ValueError(
            f"{path}: label columns {others} are not the labels {list(label_names)}; "
            f"name one column per label (plus {ID_COLUMN!r})"
        )
    return list(label_names)


def _read_table(path: Path, label_names: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype={ID_COLUMN: str}, keep_default_na=False, na_values=[""])
    else:
        frame = pd.read_parquet(path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if ID_COLUMN not in columns:
        raise ValueError(f"{path}: no {ID_COLUMN!r} column (columns: {columns}); add one with the example ids")
    label_columns = _label_columns(path, columns, label_names)
    values = frame[label_columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    return frame[ID_COLUMN].astype(str).tolist(), values


def _check_values(path: Path, ids: list[str], logits: np.ndarray, num_labels: int) -> None:
    if logits.ndim != 2 or logits.shape[1] != num_labels or len(logits) != len(ids):
        raise ValueError(
            f"{path}: logits of shape {logits.shape} for {len(ids)} ids; expected ({len(ids)}, {num_labels}): "
            f"one row per id and one column per label"
        )
    if logits.dtype.kind not in "fiu":
        raise ValueError(f"{path}: logits must be numbers, got dtype {logits.dtype}")
    bad_rows = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if len(bad_rows):
        raise ValueError(
            f"{path}: non-finite logits (NaN, inf or not a number) for ids {_some([ids[i] for i in bad_rows])}"
        )


def align_to_ids(path: Path, ids: list[str], logits: np.ndarray, expected: list[str]) -> np.ndarray:
    """Rows of ``logits`` (n, K) reordered to ``expected`` ids; duplicate, missing or extra ids are errors."""
    if ids == expected:
        return logits
    duplicates = [example_id for example_id, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise ValueError(f"{path}: duplicate ids {_some(duplicates)}; give each example once")
    position = {example_id: row for row, example_id in enumerate(ids)}
    missing = [i for i in expected if i not in position]
    if missing:
        raise ValueError(f"{path}: no logits for ids {_some(missing)} of the {len(expected)} examples of the split")
    expected_set = set(expected)
    extra = [i for i in ids if i not in expected_set]
    if extra:
        raise ValueError(f"{path}: ids {_some(extra)} are not in the split; are these logits for other data?")
    return logits[[position[i] for i in expected]]


def _check_manifest_hash(directory: Path, path: Path, split: str) -> None:
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        return
    entry = json.loads(manifest_path.read_text(encoding="utf-8")).get("splits", {}).get(split, {})
    expected = entry.get("sha256")
    if expected is not None and entry.get("file", path.name) == path.name and sha256_of(path) != expected:
        raise ValueError(f"{path}: sha256 differs from {manifest_path}; the file changed after it was written")


def read_split_logits(
    directory: Path, split: str, ids: list[str], num_labels: int, label_names: Sequence[str] | None = None
) -> np.ndarray:
    """One split's logits (len(ids), num_labels) float32, rows in the order of ``ids``."""
    path = _split_file(directory, split)
    _check_manifest_hash(directory, path, split)
    file_ids, logits = _read_npz(path) if path.suffix == ".npz" else _read_table(path, label_names)
    _check_values(path, file_ids, logits, num_labels)
    return align_to_ids(path, file_ids, logits, [str(i) for i in ids]).astype(np.float32)


def read_logits_dir(
    directory: str | Path,
    split_ids: Mapping[str, Sequence[str]],
    num_labels: int,
    label_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Logits per split, ``{split: (len(split_ids[split]), num_labels) float32}`` aligned to the given ids.

    Args:
        directory: holds ``<split>.npz`` (``logits``, ``ids``) or ``<split>.csv``/``.parquet`` (``id`` + labels).
        split_ids: the data's example ids per split; every split named here must have a file.
        num_labels: K, the number of label columns expected.
        label_names: for csv/parquet, the label column names in label order (default: file order).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"logits directory {directory} does not exist")
    if num_labels < 2:
        raise ValueError(f"num_labels must be at least 2, got {num_labels}")
    if label_names is not None and len(label_names) != num_labels:
        raise ValueError(f"{len(label_names)} label names {list(label_names)} for num_labels={num_labels}")
    result = {
        split: read_split_logits(directory, split, list(ids), num_labels, label_names)
        for split, ids in split_ids.items()
    }
    logger.info("logits: read %s from %s", {s: len(v) for s, v in result.items()}, directory)
    return result


# ---------------------------------------------------------------------------------------------------
# Writing


def _float16(split: str, values: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2 or len(values) != len(ids):
        raise ValueError(f"{split}: logits of shape {values.shape} for {len(ids)} ids; expected ({len(ids)}, K)")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{split}: duplicate ids; each example must have one id")
    with np.errstate(over="ignore"):  # overflow is reported just below, naming the split
        half = values.astype(np.float16)
    if not np.isfinite(half).all():  # NaN/inf in the input, or beyond float16's ±65504
        raise ValueError(f"{split}: logits are non-finite or beyond float16's range (|x| > 65504)")
    return half


def write_logits_dir(
    directory: str | Path,
    logits: Mapping[str, np.ndarray],
    split_ids: Mapping[str, Sequence[str]],
    manifest_extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<split>.npz`` (``logits`` float16 (n, K), ``ids``) per split and ``manifest.json``.

    The manifest holds the format, K, and per split the file, example count and sha256, plus ``manifest_extra``
    (e.g. which teacher, temperatures, weights). Files are replaced atomically.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    widths = {split: np.shape(values)[-1] for split, values in logits.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"logits have different numbers of labels per split: {widths}")
    splits: dict[str, Any] = {}
    for split, values in logits.items():
        ids = [str(i) for i in split_ids[split]]
        buffer = io.BytesIO()
        np.savez_compressed(buffer, logits=_float16(split, values, ids), ids=np.array(ids))
        with atomic_open(directory / f"{split}.npz") as handle:
            handle.write(buffer.getvalue())
        digest = hashlib.sha256(buffer.getvalue()).hexdigest()
        splits[split] = {"file": f"{split}.npz", "examples": len(ids), "sha256": digest}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "num_labels": next(iter(widths.values()), None),
        "dtype": "float16",
        **dict(manifest_extra or {}),
        "splits": splits,
    }
    atomic_write_text(directory / MANIFEST_FILE, json.dumps(manifest, indent=2, default=str) + "\n")
    return directory
