"""Compress a trained student: prune (``prune``), prune its vocabulary (``vocabulary``), export and run ONNX
(``onnx``), quantize to int8 (``quantize``).

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
    INT8_SCOPES,
    ONNX_INT8_NAME,
    STATIC_SCOPE,
    LogitsOnly,
    OnnxSequenceClassifier,
    compare_logits,
    export_classifier_int8,
    int8_check,
    int8_scopes_for,
    quantize_onnx_int8,
    quantize_onnx_int8_static,
)
from textdistill.compress.vocabulary import (
    id_map_for,
    kept_token_ids,
    prune_vocabulary,
    prune_vocabulary_by_counts,
    token_counts,
)

__all__ = [
    "INPUT_NAMES",
    "INT8_SCOPES",
    "LogitsOnly",
    "ONNX_INT8_NAME",
    "ONNX_NAME",
    "ONNX_PARITY_TOLERANCE",
    "OUTPUT_NAME",
    "OnnxModule",
    "OnnxSequenceClassifier",
    "STATIC_SCOPE",
    "compare_logits",
    "export_classifier_int8",
    "export_onnx",
    "finetune_after_pruning",
    "id_map_for",
    "int8_check",
    "int8_scopes_for",
    "kept_token_ids",
    "l1_unstructured_prune",
    "load_onnx_student",
    "onnx_initializers",
    "onnx_parity",
    "prunable_weights",
    "prune_vocabulary",
    "prune_vocabulary_by_counts",
    "quantize_onnx_int8",
    "quantize_onnx_int8_static",
    "sparsity_report",
    "structured_prune",
    "token_counts",
    "zero_masks",
]
