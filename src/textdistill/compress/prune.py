"""Pruning: L1 unstructured (zeros in dense tensors) and structured (a smaller dense model, by the student's hook).

- ``l1_unstructured_prune`` zeroes the smallest weights. The tensors stay dense, so neither the parameter memory
  nor the latency of dense kernels changes; it only pays off with a sparse format or a sparse kernel (and
  compresses better on disk). ``bench`` shows this next to the float model.
- ``structured_prune`` removes whole units (recurrent units, convolution filters, feed-forward units: each
  student's ``shrunk`` hook decides which) and returns a smaller *dense* model of the same class: fewer
  parameters and smaller matrix products, so it is faster.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from textdistill.config import DistillConfig
from textdistill.students import StudentModule, refresh_rnn_weights
from textdistill.train import DistillData, TrainResult, train_student

logger = logging.getLogger(__name__)

_RNN_WEIGHT = re.compile(r"weight_(ih|hh)_l\d+(_reverse)?$")
_SCOPES = ("global", "layer")

# ---------------------------------------------------------------------------------------------------
# Unstructured L1 pruning


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """Every weight matrix that pruning may zero, as ``(qualified name, module, parameter name)``.

    LSTM/GRU ``weight_ih_l*`` and ``weight_hh_l*`` (``_reverse`` included), Conv1d and Linear weights, and the
    packed q/k/v projection (``in_proj_weight``) of multi-head attention. Embeddings and biases are never
    pruned.
    """
    targets = []
    for prefix, module in model.named_modules():
        if isinstance(module, nn.RNNBase):
            names = [name for name in module._flat_weights_names if _RNN_WEIGHT.match(name)]
        elif isinstance(module, nn.Conv1d | nn.Linear):
            names = ["weight"]
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            names = ["in_proj_weight"]
        else:
            names = []
        targets += [(f"{prefix}.{name}" if prefix else name, module, name) for name in names]
    return targets


def sparsity_report(model: nn.Module) -> dict[str, dict[str, float]]:
    """Zeros per prunable weight: ``{name: {"numel", "zeros", "sparsity"}}`` plus ``"total"`` over all of them."""
    report: dict[str, dict[str, float]] = {}
    for name, module, attribute in prunable_weights(model):
        weight = getattr(module, attribute).detach()
        zeros = int((weight == 0).sum())
        report[name] = {"numel": weight.numel(), "zeros": zeros, "sparsity": zeros / max(1, weight.numel())}
    total_numel = sum(entry["numel"] for entry in report.values())
    total_zeros = sum(entry["zeros"] for entry in report.values())
    report["total"] = {"numel": total_numel, "zeros": total_zeros, "sparsity": total_zeros / max(1, total_numel)}
    return report


def l1_unstructured_prune(model: nn.Module, sparsity: float, scope: str = "global") -> dict[str, dict[str, float]]:
    """Zero the smallest-magnitude ``sparsity`` share of the prunable weights, in place and permanently.

    ``scope="global"`` ranks all prunable weights together (layers end up with different sparsities);
    ``scope="layer"`` prunes each weight matrix to ``sparsity`` on its own. Uses ``torch.nn.utils.prune``,
    then ``prune.remove`` so the zeros are baked into plain Parameters (same names as before, loadable by
    ``Student.from_pretrained``). Returns ``sparsity_report(model)``.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {_SCOPES}, got {scope!r}")
    pairs = [(module, attribute) for _, module, attribute in prunable_weights(model)]
    if not pairs:
        raise ValueError(f"{type(model).__name__} has no prunable weights")
    if scope == "global":
        prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, attribute in pairs:
            prune.l1_unstructured(module, attribute, amount=sparsity)
    for module, attribute in pairs:
        prune.remove(module, attribute)
    refresh_rnn_weights(model)
    report = sparsity_report(model)
    logger.info(
        "L1 unstructured pruning (%s): %.1f%% of prunable weights are zero", scope, 100 * report["total"]["sparsity"]
    )
    return report


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{name: mask}`` for every prunable weight, 1.0 where the weight is non-zero (shapes as the weights)."""
    return {name: (getattr(module, attr).detach() != 0).float() for name, module, attr in prunable_weights(model)}


def _masked_gradients(model: nn.Module, masks: dict[str, torch.Tensor]) -> list[Any]:
    """Register gradient hooks that multiply each masked weight's gradient by its mask; returns the handles."""
    handles = []
    for name, module, attribute in prunable_weights(model):
        if name in masks:
            mask = masks[name]
            handles.append(getattr(module, attribute).register_hook(lambda grad, mask=mask: grad * mask))
    return handles


def _apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, module, attribute in prunable_weights(model):
            if name in masks:
                getattr(module, attribute).mul_(masks[name])
    refresh_rnn_weights(model)


def finetune_after_pruning(
    model: nn.Module,
    train: DistillData,
    validation: DistillData,
    config: DistillConfig,
    run_dir: Path,
    pad_id: int,
    *,
    epochs: int | None = None,
    keep_zeros: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Briefly fine-tune a pruned ``model`` under the distillation loss with ``train.train_student``.

    ``epochs`` overrides ``config.epochs``. With ``keep_zeros`` (for
    unstructured pruning) the weights that are zero now stay exactly zero: their gradients are masked during
    training (with AdamW a zero weight with zero gradient never moves, decoupled weight decay included) and
    the masks are applied once more at the end. Gradient masks are used rather than ``torch.nn.utils.prune``'s
    forward pre-hooks because fused paths (multi-head attention's ``out_proj``, the Transformer encoder fast
    path) read ``.weight`` directly and would bypass those hooks. Structured-pruned models need no masks.
    """
    masks = zero_masks(model) if keep_zeros else {}
    handles = _masked_gradients(model, masks)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    try:
        result = train_student(model, train, validation, config, run_dir, pad_id, max_steps=max_steps)
    finally:
        for handle in handles:
            handle.remove()
    _apply_masks(model, masks)
    return result


# ---------------------------------------------------------------------------------------------------
# Structured pruning: a smaller dense model


def structured_prune(model: nn.Module, amount: float) -> nn.Module:
    """A NEW, smaller dense model of the same class with ``amount`` of its units removed by importance.

    The student's ``shrunk`` hook (see ``textdistill.students.StudentModule``) chooses the units: hidden units
    for ``rnn-attention``, convolution filters for ``cnn``, feed-forward units for ``transformer`` and
    ``pretrained-layers``; a student without one (``ngram-bag``) raises NotImplementedError. Kept units keep their
    order, so ``amount=0`` returns an exact copy (identical logits). The returned model's ``config`` carries the
    new size, so ``save_student`` → ``Student.from_pretrained`` round-trips it. The input model is not modified.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    if not isinstance(model, StudentModule):
        raise TypeError(
            f"structured pruning supports registered students (subclasses of textdistill.students.StudentModule), "
            f"not {type(model).__name__}"
        )
    with torch.no_grad():
        smaller = model.shrunk(amount)
    logger.info("structured pruning %.0f%%: %s", 100 * amount, getattr(smaller, "config", type(smaller).__name__))
    return smaller
