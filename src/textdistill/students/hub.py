"""Save and load students like Hugging Face models, and run them on raw texts.

A saved student is a directory with ``config.json`` (``"textdistill_student": true``, the student name and
resolved arch, sizes, label mapping, tokenisation settings), ``model.safetensors``, the tokenizer files
(``save_pretrained``) and a ``README.md`` model card. ``Student.from_pretrained(directory)`` loads it back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from textdistill import __version__
from textdistill.students import build_student, count_parameters
from textdistill.tokens import (
    EncodedTexts,
    SpecialIds,
    iterate_batches,
    length_bucketed_batches,
    load_tokenizer,
    model_inputs,
    normalise_text,
)

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
_ALIASES_KEY = "textdistill_aliases"


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


def save_weights(model: nn.Module, path: Path) -> None:
    """Write ``model.state_dict()`` to a safetensors file atomically; tied tensors are stored once."""
    tensors, aliases = _deduplicated(model.state_dict())
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", _ALIASES_KEY: json.dumps(aliases)})
    tmp.replace(path)


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
# Inference on token ids


def predict_logits(model: nn.Module, sequences: list[np.ndarray], pad_id: int, batch_size: int = 256) -> np.ndarray:
    """Logits (n, num_labels) float32 for already-wrapped id sequences, in the original order.

    Runs in eval mode under ``torch.inference_mode`` with length-sorted batches; the model's training mode is
    restored afterwards.
    """
    if not sequences:
        return np.zeros((0, getattr(getattr(model, "classifier", None), "out_features", 0)), dtype=np.float32)
    was_training = model.training
    model.eval()
    batches = length_bucketed_batches(np.array([len(s) for s in sequences]), batch_size, shuffle=False)
    chunks = []
    with torch.inference_mode():
        for _, input_ids, attention_mask in iterate_batches(sequences, batches, pad_id):
            chunks.append(model(input_ids, attention_mask).float().numpy())
    model.train(was_training)
    stacked = np.concatenate(chunks)
    out = np.empty_like(stacked)
    out[np.concatenate(batches)] = stacked
    return out


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
        f"- vocabulary: {config['vocab_size']:,} WordPiece tokens (the teacher's tokenizer, saved alongside)",
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


def save_student(
    model: nn.Module,
    directory: str | Path,
    *,
    name: str,
    arch: dict[str, Any],
    vocab_size: int,
    num_labels: int,
    pad_id: int,
    label_names: list[str],
    tokenizer: Any,
    max_length: int,
    truncation: str,
    head_fraction: float,
    metrics: dict[str, Any] | None = None,
    card_extra: dict[str, Any] | None = None,
) -> Path:
    """Write a student directory (config.json, model.safetensors, tokenizer files, README.md); returns it."""
    if len(label_names) != num_labels:
        raise ValueError(f"{len(label_names)} label names given for {num_labels} labels")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "textdistill_student": True,
        "textdistill_version": __version__,
        "student": name,
        "arch": _resolved_arch(model, arch),
        "vocab_size": vocab_size,
        "num_labels": num_labels,
        "pad_id": pad_id,
        "num_parameters": count_parameters(model),
        "id2label": {str(i): label for i, label in enumerate(label_names)},
        "label2id": {label: i for i, label in enumerate(label_names)},
        "tokenization": {"max_length": max_length, "truncation": truncation, "head_fraction": head_fraction},
    }
    save_weights(model, directory / WEIGHTS_NAME)
    tokenizer.save_pretrained(str(directory))
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (directory / CARD_NAME).write_text(model_card(config, metrics, card_extra), encoding="utf-8")
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
        except (KeyError, ValueError) as error:
            raise ValueError(f"{directory / CONFIG_NAME} does not describe a valid student: {error!s}") from error
        load_weights(model, directory / WEIGHTS_NAME)
        return cls(model, load_tokenizer(str(directory)), config)

    def sequences(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of raw texts, normalised, truncated by the saved settings and wrapped in [CLS] … [SEP]."""
        settings = self.config["tokenization"]
        if not texts:
            return []
        cleaned = [normalise_text(text) for text in texts]
        ids = self.tokenizer(cleaned, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        encoded = EncodedTexts.from_sequences(ids)
        return model_inputs(
            encoded, settings["max_length"], settings["truncation"], self.special, settings["head_fraction"]
        )

    def predict_logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Logits (n, num_labels) float32, in the order of ``texts``."""
        return predict_logits(self.model, self.sequences(texts), self.config["pad_id"], batch_size)

    def predict(self, texts: list[str], batch_size: int = 64) -> list[dict[str, Any]]:
        """One ``{"label": str, "probabilities": {label: float}}`` per text, in input order."""
        logits = self.predict_logits(texts, batch_size)
        probabilities = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
        return [
            {
                "label": self.label_names[int(row.argmax())],
                "probabilities": {label: float(p) for label, p in zip(self.label_names, row, strict=True)},
            }
            for row in probabilities
        ]
