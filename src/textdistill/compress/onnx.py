"""ONNX: export a student to one file, run such files with ONNX Runtime, and measure the export's parity.

The export form of a student is its ``exportable()`` hook (``textdistill.students.StudentModule``): the
student itself, except ``rnn-attention``, whose packed recurrent layers do not export and which is exported
as its unpacked twin (identical for right-padded inputs of any lengths up to float rounding, about 1e-6 on
the logits). The student's ``onnx_exporter`` picks the exporter.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import numpy_helper
from torch import nn

from textdistill.students import StudentModule
from textdistill.students.hub import Student, load_tokenizer, predict_logits, read_student_config

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
ONNX_NAME = "model.onnx"
ONNX_PARITY_TOLERANCE = 1e-4  # max |logit difference| of a float ONNX export vs PyTorch (float32 rounding)
EXPORTERS = ("torchscript", "dynamo")


def example_inputs(max_length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (2, T) right-padded example batch with T = min(max_length, 16) ≥ 2; the second row is half padding."""
    width = max(2, min(max_length, 16))
    input_ids = torch.arange(width, dtype=torch.long).repeat(2, 1) % 7 + 5
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, width // 2 + 1 :] = 0
    input_ids[1, width // 2 + 1 :] = pad_id
    return input_ids, attention_mask


def run_exporter(
    module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, opset: int, exporter: str, max_length: int
) -> None:
    """``torch.onnx.export`` of ``module`` to ``path`` with dynamic batch and sequence axes, by ``exporter``."""
    names: dict[str, Any] = {"input_names": list(INPUT_NAMES), "output_names": [OUTPUT_NAME], "opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes; parity is tested
        if exporter == "torchscript":
            axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
            torch.onnx.export(
                module, example, str(path), dynamo=False, dynamic_axes=axes | {OUTPUT_NAME: {0: "batch"}}, **names
            )
        else:
            batch, sequence = torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=1, max=max_length)
            shapes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
            torch.onnx.export(
                module,
                example,
                str(path),
                dynamo=True,
                dynamic_shapes=shapes,
                external_data=False,
                verbose=False,  # no progress lines on stdout
                **names,
            )


def _default_exporter(model: nn.Module) -> str:
    """The student's ``onnx_exporter`` hook; the legacy tracer for any other module."""
    return model.onnx_exporter if isinstance(model, StudentModule) else "torchscript"


def _export_form(model: nn.Module) -> nn.Module:
    """The module to trace for ``model``, in eval mode: the student's ``exportable()`` hook, else ``model``."""
    return (model.exportable() if isinstance(model, StudentModule) else model).eval()


def export_onnx(
    model: nn.Module, path: str | Path, opset: int = 17, max_length: int = 512, *, exporter: str | None = None
) -> Path:
    """Export a student to a single ONNX file with dynamic batch and sequence axes; returns the path.

    Inputs ``input_ids`` and ``attention_mask`` (batch, sequence) int64, right-padded; output ``logits``
    (batch, num_labels) float32. ``exporter`` is ``"torchscript"`` (the legacy tracer) or ``"dynamo"``
    (torch.export; needs ``onnxscript``); by default the student's ``onnx_exporter``. ``max_length`` bounds the
    sequence axis for torch.export and is stored in the file's metadata with the exporter. What is traced is
    the student's ``exportable()`` form: ``onnx_parity`` measures how close it stays.
    """
    exporter = exporter or _default_exporter(model)
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, StudentModule):
        pad_id = model.input_vocabulary()[1]
    else:
        pad_id = getattr(getattr(model, "embedding", None), "padding_idx", None) or 0
    was_training = model.training
    try:
        with torch.no_grad():
            run_exporter(_export_form(model), example_inputs(max_length, pad_id), path, opset, exporter, max_length)
    finally:
        model.train(was_training)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    meta = {"textdistill_student": type(model).__name__, "exporter": exporter, "max_length": str(max_length)}
    onnx.helper.set_model_props(graph, meta)
    onnx.save(graph, str(path))
    logger.info("exported %s to %s (%s exporter, opset %d)", type(model).__name__, path, exporter, opset)
    return path


class OnnxModule(nn.Module):
    """An ONNX file run with ONNX Runtime behind the student contract ``forward(input_ids, attention_mask)``.

    So ``hub.predict_logits``, ``Student`` and the benchmarks use it like any student. ``num_threads`` sets
    ``intra_op_num_threads`` (0: ONNX Runtime's default, all cores); ``providers`` defaults to CPU.
    """

    def __init__(self, path: str | Path, num_threads: int = 0, providers: list[str] | None = None) -> None:
        super().__init__()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=providers or ["CPUExecutionProvider"]
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels) float32 (CPU)."""
        feeds = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        return torch.from_numpy(self.session.run([OUTPUT_NAME], feeds)[0])


def load_onnx_student(directory: str | Path, onnx_file: str = ONNX_NAME, num_threads: int = 0) -> Student:
    """A ``Student`` (``predict``, ``predict_logits`` on raw texts) whose model is ``directory/onnx_file`` run by
    ONNX Runtime; the config and tokenizer come from the saved student directory."""
    directory = Path(directory)
    config = read_student_config(directory)
    if not (directory / onnx_file).is_file():
        raise ValueError(f"{directory} has no {onnx_file}: export it with export_onnx first")
    return Student(OnnxModule(directory / onnx_file, num_threads), load_tokenizer(str(directory)), config)


def onnx_parity(
    model: nn.Module, path: str | Path, sequences: list[np.ndarray], pad_id: int, batch_size: int = 8
) -> float:
    """Max |logit difference| between ``model`` in PyTorch and the ONNX file on ``sequences``.

    Both run the same length-bucketed, right-padded batches of ``batch_size`` (use 1 for the serving case).
    """
    reference = predict_logits(model, sequences, pad_id, batch_size)
    exported = predict_logits(OnnxModule(path, num_threads=1), sequences, pad_id, batch_size)
    return float(np.abs(reference - exported).max())


def onnx_initializers(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, array)`` of every weight stored in an ONNX file (its graph initializers)."""
    for initializer in onnx.load(str(path)).graph.initializer:
        yield initializer.name, numpy_helper.to_array(initializer)
