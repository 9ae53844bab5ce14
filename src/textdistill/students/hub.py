"""Save and load students like Hugging Face models, and run them on raw texts.

A saved student is a directory with ``config.json`` (``"textdistill_student": true``, the student name and
resolved arch, sizes, label mapping, tokenisation settings), ``model.safetensors``, the tokenizer files
(``save_pretrained``) and a ``README.md`` model card. ``Student.from_pretrained(directory)`` loads it back.

``config.json`` also records ``weights_sha256`` (sha256 of ``model.safetensors``) and ``tokenizer_fingerprint``
(``tokens.tokenizer_fingerprint`` of the saved tokenizer). Loading checks both, refuses weights with NaN or inf
values and a tokenizer with more tokens than the embedding has rows, so a damaged or mixed-up directory is a
ValueError rather than a model that silently answers differently. Directories saved before these keys existed
load with a warning.

A student whose vocabulary was pruned (``compress.prune_vocabulary``) also records ``"vocabulary": {"rows",
"pad_row", "min_count"}``: it is rebuilt with a ``PrunedEmbedding`` of that many rows before its weights (the
``id_map`` among them) are read. ``vocab_size`` stays the tokenizer's: the student reads the tokenizer's ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as serialise_tensors
from torch import nn

from textdistill import __version__
from textdistill.cache import atomic_write_bytes, atomic_write_text
from textdistill.inference import predict_logits
from textdistill.students import PrunedEmbedding, StudentModule, build_student, count_parameters
from textdistill.tokens import (
    SpecialIds,
    TokenSettings,
    load_tokenizer,
    normalise_text,
    tokenizer_fingerprint,
)

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
_ALIASES_KEY = "textdistill_aliases"
WEIGHTS_CHECKSUM_KEY = "weights_sha256"
TOKENIZER_FINGERPRINT_KEY = "tokenizer_fingerprint"
VOCABULARY_KEY = "vocabulary"


# ---------------------------------------------------------------------------------------------------
# Weights


def _storage_key(tensor: torch.Tensor) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    return tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()), tuple(tensor.shape), tensor.stride()


def _deduplicated(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Contiguous tensors to write, and aliases (name -> stored name) for tied tensors that share memory."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}
    storages: set[int] = set()
    for name, tensor in state.items():
        key = _storage_key(tensor)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        shared = key[0] in storages  # overlapping views of one buffer: store a private copy
        storages.add(key[0])
        tensor = tensor.detach()
        tensors[name] = tensor.clone().contiguous() if shared else tensor.contiguous()
    return tensors, aliases


def save_weights(model: nn.Module, path: Path) -> str:
    """Write ``model.state_dict()`` to a safetensors file atomically; tied tensors are stored once.

    Returns the sha256 (hex) of the file's bytes. ``atomic_write_bytes`` gives it the mode of a normal file
    (0644 under umask 022), not the 0600 of a private temporary file.
    """
    tensors, aliases = _deduplicated(model.state_dict())
    data = serialise_tensors(tensors, metadata={"format": "pt", _ALIASES_KEY: json.dumps(aliases)})
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict stored by ``save_weights`` (aliases restored); an unreadable file is a ValueError."""
    if not path.is_file():
        raise ValueError(f"weights file {path} is missing")
    try:
        state = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            stored_meta = handle.metadata() or {}
        aliases = json.loads(stored_meta.get(_ALIASES_KEY, "{}"))
    except Exception as error:  # safetensors raises several error types for damaged files
        raise ValueError(f"weights file {path} is corrupt or unreadable: {type(error).__name__}: {error}") from error
    for name, target in aliases.items():
        state[name] = state[target]
    return state


