"""The student registry and contract: one file per student, each registering its module class under a name.

Every student module class subclasses ``StudentModule`` and has a ``config_class`` (a dataclass with at least
``embedding_dim``, validated in ``__post_init__``), a constructor ``(config, vocab_size, num_labels, pad_id)``
that only builds layers, and the contract ``forward(input_ids (B, T) int64, attention_mask (B, T) int64) ->
logits (B, num_labels)``. Inputs are right-padded (the mask of each row is a prefix of ones). Every student
exposes ``.embedding: nn.Embedding`` (so ``init_embeddings`` works for all) and ``.classifier: nn.Linear``.

Compression hooks (``textdistill.compress`` calls these and never names a student class):

- ``shrunk(amount) -> nn.Module``: a NEW, smaller dense student of the same class with ``amount`` (in [0, 1))
  of its units removed by importance, kept units in their order (so ``amount=0`` is an exact copy), its
  ``config`` carrying the new size; the student itself is left alone. The default raises NotImplementedError:
  a student without units to remove (``ngram-bag``) keeps it. ``rebuilt``, ``kept_count`` and ``top_indices``
  help write one.
- ``exportable() -> nn.Module``: the module that ONNX export traces, with the same logits as the student on
  right-padded inputs (up to float rounding). Default: the student itself.
- ``onnx_exporter``: ``"torchscript"`` (the legacy tracer, the default) or ``"dynamo"`` (torch.export), for a
  student the tracer cannot export faithfully.
- ``with_pruned_vocabulary(rows, pad_row, min_count)``: swap ``embedding`` for a ``PrunedEmbedding`` of ``rows``
  rows that maps the tokenizer's ids to them itself (``textdistill.compress.prune_vocabulary`` fills it; loading a
  saved pruned student calls it before reading the weights). Inputs stay the tokenizer's ids, so every
  inference path (PyTorch, ONNX, ``predict``, ``serve``, ``bench``) applies the mapping without code of its own.

Pretrained weights (a factory step, so the constructor still only builds layers):

- ``pretrained_source(config) -> str | None`` (a classmethod): the model whose weights ``init_pretrained`` reads for
  an arch ``config``, or None. A student that has one brings its own embedding: Word2Vec or the teacher's PCA
  matrix neither sizes (``build_arch``) nor fills (``api.fit_student``) it. Default: None.
- ``init_pretrained() -> bool``: load those weights into the freshly built student; True when it did. Only the
  training path calls it (``api.fit_student``), never loading a saved student, whose own weights are the truth.
  Default: nothing to load, False.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from textdistill.config import ConfigError, field_rows, from_dict

ModuleType = TypeVar("ModuleType", bound=type[nn.Module])

_REGISTRY: dict[str, type[nn.Module]] = {}


class PrunedEmbedding(nn.Embedding):
    """An embedding that keeps only some rows of a vocabulary: ``id_map`` sends every token id to its kept row.

    ``id_map`` (vocab_size,) int32 is a buffer, saved with the weights and exported to ONNX as one more Gather
    in front of the table's: ``forward(ids) = weight[id_map[ids]]``. A dropped token's entry points at the
    ``[UNK]`` row, so it reads exactly what ``[UNK]`` reads. ``weight`` is (rows, embedding_dim);
    ``padding_idx`` is the padding token's row (``pad_row``); ``min_count`` records the pruning threshold.
    """

    id_map: torch.Tensor

    def __init__(self, vocab_size: int, rows: int, embedding_dim: int, pad_row: int, min_count: int = 1) -> None:
        super().__init__(rows, embedding_dim, padding_idx=pad_row)
        self.min_count = min_count
        self.register_buffer("id_map", torch.zeros(vocab_size, dtype=torch.int32))

    @property
    def vocab_size(self) -> int:
        """How many token ids the input may hold (the tokenizer's vocabulary): ``len(id_map)``."""
        return int(self.id_map.numel())

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002  (nn.Embedding's argument name)
        """input (...) int64 token ids of the full vocabulary → (..., embedding_dim) rows of the kept table."""
        return super().forward(self.id_map[input])


class StudentModule(nn.Module):
    """Base class of every registered student: the shared attributes and the compression hooks (see above)."""

    config_class: ClassVar[type]
    onnx_exporter: ClassVar[str] = "torchscript"
    embedding: nn.Embedding
    classifier: nn.Linear

    @classmethod
    def pretrained_source(cls, config: Any) -> str | None:
        """The model (directory or hub name) whose weights ``init_pretrained`` reads for ``config``; None: none."""
        return None

    def init_pretrained(self) -> bool:
        """Load the pretrained weights the arch names (training path only); True when it did. Default: none."""
        return False

    def shrunk(self, amount: float) -> nn.Module:
        """A smaller dense copy with ``amount`` of the units removed; this student has none to remove."""
        raise NotImplementedError(f"{type(self).__name__} does not support structured pruning (no shrunk() hook)")

    def exportable(self) -> nn.Module:
        """The module ONNX export traces: the student itself unless it overrides this."""
        return self

    def with_pruned_vocabulary(self, rows: int, pad_row: int, min_count: int = 1) -> StudentModule:
        """Replace ``embedding`` (in place) by a ``PrunedEmbedding`` of ``rows`` rows over the same token ids, with
        an all-zero ``id_map`` for the caller to fill (or to load); returns the student."""
        embedding = self.embedding
        vocab_size = embedding.vocab_size if isinstance(embedding, PrunedEmbedding) else embedding.num_embeddings
        self.embedding = PrunedEmbedding(vocab_size, rows, embedding.embedding_dim, pad_row, min_count)
        return self

    def input_vocabulary(self) -> tuple[int, int]:
        """(vocabulary size, padding id) of the token ids this student reads (the tokenizer's, pruned or not)."""
        embedding = self.embedding
        if isinstance(embedding, PrunedEmbedding):
            pad_row = embedding.padding_idx
            pad_id = int(torch.nonzero(embedding.id_map == pad_row)[0, 0]) if pad_row is not None else 0
            return embedding.vocab_size, pad_id
        return embedding.num_embeddings, embedding.padding_idx if embedding.padding_idx is not None else 0

    def rebuilt(self, config: Any, state: dict[str, torch.Tensor]) -> nn.Module:
        """A new student of this class built from ``config`` and loaded (strictly) with copies of ``state``.

        Same vocabulary (pruned or not), labels, padding id and train/eval mode as this one: what ``shrunk``
        returns.
        """
        vocab_size, pad_id = self.input_vocabulary()
        smaller = type(self)(config, vocab_size=vocab_size, num_labels=self.classifier.out_features, pad_id=pad_id)
        embedding = self.embedding
        if isinstance(embedding, PrunedEmbedding):
            smaller.with_pruned_vocabulary(embedding.num_embeddings, embedding.padding_idx or 0, embedding.min_count)
        smaller.load_state_dict({name: tensor.clone() for name, tensor in state.items()})
        return smaller.train(self.training)


def check_arch(config: Any, sizes: tuple[str, ...] = ()) -> None:
    """The ``student.arch`` checks students share: each field of ``sizes`` at least 1, ``dropout`` in [0, 1)."""
    for name in sizes:
        if getattr(config, name) < 1:
            raise ConfigError(f"student.arch.{name} must be at least 1, got {getattr(config, name)}")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"student.arch.dropout must be in [0, 1), got {config.dropout}")


def register(name: str) -> Callable[[ModuleType], ModuleType]:
    """Class decorator that registers a student module class (with a ``config_class``) under ``name``."""

    def decorate(cls: ModuleType) -> ModuleType:
        if name in _REGISTRY:
            raise ValueError(f"student {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        if not issubclass(cls, StudentModule):
            raise TypeError(f"student {name!r}: {cls.__qualname__} must subclass textdistill.students.StudentModule")
        if not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
            raise TypeError(f"student {name!r}: {cls.__qualname__}.config_class must be a dataclass")
        _REGISTRY[name] = cls
        return cls

    return decorate


def student_names() -> list[str]:
    """The registered student names, sorted."""
    return sorted(_REGISTRY)


def student_class(name: str) -> type[nn.Module]:
    """The module class registered as ``name``; an unknown name is a ValueError listing the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown student {name!r}; valid students: {student_names()}")
    return _REGISTRY[name]


def arch_reference_markdown() -> str:
    """Every registered student's ``student.arch`` keys with type, default and meaning, from the config dataclasses
    (the README's student reference; it cannot drift)."""
    lines = ["| student | arch key | type | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for name in student_names():
        lines += [f"| {name} {row}" for row in field_rows(student_class(name).config_class())]  # type: ignore[attr-defined]
    return "\n".join(lines)


def build_arch(name: str, arch: dict[str, Any], embedding_dim: int | None = None) -> Any:
    """The validated arch dataclass of student ``name``; unknown keys are errors listing the valid keys.

    ``embedding_dim`` (e.g. the Word2Vec vector size) fills ``arch.embedding_dim``; giving both with
    different values is an error. It is ignored for an arch that names pretrained weights (``pretrained_source``).
    """
    cls = student_class(name)
    config_class = cls.config_class  # type: ignore[attr-defined]
    values = dict(arch)
    if embedding_dim is not None and issubclass(cls, StudentModule):
        config = from_dict(config_class, values, prefix="student.arch.")
        if cls.pretrained_source(config) is not None:
            return config  # its embedding is the pretrained model's: the Word2Vec size does not apply
    if embedding_dim is not None:
        given = values.get("embedding_dim", embedding_dim)
        if given != embedding_dim:
            raise ConfigError(
                f"student.arch.embedding_dim={given} conflicts with the Word2Vec vectors' size {embedding_dim} "
                "(embeddings.vector_size): make them equal, or set student.use_word2vec: false"
            )
        values["embedding_dim"] = embedding_dim
    return from_dict(config_class, values, prefix="student.arch.")


def build_student(
    name: str,
    arch: dict[str, Any],
    vocab_size: int,
    num_labels: int,
    embedding_dim: int | None = None,
    pad_id: int = 0,
) -> nn.Module:
    """Build (randomly initialised) student ``name`` from its ``arch`` dict; no weights are read."""
    if vocab_size < 1 or num_labels < 2:
        raise ValueError(f"need vocab_size >= 1 and num_labels >= 2, got {vocab_size} and {num_labels}")
    if not 0 <= pad_id < vocab_size:
        raise ValueError(f"pad_id {pad_id} is outside the vocabulary of size {vocab_size}")
    config = build_arch(name, arch, embedding_dim)
    return student_class(name)(config, vocab_size=vocab_size, num_labels=num_labels, pad_id=pad_id)


def pretrained_source(name: str, arch: dict[str, Any]) -> str | None:
    """The pretrained model student ``name`` with ``arch`` initialises from (``StudentModule.pretrained_source``)."""
    cls = student_class(name)
    if not issubclass(cls, StudentModule):
        return None
    return cls.pretrained_source(build_arch(name, arch))


def init_embeddings(model: nn.Module, matrix: np.ndarray, freeze: bool) -> None:
    """Copy a (vocab_size, embedding_dim) matrix (e.g. Word2Vec) into ``model.embedding``; optionally freeze it."""
    embedding = model.embedding
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"{type(model).__name__}.embedding must be an nn.Embedding")
    if tuple(matrix.shape) != tuple(embedding.weight.shape):
        raise ValueError(
            f"embedding matrix has shape {tuple(matrix.shape)} but the student expects {tuple(embedding.weight.shape)}"
        )
    with torch.no_grad():
        embedding.weight.copy_(torch.as_tensor(matrix, dtype=embedding.weight.dtype))
    embedding.weight.requires_grad_(not freeze)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def valid_positions(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengths and validity of right-padded inputs.

    Args:
        attention_mask: (B, T) int64, ones then zeros in each row.

    Returns:
        (mask (B, T) bool, lengths (B,) int64); an empty row counts its first position as valid so every
        row has something to pool.
    """
    lengths = attention_mask.sum(dim=1).clamp(min=1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1), lengths


def kept_count(size: int, amount: float) -> int:
    """How many of ``size`` units survive removing ``amount`` (in [0, 1)) of them: at least one."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    return max(1, int(round(size * (1.0 - amount))))


def top_indices(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` highest scores, in ascending index order (so ``count == len`` is the identity)."""
    return torch.topk(scores, count).indices.sort().values


def refresh_rnn_weights(model: nn.Module) -> None:
    """Point every LSTM/GRU's ``_flat_weights`` at its current weight tensors (and re-flatten them on GPU).

    ``nn.RNNBase`` runs on the list ``_flat_weights``, not on its attributes. ``prune.remove`` re-registers the
    pruned Parameter through ``setattr`` (which ``RNNBase.__setattr__`` mirrors into that list in current
    PyTorch); rebuilding the list here makes replaced weights take effect whatever the version.
    """
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            module._flat_weights = [getattr(module, name, None) for name in module._flat_weights_names]
            module.flatten_parameters()
