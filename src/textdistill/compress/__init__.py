"""Compress a trained student: prune (``prune``), export and run ONNX (``onnx``), quantize to int8 (``quantize``).

Compression never names a student class: structured pruning and export go through the hooks every registered
student provides (``shrunk``, ``exportable``, ``onnx_exporter``: see ``textdistill.students.StudentModule``).
This package re-exports the public names, so ``from textdistill.compress import X`` works for all of them.
"""

from textdistill.compress.onnx import (
    INPUT_NAMES,
    ONNX_NAME,
    ONNX_PARITY_TOLERANCE,
    OUTPUT_NAME,
    OnnxModule,
    export_onnx,
    load_onnx_student,
    onnx_initializers,
    onnx_parity,
)
from textdistill.compress.prune import (
    finetune_after_pruning,
    l1_unstructured_prune,
    prunable_weights,
    sparsity_report,
    structured_prune,
    zero_masks,
)
from textdistill.compress.quantize import (
    ONNX_INT8_NAME,
    LogitsOnly,
    OnnxSequenceClassifier,
    compare_logits,
    export_classifier_int8,
    int8_check,
    quantize_onnx_int8,
)

__all__ = [
    "INPUT_NAMES",
    "ONNX_INT8_NAME",
    "ONNX_NAME",
    "ONNX_PARITY_TOLERANCE",
    "OUTPUT_NAME",
    "LogitsOnly",
    "OnnxModule",
    "OnnxSequenceClassifier",
    "compare_logits",
    "export_classifier_int8",
    "export_onnx",
    "finetune_after_pruning",
    "int8_check",
    "l1_unstructured_prune",
    "load_onnx_student",
    "onnx_initializers",
    "onnx_parity",
    "prunable_weights",
    "quantize_onnx_int8",
    "sparsity_report",
    "structured_prune",
    "zero_masks",
]
