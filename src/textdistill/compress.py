"""Compress a trained student: prune (unstructured and structured), quantize (int8), export (ONNX).

What each step buys, honestly:

- ``l1_unstructured_prune`` zeroes the smallest weights. The tensors stay dense, so neither the parameter memory
  nor the latency of dense kernels changes; it only pays off with a sparse format or a sparse kernel (and
  compresses better on disk). ``bench`` shows this next to the float model.
- ``structured_prune`` removes whole recurrent units, convolution filters or feed-forward units and returns a
  smaller *dense* model of the same class: fewer parameters and smaller matrix products, so it is faster.
- ``export_onnx`` writes an ONNX graph for ONNX Runtime; ``quantize_onnx_int8`` quantizes it dynamically (int8
  weights, activations quantized at run time): the int8 deployable is that ONNX file. ``int8_check`` measures it
  against the float model by what users see, the agreement of predicted labels, and by the logit error relative
  to the logit scale.

The ``rnn-attention`` student runs its recurrent layers on packed sequences, which do not export to ONNX. It is
exported through ``UnpackedRNNAttention``, which is mathematically identical for right-padded inputs of any
lengths (see its docstring); the remaining difference is float rounding (about 1e-6 on the logits).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from textdistill.config import DistillConfig
from textdistill.metrics import agreement
from textdistill.students import valid_positions
from textdistill.students.cnn import CNNStudent
from textdistill.students.hub import Student, load_tokenizer, predict_logits, read_student_config
from textdistill.students.rnn_attention import RNNAttentionStudent
from textdistill.students.transformer import TransformerStudent
from textdistill.train import DistillData, TrainResult, train_student

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
ONNX_NAME = "model.onnx"
ONNX_INT8_NAME = "model.int8.onnx"
ONNX_PARITY_TOLERANCE = 1e-4  # max |logit difference| of a float ONNX export vs PyTorch (float32 rounding)

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


def refresh_rnn_weights(model: nn.Module) -> None:
    """Point every LSTM/GRU's ``_flat_weights`` at its current weight tensors (and re-flatten them on GPU).

    ``nn.RNNBase`` runs on the list ``_flat_weights``, not on its attributes. ``prune.remove`` re-registers the
    pruned Parameter through ``setattr`` (which ``RNNBase.__setattr__`` mirrors into that list in current
    PyTorch); rebuilding the list here makes the pruned weights take effect whatever the version.
    """
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            module._flat_weights = [getattr(module, name, None) for name in module._flat_weights_names]
            module.flatten_parameters()


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


def _keep_count(size: int, amount: float) -> int:
    return max(1, int(round(size * (1.0 - amount))))


def _top_indices(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` highest scores, in ascending index order (so ``count == len`` is the identity)."""
    return torch.topk(scores, count).indices.sort().values


def _gate_rows(units: torch.Tensor, hidden: int, gates: int) -> torch.Tensor:
    """Row indices of ``units`` in each of the ``gates`` stacked blocks of ``hidden`` rows (LSTM: 4, GRU: 3)."""
    return torch.cat([gate * hidden + units for gate in range(gates)])


def _rnn_unit_importance(weight_ih: torch.Tensor, weight_hh: torch.Tensor, hidden: int) -> torch.Tensor:
    """L2 norm of each hidden unit's incoming weights over all gates: (gates·H, in) and (gates·H, H) → (H,)."""
    gates = weight_ih.shape[0] // hidden
    squares = weight_ih.reshape(gates, hidden, -1).pow(2).sum(dim=(0, 2))
    return (squares + weight_hh.reshape(gates, hidden, -1).pow(2).sum(dim=(0, 2))).sqrt()