def _mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    expected = model.state_dict()
    problems = [f"missing weight {name!r}" for name in expected if name not in state]
    problems += [f"unexpected weight {name!r}" for name in state if name not in expected]
    problems += [
        f"weight {name!r} has shape {tuple(state[name].shape)} in the file but {tuple(tensor.shape)} in the model"
        for name, tensor in expected.items()
        if name in state and state[name].shape != tensor.shape
    ]
    return problems


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a ``save_weights`` file into ``model``; missing, extra or mis-shaped weights are a ValueError."""
    state = read_weights(path)
    problems = _mismatches(model, state)
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ValueError(f"weights in {path} do not match the model: {listed}")
    model.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------
# Directory format


def _resolved_arch(model: nn.Module, arch: dict[str, Any]) -> dict[str, Any]:
    """The full arch (every field, defaults included) so later default changes cannot alter a saved model."""
    config = getattr(model, "config", None)
    if config is not None and dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(arch)


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = [
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in metrics.items()
    ]
    return "\n".join(["| metric | value |", "| --- | --- |", *rows])


def model_card(config: dict[str, Any], metrics: dict[str, Any] | None, card_extra: dict[str, Any] | None) -> str:
    """A Markdown model card with YAML front matter, the size, the metrics table and how to load it."""
    labels = ", ".join(config["id2label"].values())
    tokens = config["tokenization"]
    lines = [
        "---",
        "library_name: textdistill",
        "pipeline_tag: text-classification",
        "tags: [text-classification, knowledge-distillation, textdistill]",
        "---",
        "",
        f"# textdistill student: {config['student']}",
        "",
        f"A `{config['student']}` text classifier distilled with textdistill (version {config['textdistill_version']})"
        f" from a BERT-family teacher. Labels: {labels}.",
        "",
        f"- parameters: {config['num_parameters']:,}",
        f"- vocabulary: {config['vocab_size']:,} WordPiece tokens (the teacher's tokenizer, saved alongside)"
        + _pruned_note(config),
        f"- input: up to {tokens['max_length']} tokens, truncation `{tokens['truncation']}`"
        f" (head fraction {tokens['head_fraction']})",
        f"- architecture: `{json.dumps(config['arch'], sort_keys=True)}`",
    ]
    if metrics:
        lines += ["", "## Metrics", "", _metrics_table(metrics)]
    for title, body in (card_extra or {}).items():
        lines += ["", f"## {title}", "", str(body)]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from textdistill.students.hub import Student",
        "",
        'student = Student.from_pretrained("path/to/this/directory")',
        'student.predict(["A wonderful, moving film."])',
        "```",
        "",
    ]
    return "\n".join(lines)


def _pruned_note(config: dict[str, Any]) -> str:
    pruned = config.get(VOCABULARY_KEY)
    if not pruned:
        return ""
    return (
        f"; {pruned['rows']:,} embedding rows kept (tokens seen >= {pruned['min_count']} times), the rest read [UNK]"
    )


def vocabulary_record(model: nn.Module) -> dict[str, int] | None:
    """``{"rows", "pad_row", "min_count"}`` of a student with a pruned vocabulary, else None."""
    embedding = getattr(model, "embedding", None)
    if not isinstance(embedding, PrunedEmbedding):
        return None
    pad_row = embedding.padding_idx if embedding.padding_idx is not None else 0
    return {"rows": embedding.num_embeddings, "pad_row": pad_row, "min_count": embedding.min_count}


def student_config(
    model: nn.Module,
    name: str,
    arch: dict[str, Any],
    vocab_size: int,
    pad_id: int,
    label_names: list[str],
    tokens: TokenSettings,
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` content of a student (checksums are added when it is saved).

    ``thresholds`` (``multilabel.Thresholds.to_dict()``) marks a multi-label student: ``task: multi_label`` and its
    per-label decision thresholds, chosen on validation, are saved with it.
    """
    multi_label = {"task": "multi_label", "thresholds": thresholds} if thresholds is not None else {}
    return (
        multi_label
        | {
            "textdistill_student": True,
            "textdistill_version": __version__,
            "student": name,
            "arch": _resolved_arch(model, arch),
            "vocab_size": vocab_size,
            "num_labels": len(label_names),
            "pad_id": pad_id,
            "num_parameters": count_parameters(model),
            "id2label": {str(i): label for i, label in enumerate(label_names)},
            "label2id": {label: i for i, label in enumerate(label_names)},
            "tokenization": tokens.to_dict(),
        }
        | ({VOCABULARY_KEY: vocabulary} if (vocabulary := vocabulary_record(model)) else {})
    )


