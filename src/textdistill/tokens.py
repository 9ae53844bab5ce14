"""Tokenisation: encode every text once, truncate to any length cheaply, batch by length.

Texts are encoded once *without* truncation or special tokens and cached by (data fingerprint,
tokenizer). Teacher and student inputs are then cut from the same ids at their own max lengths
(``head``, ``tail`` or ``head+tail``), so both share the WordPiece vocabulary by default.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from textdistill.cache import atomic_open

logger = logging.getLogger(__name__)

_BREAK = re.compile(r"<br\s*/?>", flags=re.IGNORECASE)


def normalise_text(text: str) -> str:
    """Turn HTML line breaks (``<br />``, common in IMDB) into spaces and collapse whitespace."""
    return " ".join(_BREAK.sub(" ", text).split())


def load_tokenizer(name: str):
    """``AutoTokenizer`` from a hub name or a local directory (the teacher's tokenizer by default)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as error:  # hub unreachable, missing files: one clear message
        raise ValueError(f"could not load tokenizer {name!r}: {type(error).__name__}: {error}") from error


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's vocabulary and normalisation, so a different tokenizer never hits the cache."""
    digest = hashlib.sha256()
    digest.update(type(tokenizer).__name__.encode())
    digest.update(str(getattr(tokenizer, "do_lower_case", "")).encode())
    for token, index in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        digest.update(f"{index}\x1f{token}\x1e".encode())
    return digest.hexdigest()[:16]


@dataclass
class EncodedTexts:
    """Ragged token ids of one split, stored flat: sequence ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray  # (total_tokens,) int32, no special tokens
    offsets: np.ndarray  # (n + 1,) int64

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, index: int) -> np.ndarray:
        return self.flat[self.offsets[index] : self.offsets[index + 1]]

    def subset(self, rows: list[int]) -> EncodedTexts:
        """The sequences ``rows``, in that order."""
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pieces = [self.sequence(i) for i in rows]
        flat = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, dtype=np.int32)
        return EncodedTexts(flat=flat, offsets=offsets)

    def save(self, path: Path) -> None:
        with atomic_open(path) as handle:
            np.savez(handle, flat=self.flat, offsets=self.offsets)

    @classmethod
    def load(cls, path: Path) -> EncodedTexts:
        with np.load(path, allow_pickle=False) as stored:
            return cls(flat=stored["flat"], offsets=stored["offsets"])

    @classmethod
    def from_sequences(cls, sequences: list[list[int]]) -> EncodedTexts:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat=flat, offsets=offsets)


def encode_texts(
    texts: list[str], tokenizer, batch_size: int = 1000, desc: str = "tokenise", progress: bool = True
) -> EncodedTexts:
    """Encode texts in full (no truncation, no special tokens) with a fast tokenizer, after ``normalise_text``."""
    sequences: list[list[int]] = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False, disable=not progress):
        batch = [normalise_text(t) for t in texts[start : start + batch_size]]
        encoded = tokenizer(batch, add_special_tokens=False, truncation=False, verbose=False)
        sequences.extend(encoded["input_ids"])
    return EncodedTexts.from_sequences(sequences)


def truncate(ids: np.ndarray, max_length: int, strategy: str, head_fraction: float = 0.25) -> np.ndarray:
    """Cut content ids to ``max_length - 2`` tokens by ``strategy`` (room is left for [CLS] and [SEP]).

    ``head+tail`` keeps ``head_fraction`` of the budget from the start and the rest from the end
    (Sun et al. 2019: the start and end of a long review carry most of its sentiment).
    """
    budget = max_length - 2
    if len(ids) <= budget:
        return ids
    if strategy == "head":
        return ids[:budget]
    if strategy == "tail":
        return ids[len(ids) - budget :]
    head = int(round(budget * head_fraction))
    return np.concatenate([ids[:head], ids[len(ids) - (budget - head) :]])


@dataclass
class SpecialIds:
    """The ids wrapped around every sequence and used for padding."""

    cls: int
    sep: int
    pad: int

    @classmethod
    def of(cls, tokenizer) -> SpecialIds:
        return cls(cls=tokenizer.cls_token_id, sep=tokenizer.sep_token_id, pad=tokenizer.pad_token_id)


def model_inputs(
    encoded: EncodedTexts, max_length: int, strategy: str, special: SpecialIds, head_fraction: float = 0.25
) -> list[np.ndarray]:
    """Truncated sequences wrapped as ``[CLS] ids [SEP]``, one int64 array per example."""
    wrap = np.array([special.cls], dtype=np.int64), np.array([special.sep], dtype=np.int64)
    return [
        np.concatenate([wrap[0], truncate(encoded.sequence(i), max_length, strategy, head_fraction), wrap[1]])
        for i in range(len(encoded))
    ]


def window_starts(length: int, budget: int, stride: int) -> list[int]:
    """Start offsets of windows of ``budget`` tokens every ``stride`` tokens over ``length`` tokens; the last
    window ends at the text's end (no short tail window), so every token is read at least once."""
    if length <= budget:
        return [0]
    starts = list(range(0, length - budget, stride))
    return [*starts, length - budget]


def chunk_windows(
    encoded: EncodedTexts, max_length: int, stride: int, special: SpecialIds
) -> tuple[list[np.ndarray], np.ndarray]:
    """Every text cut into overlapping ``[CLS] window [SEP]`` inputs of at most ``max_length`` ids.

    Returns (windows, owners): one int64 array per window and owners (n_windows,) int64, the row of the text
    each window comes from (texts in order, windows in reading order).
    """
    budget = max_length - 2
    cls, sep = np.array([special.cls], dtype=np.int64), np.array([special.sep], dtype=np.int64)
    windows, owners = [], []
    for row in range(len(encoded)):
        ids = encoded.sequence(row)
        for start in window_starts(len(ids), budget, stride):
            windows.append(np.concatenate([cls, ids[start : start + budget], sep]))
            owners.append(row)
    return windows, np.array(owners, dtype=np.int64)


@dataclass(frozen=True)
class TokenSettings:
    """How a model reads a text: at most ``max_length`` ids ([CLS] and [SEP] included), cut by ``truncation``.

    Carried by the data stage (teacher and student lengths) and saved with every student, so training,
    saving and serving cut texts the same way.
    """

    max_length: int
    truncation: str = "head+tail"
    head_fraction: float = 0.25

    def inputs(self, encoded: EncodedTexts, special: SpecialIds) -> list[np.ndarray]:
        """``[CLS] ids [SEP]`` per text, cut to these settings: one int64 array per example."""
        return model_inputs(encoded, self.max_length, self.truncation, special, self.head_fraction)

    def encode(self, texts: list[str], tokenizer, progress: bool = False) -> list[np.ndarray]:
        """Raw texts to model inputs: the one tokenisation path of training, evaluation and serving."""
        return self.inputs(encode_texts(texts, tokenizer, progress=progress), SpecialIds.of(tokenizer))

    def to_dict(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "truncation": self.truncation, "head_fraction": self.head_fraction}


def pad_batch(sequences: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence: input_ids (batch, time) int64 and attention_mask (batch, time) int64."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, : len(sequence)] = torch.from_numpy(np.asarray(sequence, dtype=np.int64))
        attention_mask[row, : len(sequence)] = 1
    return input_ids, attention_mask


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0, chunk_batches: int = 50
) -> list[np.ndarray]:
    """Index batches of similar length so padding wastes little compute.

    With ``shuffle``, rows are shuffled, cut into chunks of ``chunk_batches`` batches, sorted by length
    within each chunk, batched, and the batches shuffled again (seeded). Without it, rows are sorted
    by length (for inference; callers restore the original order by index).
    """
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def iterate_batches(
    sequences: list[np.ndarray], batches: list[np.ndarray], pad_id: int
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield (indices, input_ids, attention_mask) for each index batch."""
    for indices in batches:
        input_ids, attention_mask = pad_batch([sequences[i] for i in indices], pad_id)
        yield indices, input_ids, attention_mask


def length_report(encoded: EncodedTexts, max_lengths: dict[str, int]) -> dict[str, float]:
    """Token-length percentiles (content + 2 special tokens) and the truncation rate at each max length."""
    lengths = encoded.lengths + 2
    report = {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99)}
    report["mean"] = float(lengths.mean())
    for name, limit in max_lengths.items():
        report[f"truncated_at_{name}_{limit}"] = float((lengths > limit).mean())
    return report


def encode_cached(texts: list[str], data_fingerprint: str, tokenizer, cache, desc: str = "tokenise") -> EncodedTexts:
    """``encode_texts`` once per (data fingerprint, tokenizer); later calls read the cached ids."""
    parts = {"data": data_fingerprint, "tokenizer": tokenizer_fingerprint(tokenizer), "normalise": "br-v1"}
    path = cache.path("tokens", parts, ".npz")
    if path.is_file():
        logger.info("%s: token ids from cache %s", desc, path)
        return EncodedTexts.load(path)
    encoded = encode_texts(texts, tokenizer, desc=desc)
    encoded.save(path)
    return encoded
