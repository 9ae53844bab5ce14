"""Compression and efficiency stages of a run: pruning sweeps, int8, ONNX, and the side-by-side benchmark.

The pruning sweep is scored on the validation split (it is a choice of how far to prune); the final
deployable artifacts are scored on the test split.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textdistill.config import Config
from textdistill.metrics import agreement, classification_metrics

logger = logging.getLogger(__name__)


def _scores(logits: np.ndarray, labels: np.ndarray, teacher: np.ndarray | None) -> dict[str, float]:
    metrics = classification_metrics(labels, logits.argmax(-1), logits.shape[1])
    scores = {"accuracy": metrics["accuracy"], "f1": metrics["f1_macro"]}
    if teacher is not None:
        scores["agreement"] = agreement(logits, teacher)
    return scores


def pruning_sweep(model, sequences, labels, sparsities: list[float], pad_id: int) -> list[dict[str, Any]]:
    """Accuracy (on the given split) of L1-unstructured and structured pruning at each amount."""
    from textdistill.bench import parameter_counts
    from textdistill.compress import l1_unstructured_prune, structured_prune
    from textdistill.students.hub import predict_logits

    rows = []
    for amount in sparsities:
        unstructured = copy.deepcopy(model)
        report = l1_unstructured_prune(unstructured, amount, scope="global")
        logits = predict_logits(unstructured.eval(), sequences, pad_id)
        rows.append(
            {
                "method": "L1 unstructured (global)",
                "sparsity": amount,
                "achieved_sparsity": report["total"]["sparsity"],
                **_scores(logits, labels, None),
                "parameters": parameter_counts(unstructured),
            }
        )
        try:
            shrunk = structured_prune(model, amount)
        except (TypeError, ValueError, NotImplementedError) as error:
            logger.info("structured pruning not available for this student: %s", error)
            continue
        logits = predict_logits(shrunk.eval(), sequences, pad_id)
        rows.append(
            {
                "method": "structured (smaller dense model)",
                "sparsity": amount,
                **_scores(logits, labels, None),
                "parameters": parameter_counts(shrunk),
            }
        )
        logger.info("pruning %.0f%%: %s", 100 * amount, rows[-2:])
    return rows


def deployables(config: Config, student_dir: Path, out_dir: Path) -> dict[str, Any]:
    """int8 PyTorch (LSTM/Linear dynamic + int8 embedding), ONNX and ONNX int8 versions of one saved student."""
    from textdistill.compress import (
        ONNX_INT8_NAME,
        ONNX_NAME,
        compress_embedding,
        export_onnx,
        onnx_parity,
        quantize_dynamic_int8,
        quantize_onnx_int8,
    )
    from textdistill.students.hub import Student

    student = Student.from_pretrained(student_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {"float": student.model}
    if config.compress.quantize:
        models["int8"] = compress_embedding(quantize_dynamic_int8(student.model), config.compress.embedding_dtype)
        int8_path = out_dir / "model.int8.pt"
        torch.save(models["int8"].state_dict(), int8_path)  # size on disk only; the shareable int8 file is ONNX
    parity = None
    if config.compress.export_onnx:
        max_length = student.config["tokenization"]["max_length"]
        onnx_path = export_onnx(student.model, student_dir / ONNX_NAME, config.compress.onnx_opset, max_length)
        quantize_onnx_int8(onnx_path, student_dir / ONNX_INT8_NAME)
        probe = student.sequences(["A gripping, beautifully acted film.", "Dull and far too long.", "Fine."] * 3)
        parity = onnx_parity(student.model, onnx_path, probe, student.config["pad_id"])
    return {"student": student, "models": models, "onnx_parity_max_abs_diff": parity}


def evaluate_variants(variants: dict[str, Any], sequences, labels, teacher, pad_id: int, directory: Path):
    """Test scores of each variant (PyTorch modules and ONNX files), with agreement with the float student."""
    from textdistill.compress import ONNX_INT8_NAME, ONNX_NAME, OnnxModule
    from textdistill.students.hub import predict_logits

    modules = dict(variants)
    for name, file in (("onnx", ONNX_NAME), ("onnx-int8", ONNX_INT8_NAME)):
        if (directory / file).is_file():
            modules[name] = OnnxModule(directory / file)
    logits = {name: predict_logits(module.eval(), sequences, pad_id) for name, module in modules.items()}
    scores = {name: _scores(values, labels, teacher) for name, values in logits.items()}
    for name, values in logits.items():
        scores[name]["agreement_with_float_student"] = agreement(values, logits["float"])
    return scores


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, default=str), encoding="utf-8")