def save_student(
    model: nn.Module,
    directory: str | Path,
    *,
    name: str,
    arch: dict[str, Any],
    tokenizer: Any,
    label_names: list[str],
    tokens: TokenSettings,
    metrics: dict[str, Any] | None = None,
    card_extra: dict[str, Any] | None = None,
    thresholds: dict[str, Any] | None = None,
) -> Path:
    """Write a student directory (config.json, model.safetensors, tokenizer files, README.md); returns it.

    ``thresholds``: a multi-label student's decision thresholds (see ``student_config``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = student_config(model, name, arch, len(tokenizer), tokenizer.pad_token_id, label_names, tokens, thresholds)
    config[WEIGHTS_CHECKSUM_KEY] = save_weights(model, directory / WEIGHTS_NAME)
    tokenizer.save_pretrained(str(directory))
    config[TOKENIZER_FINGERPRINT_KEY] = tokenizer_fingerprint(load_tokenizer(str(directory)))
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    atomic_write_text(directory / CARD_NAME, model_card(config, metrics, card_extra))
    logger.info("saved student %s (%d parameters) to %s", name, config["num_parameters"], directory)
    return directory


def read_student_config(directory: Path) -> dict[str, Any]:
    """The config.json of a saved student; a missing directory or file, or a foreign config, is a ValueError."""
    if not directory.is_dir():
        raise ValueError(f"student directory {directory} does not exist")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{directory} has no {CONFIG_NAME}: not a saved textdistill student")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(config, dict) or config.get("textdistill_student") is not True:
        raise ValueError(f'{path} is not a textdistill student config (no "textdistill_student": true)')
    return config


# ---------------------------------------------------------------------------------------------------
# Integrity checks at load time


def verify_weights_checksum(directory: Path, config: dict[str, Any]) -> None:
    """Compare ``model.safetensors`` with the sha256 in config.json; a mismatch is a ValueError naming the file."""
    expected = config.get(WEIGHTS_CHECKSUM_KEY)
    path = directory / WEIGHTS_NAME
    if expected is None:  # saved before checksums: warn_if_unverifiable says so
        return
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"{path} does not match the {WEIGHTS_CHECKSUM_KEY} in {directory / CONFIG_NAME} (expected {expected}, "
            f"file has {actual}): the weights are damaged or were replaced; re-save the student"
        )


def verify_finite_weights(model: nn.Module, path: Path) -> None:
    """A ValueError naming the weights that hold NaN or inf: such a model would answer NaN for every text."""
    broken = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        listed = ", ".join(repr(name) for name in broken[:5]) + (
            f" and {len(broken) - 5} more" if len(broken) > 5 else ""
        )
        raise ValueError(f"{path} holds NaN or inf values in {listed}: the model is broken (did training diverge?)")


def verify_tokenizer(tokenizer: Any, config: dict[str, Any], directory: Path) -> None:
    """The tokenizer files must fit the embedding and be the ones the student was saved with (a ValueError if not)."""
    if len(tokenizer) > config["vocab_size"]:
        raise ValueError(
            f"the tokenizer in {directory} has {len(tokenizer):,} tokens but the student's embedding has "
            f"{config['vocab_size']:,} rows ({CONFIG_NAME} vocab_size): the tokenizer files belong to another model"
        )
    expected = config.get(TOKENIZER_FINGERPRINT_KEY)
    actual = tokenizer_fingerprint(tokenizer)
    if expected is not None and actual != expected:
        raise ValueError(
            f"the tokenizer files in {directory} (tokenizer.json, vocab.txt, tokenizer_config.json) are not the ones "
            f"the student was saved with: fingerprint {actual}, but {CONFIG_NAME} records {expected}; "
            "restore the original tokenizer files or re-save the student"
        )


def warn_if_unverifiable(config: dict[str, Any], directory: Path) -> None:
    """Directories saved before the checksum keys existed still load, with a warning saying what is unchecked."""
    missing = [key for key in (WEIGHTS_CHECKSUM_KEY, TOKENIZER_FINGERPRINT_KEY) if key not in config]
    if missing:
        logger.warning(
            "%s has no %s (saved by an older textdistill): damaged weights or swapped tokenizer files cannot be "
            "detected; re-save the student to add them",
            directory / CONFIG_NAME,
            " or ".join(missing),
        )


# ---------------------------------------------------------------------------------------------------
# Raw texts


class NonFiniteLogitsError(ValueError):
    """The model produced NaN or inf logits: a broken model, never a prediction."""


def text_problem(text: Any) -> str | None:
    """Why ``text`` cannot be classified (not a string, empty after normalisation, not valid Unicode), or None."""
    if not isinstance(text, str):
        return f"is not a string but {type(text).__name__}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"is not valid Unicode: an unpaired surrogate {text[error.start]!r} at character {error.start}"
    if not normalise_text(text):
        return "is empty or whitespace-only: there is nothing to classify"
    return None


def check_texts(texts: list[str]) -> None:
    """A ValueError naming the index of every text that ``text_problem`` refuses (up to five are listed)."""
    problems = [f"texts[{index}] {problem}" for index, text in enumerate(texts) if (problem := text_problem(text))]
    if problems:
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ValueError("; ".join(problems[:5]) + more)


def _use_pruned_vocabulary(model: nn.Module, vocabulary: dict[str, Any]) -> None:
    """Give a freshly built student the ``PrunedEmbedding`` that ``config.json``'s ``vocabulary`` describes."""
    if not isinstance(model, StudentModule):
        raise ValueError(f"{type(model).__name__} cannot hold a pruned vocabulary")
    model.with_pruned_vocabulary(int(vocabulary["rows"]), int(vocabulary["pad_row"]), int(vocabulary["min_count"]))


