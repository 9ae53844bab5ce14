"""int8 with ONNX Runtime: dynamic quantization of an ONNX file, measured against the float model.

``quantize_onnx_int8`` quantizes an exported file dynamically (int8 weights, activations quantized at run
time): the int8 deployable is that ONNX file. ``int8_check`` measures it against the float model by what users
see, the agreement of predicted labels, and by the logit error relative to the logit scale. The teacher's int8
logit pass (``export_classifier_int8``, ``OnnxSequenceClassifier``) uses the same path for a Hugging Face
classifier.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from textdistill.compress.onnx import ONNX_NAME, OnnxModule, example_inputs, run_exporter
from textdistill.metrics import agreement
from textdistill.students.hub import predict_logits

logger = logging.getLogger(__name__)

ONNX_INT8_NAME = "model.int8.onnx"
# Which ops an int8 file quantizes: everything ONNX Runtime can, everything but convolutions (its int8 Conv
# kernels can lose to float ones), or only embedding tables (Gather): the deploy stage measures each.
INT8_SCOPES: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "no-conv": ("Gather", "MatMul", "Gemm", "LSTM", "Attention"),
    "embedding": ("Gather",),
}
# Static int8: weights and activations int8 (QDQ), activation ranges calibrated on training inputs; no quantize step
# at run time, so convolutions can gain where the dynamic ones lose.
STATIC_SCOPE = "static"
CALIBRATION_ROWS = 128


def quantize_onnx_int8(path: str | Path, out_path: str | Path, scope: str = "all") -> Path:
    """Dynamic int8 quantization of an ONNX file with ``onnxruntime.quantization.quantize_dynamic``; returns it.

    Weights of MatMul/Gemm, Conv, LSTM and Gather (the embedding table) become int8; activations are quantized
    at run time. ONNX Runtime has no dynamically quantized GRU, so a GRU student's recurrent layer stays float.
    Weights get one scale per output channel and 7 bits (``reduce_range``). 7 bits because on x86 CPUs without
    VNNI, ONNX Runtime's uint8 × int8 kernels add products in pairs into int16 (``vpmaddubsw``), which saturates
    with full-range weights (255 · 127 · 2 > 32767): that moved the test CNN's logits by 12% of their scale on
    such a machine; with 7-bit weights no pair can overflow, on any CPU. Expect logits to move by 1–2% of their
    scale and a few near-tie predictions to flip: measure it with ``int8_check``.

    ``scope`` (a key of ``INT8_SCOPES``) limits the quantized ops: ``"no-conv"`` keeps convolutions float,
    ``"embedding"`` quantizes only the embedding tables (integer tables, such as a pruned vocabulary's
    ``id_map``, are never quantized).
    """
    if scope not in INT8_SCOPES:
        raise ValueError(f"int8 scope must be one of {sorted(INT8_SCOPES)}, got {scope!r}")
    op_types = INT8_SCOPES[scope]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        model_input=str(path),
        model_output=str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=True,  # a 6-layer BERT's int8 logit error fell 3.5-fold (students: about the same)
        reduce_range=True,
        op_types_to_quantize=None if op_types is None else list(op_types),
    )
    return out_path


def quantize_onnx_int8_static(path: str | Path, out_path: str | Path, calibration: list[np.ndarray]) -> Path:
    """Static int8 quantization (``onnxruntime.quantization.quantize_static``, QDQ format) of an ONNX student;
    returns ``out_path``.

    Activation ranges are calibrated (min/max) on up to ``CALIBRATION_ROWS`` of ``calibration`` (training token ids,
    one unpadded row per call, so padding never enters a range); weights are per-channel with 7 bits for the
    reason given in ``quantize_onnx_int8``. Measure the result with ``int8_check`` like the dynamic files.
    """
    if not calibration:
        raise ValueError("static int8 needs calibration inputs (training token ids)")
    rows = np.random.default_rng(0).permutation(len(calibration))[:CALIBRATION_ROWS]
    feeds = [
        {
            "input_ids": calibration[i][None].astype(np.int64),
            "attention_mask": np.ones((1, len(calibration[i])), np.int64),
        }
        for i in rows
    ]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(
        model_input=str(path),
        model_output=str(out_path),
        calibration_data_reader=_Feeds(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out_path


class _Feeds(CalibrationDataReader):
    """ONNX Runtime's calibration reader over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantizable_op_types(path: str | Path) -> set[str]:
    """The op types of an ONNX graph that ``quantize_onnx_int8`` may quantize (Gather, MatMul, Gemm, Conv, …)."""
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    return ops & {"Gather", "MatMul", "Gemm", "Conv", "LSTM", "GRU", "Attention"}


def int8_scopes_for(path: str | Path, scopes: tuple[str, ...] = tuple(INT8_SCOPES)) -> list[str]:
    """The ``scopes`` that quantize different op sets of this graph (e.g. ``no-conv`` only if it has Conv); the
    static scope, which quantizes differently, whenever the graph has anything to quantize."""
    present, seen, kept = quantizable_op_types(path), set(), []
    for scope in scopes:
        if scope == STATIC_SCOPE:
            kept += [scope] if present else []
            continue
        ops = frozenset(present if INT8_SCOPES[scope] is None else present & set(INT8_SCOPES[scope] or ()))
        if ops and ops not in seen:
            seen.add(ops)
            kept.append(scope)
    return kept


