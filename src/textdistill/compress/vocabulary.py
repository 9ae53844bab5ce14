"""Vocabulary pruning: keep the embedding rows of the tokens a student was trained on, map the rest to ``[UNK]``.

Most of a small student's bytes are its embedding table (30,522 WordPiece rows for a BERT tokenizer), yet many
rows belong to tokens that never occur, or occur a handful of times, in the texts the student learnt from.
``prune_vocabulary`` keeps the rows of tokens seen at least ``min_count`` times (``token_counts`` over the
training and unlabelled/transfer inputs, as the student read them) plus the special tokens, and gives the
student a ``PrunedEmbedding`` whose ``id_map`` sends each dropped id to the ``[UNK]`` row. The student still
reads the tokenizer's ids, so PyTorch, the ONNX export, ``predict``, ``serve`` and ``bench`` all apply the
mapping, and a saved pruned student reloads with ``Student.from_pretrained``.

On a text whose tokens are all kept the pruned student's logits are bit-equal to the original's (the same rows
are gathered and nothing else changes); a dropped token reads exactly what ``[UNK]`` reads.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from textdistill.students import PrunedEmbedding, StudentModule

logger = logging.getLogger(__name__)


def token_counts(sequences: Iterable[np.ndarray], vocab_size: int) -> np.ndarray:
    """How often each token id occurs in ``sequences`` (1-D int arrays): (vocab_size,) int64."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for sequence in sequences:
        counts += np.bincount(np.asarray(sequence, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    return counts


def kept_token_ids(counts: np.ndarray, min_count: int, special_ids: Iterable[int]) -> np.ndarray:
    """Sorted ids (int64) seen at least ``min_count`` times, plus ``special_ids`` (always kept)."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    keep = counts >= min_count
    keep[np.asarray(list(special_ids), dtype=np.int64)] = True
    return np.flatnonzero(keep).astype(np.int64)


def id_map_for(keep: np.ndarray, vocab_size: int, unk_id: int) -> torch.Tensor:
    """(vocab_size,) int32: the row of each kept id in the pruned table, the ``[UNK]`` row for every other id."""
    if unk_id not in set(keep.tolist()):
        raise ValueError(f"the [UNK] id {unk_id} must be among the kept ids")
    rows = np.full(vocab_size, -1, dtype=np.int64)
    rows[keep] = np.arange(len(keep))
    rows[rows < 0] = rows[unk_id]
    return torch.from_numpy(rows.astype(np.int32))


def prune_vocabulary(model: StudentModule, keep: np.ndarray, unk_id: int, min_count: int = 1) -> StudentModule:
    """A NEW student whose embedding holds only the rows ``keep`` (sorted token ids, ``[UNK]`` and padding among
    them) of ``model``'s and maps every other id to the ``[UNK]`` row; ``model`` is left alone.

    Pruning an already pruned student again composes the two mappings (ids dropped earlier stay on ``[UNK]``).
    """
    if not isinstance(model, StudentModule):
        raise TypeError(f"vocabulary pruning needs a registered student, not {type(model).__name__}")
    vocab_size, pad_id = model.input_vocabulary()
    keep = np.unique(np.asarray(keep, dtype=np.int64))
    if pad_id not in set(keep.tolist()):
        raise ValueError(f"the padding id {pad_id} must be among the kept ids")
    table = _full_table(model.embedding)
    pruned = copy.deepcopy(model)
    id_map = id_map_for(keep, vocab_size, unk_id)
    pruned.with_pruned_vocabulary(len(keep), int(id_map[pad_id]), min_count)
    embedding = pruned.embedding
    assert isinstance(embedding, PrunedEmbedding)
    with torch.no_grad():
        embedding.weight.copy_(table[torch.from_numpy(keep)])
        embedding.id_map.copy_(id_map)
    embedding.weight.requires_grad_(model.embedding.weight.requires_grad)
    logger.info(
        "vocabulary pruning (min_count %d): %d of %d embedding rows kept (%.1f%%)",
        min_count,
        len(keep),
        vocab_size,
        100 * len(keep) / vocab_size,
    )
    return pruned.train(model.training)


def _full_table(embedding: torch.nn.Embedding) -> torch.Tensor:
    """(vocab_size, dim): the row each token id reads, for a plain or an already pruned embedding."""
    weight = embedding.weight.detach()
    return weight[embedding.id_map.long()] if isinstance(embedding, PrunedEmbedding) else weight


def prune_vocabulary_by_counts(
    model: StudentModule, sequences: Iterable[np.ndarray], min_count: int, special_ids: Iterable[int], unk_id: int
) -> tuple[StudentModule, dict[str, Any]]:
    """``prune_vocabulary`` keeping the ids seen ``min_count`` times in ``sequences`` (the training inputs) and the
    special ids; returns the pruned student and a record: ``min_count``, ``vocab_size``, ``kept_rows``,
    ``kept_share``, ``embedding_parameters_before``/``after``."""
    vocab_size, _ = model.input_vocabulary()
    keep = kept_token_ids(token_counts(sequences, vocab_size), min_count, [*special_ids, unk_id])
    pruned = prune_vocabulary(model, keep, unk_id, min_count)
    dim = pruned.embedding.embedding_dim
    record = {
        "min_count": min_count,
        "vocab_size": vocab_size,
        "kept_rows": len(keep),
        "kept_share": len(keep) / vocab_size,
        "embedding_parameters_before": model.embedding.weight.numel(),
        "embedding_parameters_after": len(keep) * dim,
    }
    return pruned, record