class Student:
    """A loaded student: ``model`` (eval mode), ``tokenizer``, ``label_names`` and the saved ``config`` dict."""

    def __init__(self, model: nn.Module, tokenizer: Any, config: dict[str, Any]) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config
        self.label_names = [config["id2label"][str(i)] for i in range(config["num_labels"])]
        self.special = SpecialIds.of(tokenizer)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Student:
        """Load a directory written by ``save_student``; every problem is a ValueError that names it."""
        directory = Path(directory)
        config = read_student_config(directory)
        try:
            model = build_student(
                config["student"], config["arch"], config["vocab_size"], config["num_labels"], pad_id=config["pad_id"]
            )
            if VOCABULARY_KEY in config:
                _use_pruned_vocabulary(model, config[VOCABULARY_KEY])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{directory / CONFIG_NAME} does not describe a valid student: {error!s}") from error
        warn_if_unverifiable(config, directory)
        load_weights(model, directory / WEIGHTS_NAME)  # an unreadable file is reported as such, before the checksum
        verify_weights_checksum(directory, config)
        verify_finite_weights(model, directory / WEIGHTS_NAME)
        tokenizer = load_tokenizer(str(directory))
        verify_tokenizer(tokenizer, config, directory)
        return cls(model, tokenizer, config)

    def sequences(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of raw texts, normalised, truncated by the saved settings and wrapped in [CLS] … [SEP].

        A text that is not a string, is empty or whitespace-only, or is not valid Unicode is a ValueError naming
        its index (see ``text_problem``).
        """
        if not texts:
            return []
        check_texts(texts)
        return self.token_settings.encode(list(texts), self.tokenizer)

    @property
    def token_settings(self) -> TokenSettings:
        """How this student reads a text (saved in ``config.json`` under ``tokenization``)."""
        return TokenSettings(**self.config["tokenization"])

    def predict_logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Logits (n, num_labels) float32, in the order of ``texts``; NaN or inf is a ``NonFiniteLogitsError``."""
        logits = predict_logits(self.model, self.sequences(texts), self.config["pad_id"], batch_size)
        broken = np.flatnonzero(~np.isfinite(logits).all(axis=1))
        if broken.size:
            raise NonFiniteLogitsError(
                f"the model produced NaN or inf logits for {broken.size} of {len(texts)} texts (indices "
                f"{broken[:10].tolist()}): the model is broken; no prediction is made"
            )
        return logits

    @property
    def multi_label(self) -> bool:
        """True for a multi-label student: one sigmoid per label and saved decision thresholds."""
        return self.config.get("task") == "multi_label"

    @property
    def thresholds(self) -> np.ndarray | None:
        """(num_labels,) decision thresholds of a multi-label student (chosen on validation); None otherwise."""
        return np.asarray(self.config["thresholds"]["values"], dtype=np.float32) if self.multi_label else None

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities (n, num_labels) float32, columns in the order of ``label_names``: a softmax, or one
        independent sigmoid per label for a multi-label student."""
        logits = torch.from_numpy(self.predict_logits(texts, batch_size))
        return (torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)).numpy()

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        """One ``{"label": str, "probabilities": {label: float}}`` per text, in input order.

        A multi-label student gives ``{"labels": [names whose probability reaches their threshold], "probabilities":
        {label: float}}`` instead (the set may be empty).
        """
        probabilities = self.predict_proba(texts, batch_size)
        if self.multi_label:
            assert self.thresholds is not None
            return [
                {
                    "labels": [
                        name for name, p, t in zip(self.label_names, row, self.thresholds, strict=True) if p >= t
                    ],
                    "probabilities": {label: float(p) for label, p in zip(self.label_names, row, strict=True)},
                }
                for row in probabilities
            ]
        return [
            {
                "label": self.label_names[int(row.argmax())],
                "probabilities": {label: float(p) for label, p in zip(self.label_names, row, strict=True)},
            }
            for row in probabilities
        ]

    def export_onnx(self, path: str | Path, opset: int = 17, int8: bool = False) -> Path:
        """Write this student as an ONNX graph (dynamic batch and length; inputs ``input_ids``, ``attention_mask``),
        or its ONNX Runtime int8 version with ``int8=True`` (check it with ``compress.int8_check``); returns the path.
        """
        from textdistill import compress  # compress builds on this module: imported here to avoid a cycle

        path = Path(path)
        if not int8:
            return compress.export_onnx(self.model, path, opset, self.token_settings.max_length)
        float_path = compress.export_onnx(
            self.model, path.with_suffix(".float.onnx"), opset, self.token_settings.max_length
        )
        try:
            return compress.quantize_onnx_int8(float_path, path)
        finally:
            float_path.unlink(missing_ok=True)

    def save_pretrained(
        self, directory: str | Path, metrics: dict[str, Any] | None = None, card_extra: dict[str, Any] | None = None
    ) -> Path:
        """Write this student as a directory that ``Student.from_pretrained`` (and ``textdistill serve``) loads."""
        return save_student(
            self.model,
            directory,
            name=self.config["student"],
            arch=self.config["arch"],
            tokenizer=self.tokenizer,
            label_names=self.label_names,
            tokens=self.token_settings,
            metrics=metrics,
            card_extra=card_extra,
            thresholds=self.config.get("thresholds"),
        )