def _shrink_rnn_attention(model: RNNAttentionStudent, amount: float) -> tuple[Any, dict[str, torch.Tensor]]:
    """Keep the most important hidden units of every (layer, direction) and slice every weight that touches them.

    The units of each direction of each layer are ranked on their own (unit ``i`` of the forward direction is
    unrelated to unit ``i`` of the backward one). Gate rows (4 for LSTM, 3 for GRU) of ``weight_ih``/``weight_hh``
    and both biases, the recurrent columns of ``weight_hh``, the next layer's input columns, the attention
    projection's and the classifier's input columns are all sliced consistently.
    """
    config, state = model.config, dict(model.state_dict())
    hidden, keep = config.hidden_size, _keep_count(config.hidden_size, amount)
    suffixes = ["", "_reverse"] if config.bidirectional else [""]
    previous: torch.Tensor | None = None  # kept feature indices of the previous layer's output
    for layer in range(config.num_layers):
        kept = []
        for direction, suffix in enumerate(suffixes):
            names = {kind: f"rnn.{kind}_l{layer}{suffix}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            weight_ih, weight_hh = state[names["weight_ih"]], state[names["weight_hh"]]
            units = _top_indices(_rnn_unit_importance(weight_ih, weight_hh, hidden), keep)
            rows = _gate_rows(units, hidden, weight_ih.shape[0] // hidden)
            state[names["weight_ih"]] = weight_ih[rows] if previous is None else weight_ih[rows][:, previous]
            state[names["weight_hh"]] = weight_hh[rows][:, units]
            state[names["bias_ih"]], state[names["bias_hh"]] = (
                state[names["bias_ih"]][rows],
                state[names["bias_hh"]][rows],
            )
            kept.append(units + direction * hidden)
        previous = torch.cat(kept)
    assert previous is not None  # num_layers >= 1
    for name in ("attention.proj.weight", "classifier.weight"):
        state[name] = state[name][:, previous]
    return dataclasses.replace(config, hidden_size=keep), state


def _shrink_cnn(model: CNNStudent, amount: float) -> tuple[Any, dict[str, torch.Tensor]]:
    """Keep the filters with the largest L1 norm in every convolution, and the matching classifier columns."""
    config, state = model.config, dict(model.state_dict())
    filters, keep = config.num_filters, _keep_count(config.num_filters, amount)
    columns = []
    for index in range(len(config.kernel_sizes)):
        weight = state[f"convs.{index}.weight"]  # (filters, embedding_dim, width)
        kept = _top_indices(weight.abs().sum(dim=(1, 2)), keep)
        state[f"convs.{index}.weight"], state[f"convs.{index}.bias"] = weight[kept], state[f"convs.{index}.bias"][kept]
        columns.append(kept + index * filters)
    state["classifier.weight"] = state["classifier.weight"][:, torch.cat(columns)]
    return dataclasses.replace(config, num_filters=keep), state


def _shrink_transformer(model: TransformerStudent, amount: float) -> tuple[Any, dict[str, torch.Tensor]]:
    """Keep the feed-forward units with the largest L2 norm (linear1 row + bias, linear2 column) in every layer.

    Attention heads are kept: at the tiny sizes of these students the feed-forward block holds most of the
    encoder's weights.
    """
    config, state = model.config, dict(model.state_dict())
    keep = _keep_count(config.ff_dim, amount)
    for layer in range(config.num_layers):
        prefix = f"encoder.layers.{layer}."
        up, up_bias, down = (state[prefix + n] for n in ("linear1.weight", "linear1.bias", "linear2.weight"))
        kept = _top_indices((up.pow(2).sum(dim=1) + up_bias.pow(2) + down.pow(2).sum(dim=0)).sqrt(), keep)
        state[prefix + "linear1.weight"], state[prefix + "linear1.bias"] = up[kept], up_bias[kept]
        state[prefix + "linear2.weight"] = down[:, kept]
    return dataclasses.replace(config, ff_dim=keep), state


def _rebuild(model: nn.Module, config: Any, state: dict[str, torch.Tensor]) -> nn.Module:
    """A new model of ``type(model)`` built from ``config`` and loaded (strictly) with ``state``."""
    embedding, classifier = model.embedding, model.classifier
    assert isinstance(embedding, nn.Embedding) and isinstance(classifier, nn.Linear)
    pad_id = embedding.padding_idx if embedding.padding_idx is not None else 0
    smaller = type(model)(
        config, vocab_size=embedding.num_embeddings, num_labels=classifier.out_features, pad_id=pad_id
    )
    smaller.load_state_dict({name: tensor.clone() for name, tensor in state.items()})
    return smaller.train(model.training)


def structured_prune(model: nn.Module, amount: float) -> nn.Module:
    """A NEW, smaller dense model of the same class with ``amount`` of its units removed by importance.

    - ``rnn-attention``: LSTM/GRU hidden units (``hidden_size``), ranked per layer and direction by the L2 norm
      of their incoming gate weights;
    - ``cnn``: convolution filters (``num_filters``, per width), ranked by L1 norm;
    - ``transformer``: feed-forward units (``ff_dim``) of every layer, ranked by L2 norm.

    Kept units keep their order, so ``amount=0`` returns an exact copy (identical logits). The returned model's
    ``config`` carries the new size, so ``save_student`` → ``Student.from_pretrained`` round-trips it. The input
    model is not modified.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    if isinstance(model, RNNAttentionStudent):
        config, state = _shrink_rnn_attention(model, amount)
    elif isinstance(model, CNNStudent):
        config, state = _shrink_cnn(model, amount)
    elif isinstance(model, TransformerStudent):
        config, state = _shrink_transformer(model, amount)
    else:
        raise TypeError(
            f"structured pruning supports the rnn-attention, cnn and transformer students, not {type(model)}"
        )
    with torch.no_grad():
        smaller = _rebuild(model, config, state)
    logger.info("structured pruning %.0f%%: %s", 100 * amount, config)
    return smaller


def compare_logits(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """How a compressed model's logits compare with the original's, both (n, num_labels) on the same rows.

    ``agreement`` (same argmax), ``max_abs_diff`` of the logits, ``relative_max_abs_diff`` (that over the largest
    |reference logit|: quantization error scales with the logits, so this is the figure to bound) and, with
    ``labels`` (n,) (``-1`` = unlabelled rows, ignored), ``accuracy_before``/``accuracy_after`` and their
    ``accuracy_change``.
    """
    reference, candidate = np.asarray(reference), np.asarray(candidate)
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
    max_abs_diff = float(np.abs(reference - candidate).max())
    scale = float(np.abs(reference).max())
    result = {
        "agreement": agreement(reference, candidate),
        "max_abs_diff": max_abs_diff,
        "relative_max_abs_diff": max_abs_diff / scale if scale > 0 else float(max_abs_diff > 0),
    }
    if labels is not None and (np.asarray(labels) >= 0).any():
        labelled = np.asarray(labels) >= 0
        before = float((reference[labelled].argmax(1) == labels[labelled]).mean())
        after = float((candidate[labelled].argmax(1) == labels[labelled]).mean())
        result |= {"accuracy_before": before, "accuracy_after": after, "accuracy_change": after - before}
    return result


# ---------------------------------------------------------------------------------------------------
# ONNX export


def _reversal_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, T) time index that reverses each row's first ``lengths[b]`` steps and leaves padding in place."""
    positions = torch.arange(width, device=lengths.device).unsqueeze(0)
    limits = lengths.unsqueeze(1)
    return torch.where(positions < limits, limits - 1 - positions, positions)


def _reverse_within_lengths(sequences: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """sequences (B, T, F) gathered along time by ``index`` (B, T); applying it twice is the identity."""
    return torch.gather(sequences, 1, index.unsqueeze(-1).expand_as(sequences))


def _single_direction(rnn: nn.RNNBase, layer: int, suffix: str) -> nn.RNNBase:
    """A one-layer, one-direction copy of layer ``layer`` / direction ``suffix`` of ``rnn`` (weights shared)."""
    weight_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
    cell = nn.LSTM if isinstance(rnn, nn.LSTM) else nn.GRU
    part = cell(weight_ih.shape[1], rnn.hidden_size, num_layers=1, bias=rnn.bias, batch_first=True)
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if rnn.bias else ("weight_ih", "weight_hh"):
        setattr(part, f"{kind}_l0", getattr(rnn, f"{kind}_l{layer}{suffix}"))
    refresh_rnn_weights(part)
    return part


class UnpackedRNNAttention(nn.Module):
    """Inference-only twin of an ``RNNAttentionStudent`` that needs no packed sequences (for ONNX export).

    Each layer and direction runs as its own one-layer unidirectional RNN on the padded batch:

    - forward direction: on right-padded rows the state at a real step ``t`` depends only on steps ``≤ t``, all
      real, so it equals the packed result; outputs at padded steps are discarded;
    - backward direction: each row's real steps are reversed in place (``t → len − 1 − t``, padding left where
      it is), run forward, and reversed back, which is exactly the packed backward pass;
    - padded steps are zeroed before attention, as ``pad_packed_sequence`` does.

    So the logits equal the student's for any right-padded batch, whatever its lengths, up to float rounding.
    Dropout is left out (eval mode). An all-padding row is treated like the student does (length clamped to 1).
    """

    def __init__(self, student: RNNAttentionStudent) -> None:
        super().__init__()
        rnn = student.rnn
        self.embedding, self.attention, self.classifier = student.embedding, student.attention, student.classifier
        self.forward_layers = nn.ModuleList(_single_direction(rnn, layer, "") for layer in range(rnn.num_layers))
        backward = range(rnn.num_layers) if rnn.bidirectional else range(0)
        self.backward_layers = nn.ModuleList(_single_direction(rnn, layer, "_reverse") for layer in backward)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels)."""
        mask, lengths = valid_positions(attention_mask)
        reversal = _reversal_index(lengths, input_ids.shape[1])
        hidden = self.embedding(input_ids)
        for layer, forward_rnn in enumerate(self.forward_layers):
            outputs = [forward_rnn(hidden)[0]]
            if len(self.backward_layers):
                backward = self.backward_layers[layer](_reverse_within_lengths(hidden, reversal))[0]
                outputs.append(_reverse_within_lengths(backward, reversal))
            hidden = torch.cat(outputs, dim=-1)
        hidden = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        context, _ = self.attention(hidden, mask)
        return self.classifier(context)


def exportable(model: nn.Module) -> nn.Module:
    """The module to export for ``model``: ``UnpackedRNNAttention`` for rnn-attention, else the model itself."""
    return UnpackedRNNAttention(model).eval() if isinstance(model, RNNAttentionStudent) else model.eval()


def _example_inputs(max_length: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (2, T) right-padded example batch with T = min(max_length, 16) ≥ 2; the second row is half padding."""
    width = max(2, min(max_length, 16))
    input_ids = torch.arange(width, dtype=torch.long).repeat(2, 1) % 7 + 5
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, width // 2 + 1 :] = 0
    input_ids[1, width // 2 + 1 :] = pad_id
    return input_ids, attention_mask


def _default_exporter(model: nn.Module) -> str:
    """TorchScript tracing for the students it handles (fast); torch.export for the Transformer.

    The tracer bakes the sequence length into ``nn.MultiheadAttention``'s reshapes, so the Transformer student
    needs the torch.export-based exporter (which needs ``onnxscript``).
    """
    return "dynamo" if isinstance(model, TransformerStudent) else "torchscript"


def _run_exporter(
    module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, opset: int, exporter: str, max_length: int
) -> None:
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


def export_onnx(
    model: nn.Module, path: str | Path, opset: int = 17, max_length: int = 512, *, exporter: str | None = None
) -> Path:
    """Export a student to a single ONNX file with dynamic batch and sequence axes; returns the path.

    Inputs ``input_ids`` and ``attention_mask`` (batch, sequence) int64, right-padded; output ``logits``
    (batch, num_labels) float32. ``exporter`` is ``"torchscript"`` (the legacy tracer) or ``"dynamo"``
    (torch.export; needs ``onnxscript``); by default the tracer, except for the Transformer student (see
    ``_default_exporter``). ``max_length`` bounds the sequence axis for torch.export and is stored in the
    file's metadata with the exporter. The rnn-attention student is exported as ``UnpackedRNNAttention``:
    exact for right-padded batches of any lengths up to float rounding (``onnx_parity`` measures it).
    """
    import onnx

    exporter = exporter or _default_exporter(model)
    if exporter not in ("torchscript", "dynamo"):
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    embedding = model.embedding
    pad_id = getattr(embedding, "padding_idx", None) or 0
    was_training = model.training
    with torch.no_grad():
        _run_exporter(exportable(model), _example_inputs(max_length, pad_id), path, opset, exporter, max_length)
    model.train(was_training)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    meta = {"textdistill_student": type(model).__name__, "exporter": exporter, "max_length": str(max_length)}
    onnx.helper.set_model_props(graph, meta)
    onnx.save(graph, str(path))
    logger.info("exported %s to %s (%s exporter, opset %d)", type(model).__name__, path, exporter, opset)
    return path


def quantize_onnx_int8(path: str | Path, out_path: str | Path) -> Path:
    """Dynamic int8 quantization of an ONNX file with ``onnxruntime.quantization.quantize_dynamic``; returns it.

    Weights of MatMul/Gemm, Conv, LSTM and Gather (the embedding table) become int8; activations are quantized
    at run time. ONNX Runtime has no dynamically quantized GRU, so a GRU student's recurrent layer stays float.
    Weights get one scale per output channel and 7 bits (``reduce_range``). 7 bits because on x86 CPUs without
    VNNI, ONNX Runtime's uint8 × int8 kernels add products in pairs into int16 (``vpmaddubsw``), which saturates
    with full-range weights (255 · 127 · 2 > 32767): that moved the test CNN's logits by 12% of their scale on
    such a machine; with 7-bit weights no pair can overflow, on any CPU. Expect logits to move by 1–2% of their
    scale and a few near-tie predictions to flip: measure it with ``int8_check``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        model_input=str(path),
        model_output=str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=True,  # a 6-layer BERT's int8 logit error fell 3.5-fold (students: about the same)
        reduce_range=True,
    )
    return out_path


class OnnxModule(nn.Module):
    """An ONNX file run with ONNX Runtime behind the student contract ``forward(input_ids, attention_mask)``.

    So ``hub.predict_logits``, ``Student`` and the benchmarks use it like any student. ``num_threads`` sets
    ``intra_op_num_threads`` (0: ONNX Runtime's default, all cores); ``providers`` defaults to CPU.
    """

    def __init__(self, path: str | Path, num_threads: int = 0, providers: list[str] | None = None) -> None:
        super().__init__()
        import onnxruntime

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


def int8_check(
    model: nn.Module, int8_path: str | Path, sequences: list[np.ndarray], pad_id: int, batch_size: int = 32
) -> dict[str, float]:
    """``compare_logits`` of the float ``model`` (PyTorch) and the int8 ONNX file on the same ``sequences``.

    ``agreement`` is the share of sequences whose predicted label is unchanged: what a user of the int8 model
    sees. Run it on held-out data, on the machine that will serve the file (int8 kernels differ by CPU).
    """
    reference = predict_logits(model, sequences, pad_id, batch_size)
    quantized = predict_logits(OnnxModule(int8_path, num_threads=1), sequences, pad_id, batch_size)
    return compare_logits(reference, quantized)


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
            example = _example_inputs(max_length, pad_id)
            _run_exporter(LogitsOnly(classifier).eval(), example, float_path, opset, "dynamo", max_length)
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
        from transformers.modeling_outputs import SequenceClassifierOutput

        return SequenceClassifierOutput(logits=super().forward(input_ids, attention_mask))


def onnx_initializers(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, array)`` of every weight stored in an ONNX file (its graph initializers)."""
    import onnx
    from onnx import numpy_helper

    for initializer in onnx.load(str(path)).graph.initializer:
        yield initializer.name, numpy_helper.to_array(initializer)