def compare_logits(
    reference: np.ndarray,
    candidate: np.ndarray,
    labels: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
) -> dict[str, float]:
    """How a compressed model's logits compare with the original's, both (n, num_labels) on the same rows.

    ``agreement`` (same argmax; with a multi-label model's (num_labels,) ``thresholds``: the same label set,
    ``sigmoid(logit) >= threshold`` per label), ``max_abs_diff`` of the logits, ``relative_max_abs_diff`` (that
    over the largest |reference logit|: quantization error scales with the logits, so this is the figure to bound)
    and, with ``labels`` (n,) (``-1`` = unlabelled rows, ignored), ``accuracy_before``/``accuracy_after`` and their
    ``accuracy_change``.
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
    max_abs_diff = float(np.abs(reference - candidate).max())
    scale = float(np.abs(reference).max())
    if thresholds is not None:
        same = _label_sets(reference, thresholds) == _label_sets(candidate, thresholds)
        label_agreement = float(same.all(axis=1).mean())
    result = {
        "agreement": agreement(reference, candidate) if thresholds is None else label_agreement,
        "max_abs_diff": max_abs_diff,
        "relative_max_abs_diff": max_abs_diff / scale if scale > 0 else float(max_abs_diff > 0),
    }
    if labels is not None and thresholds is None and (np.asarray(labels) >= 0).any():
        labelled = np.asarray(labels) >= 0
        before = float((reference[labelled].argmax(1) == labels[labelled]).mean())
        after = float((candidate[labelled].argmax(1) == labels[labelled]).mean())
        result |= {"accuracy_before": before, "accuracy_after": after, "accuracy_change": after - before}
    return result


def _label_sets(logits: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(n, K) bool label sets: σ(logit) ≥ threshold, i.e. logit ≥ logit(threshold)."""
    cut = np.log(thresholds) - np.log1p(-np.asarray(thresholds, dtype=np.float64))
    return np.asarray(logits) >= cut


def int8_check(
    model: nn.Module,
    int8_path: str | Path,
    sequences: list[np.ndarray],
    pad_id: int,
    batch_size: int = 32,
    thresholds: np.ndarray | None = None,
) -> dict[str, float]:
    """``compare_logits`` of the float ``model`` (PyTorch) and the int8 ONNX file on the same ``sequences``.

    ``agreement`` is the share of sequences whose predicted label is unchanged: what a user of the int8 model
    sees. Run it on held-out data, on the machine that will serve the file (int8 kernels differ by CPU).
    """
    reference = predict_logits(model, sequences, pad_id, batch_size)
    quantized = predict_logits(OnnxModule(int8_path, num_threads=1), sequences, pad_id, batch_size)
    return compare_logits(reference, quantized, thresholds=thresholds)


# ---------------------------------------------------------------------------------------------------
# The teacher's int8 logit pass


class LogitsOnly(nn.Module):
    """A Hugging Face sequence classifier behind the student contract, for export: ``(ids, mask) → logits``."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels)."""
        return self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits


def export_classifier_int8(classifier: nn.Module, path: str | Path, opset: int = 18) -> Path:
    """A Hugging Face sequence classifier (the BERT teacher) as an ONNX Runtime int8 file at ``path``; returns it.

    Exported with torch.export (batch and sequence axes dynamic, up to ``max_position_embeddings`` tokens), then
    ``quantize_onnx_int8`` (per-channel 7-bit weights). The float ONNX file is temporary; ``path`` appears only
    once complete, so an interrupted export is redone rather than read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config: Any = classifier.config
    max_length, pad_id = int(config.max_position_embeddings), config.pad_token_id or 0
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        float_path = Path(scratch) / ONNX_NAME
        with torch.no_grad():
            example = example_inputs(max_length, pad_id)
            run_exporter(LogitsOnly(classifier).eval(), example, float_path, opset, "dynamo", max_length)
        quantize_onnx_int8(float_path, Path(scratch) / ONNX_INT8_NAME).replace(path)
    logger.info("teacher int8: exported and quantized to %s", path)
    return path


class OnnxSequenceClassifier(OnnxModule):
    """An ONNX classifier called like a Hugging Face one, as ``teacher.predict_logits`` does:
    ``model(input_ids=, attention_mask=).logits`` and ``model.config.num_labels``.
    """

    def __init__(self, path: str | Path, config: Any, num_threads: int = 0) -> None:
        super().__init__(path, num_threads)
        self.config = config
        # teacher.predict_logits sends its inputs to the device of the first parameter: an empty one on CPU
        self.device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → an output whose ``.logits`` is (B, num_labels)."""
        return SequenceClassifierOutput(logits=super().forward(input_ids, attention_mask))
