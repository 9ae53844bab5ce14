"""The one batched inference loop: logits of any classifier on already-wrapped token id sequences."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from textdistill.tokens import iterate_batches, length_bucketed_batches


def predict_logits(
    model: nn.Module, sequences: list[np.ndarray], pad_id: int, batch_size: int = 256, desc: str | None = None
) -> np.ndarray:
    """Logits (n, num_labels) float32 in the order of ``sequences``, for a student, an ONNX module or a Hugging Face
    classifier (its ``.logits``), on the model's device.

    Runs in eval mode under ``torch.inference_mode`` with length-sorted batches (less padding); the model's training
    mode is restored afterwards. ``desc`` shows a progress bar.
    """
    if not sequences:
        return np.zeros((0, getattr(getattr(model, "classifier", None), "out_features", 0)), dtype=np.float32)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    batches = length_bucketed_batches(np.array([len(s) for s in sequences]), batch_size, shuffle=False)
    chunks = []
    with torch.inference_mode():
        progress = tqdm(total=len(batches), desc=desc, unit="batch", leave=False, disable=desc is None)
        for _, input_ids, attention_mask in iterate_batches(sequences, batches, pad_id):
            output = model(input_ids.to(device), attention_mask.to(device))
            chunks.append(getattr(output, "logits", output).float().cpu().numpy())
            progress.update(1)
        progress.close()
    model.train(was_training)
    stacked = np.concatenate(chunks)
    out = np.empty_like(stacked)
    out[np.concatenate(batches)] = stacked
    return out


def aggregate_windows(window_logits: np.ndarray, owners: np.ndarray, count: int, how: str = "mean") -> np.ndarray:
    """Per-text logits (count, K) float32 from window logits (n_windows, K) and their owners (n_windows,).

    ``mean``: the mean of a text's window logits; ``mean-probs``: the log of the mean of their softmax
    probabilities (a window that is confident but wrong weighs less than under ``mean``).
    """
    if how not in ("mean", "mean-probs"):
        raise ValueError(f"unknown window aggregate {how!r}; valid: mean, mean-probs")
    values = window_logits.astype(np.float64)
    if how == "mean-probs":
        values = np.exp(values - values.max(axis=1, keepdims=True))
        values /= values.sum(axis=1, keepdims=True)
    sums = np.zeros((count, values.shape[1]))
    np.add.at(sums, owners, values)
    counts = np.bincount(owners, minlength=count)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} text(s) have no window")
    means = sums / counts[:, None]
    return (np.log(means) if how == "mean-probs" else means).astype(np.float32)


class RepresentationTap(nn.Module):
    """A classifier whose output is the representation its output layer reads: the input (batch, hidden) of its
    last ``nn.Linear`` with ``num_labels`` outputs (BERT's pooled [CLS], DistilBERT's pre-classifier features,
    RoBERTa's head's dense output...). ``predict_logits`` on the tap therefore gives (n, hidden) representations
    through the same batched loop as the logits. Because the output layer is linear, the mean of a text's window
    representations is what the mean of its window logits is computed from.
    """

    def __init__(self, model: nn.Module, num_labels: int) -> None:
        super().__init__()
        heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
        if not heads:
            raise ValueError(f"{type(model).__name__} has no nn.Linear output layer with {num_labels} outputs")
        self.model, self.head = model, heads[-1]

    @property
    def hidden_size(self) -> int:
        return self.head.in_features

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask (B, T) → the output layer's input (B, hidden)."""
        with layer_inputs(self.head) as captured:
            self.model(input_ids=input_ids, attention_mask=attention_mask)
        return captured[-1]


@contextmanager
def layer_inputs(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the first input of every call of ``layer`` while the block runs (a forward hook, then removed)."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0]))
    try:
        yield captured
    finally:
        handle.remove()
