"""The flagship student: embedding → (Bi)LSTM/GRU → additive attention over time steps → linear.

The attention scores each hidden state with a small MLP (``v · tanh(W h_t + b)``, Yang et al. 2016,
"Hierarchical Attention Networks") and takes a masked softmax over the real time steps. The recurrent layer
runs on a packed sequence, so padding never enters it. Packed sequences do not export to ONNX: the export form
is ``UnpackedRNNAttention``, mathematically identical for right-padded inputs of any lengths (see its
docstring); the remaining difference is float rounding (about 1e-6 on the logits).

The "original method" setting is ``embedding_dim=100, hidden_size=256, num_layers=2, bidirectional=False``:
with the 30,522-token BERT vocabulary that is about 3.05M embedding + 0.89M LSTM parameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textdistill.config import ConfigError
from textdistill.students.registry import (
    StudentModule,
    check_arch,
    kept_count,
    refresh_rnn_weights,
    register,
    top_indices,
    valid_positions,
)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNAttentionConfig:
    """Architecture of ``rnn-attention``; ``hidden_size`` is per direction."""

    embedding_dim: int = 300  # token embedding size (= embeddings.vector_size with Word2Vec)
    hidden_size: int = 256  # recurrent units per direction
    num_layers: int = 2  # stacked recurrent layers
    bidirectional: bool = True  # read both directions
    cell: str = "lstm"  # lstm or gru
    attention_dim: int = 128  # additive attention pooling size
    dropout: float = 0.3  # between recurrent layers and before the classifier

    def __post_init__(self) -> None:
        check_arch(self, ("embedding_dim", "hidden_size", "num_layers", "attention_dim"))
        if self.cell not in CELLS:
            raise ConfigError(f"student.arch.cell must be one of {sorted(CELLS)}, got {self.cell!r}")


class AdditiveAttention(nn.Module):
    """Masked additive attention pooling: ``a = softmax_t(v · tanh(W h_t + b))``, ``context = Σ_t a_t h_t``."""

    def __init__(self, input_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, T, H) float, mask (B, T) bool → (context (B, H), weights (B, T)); masked weights are 0."""
        scores = self.score(torch.tanh(self.proj(hidden))).squeeze(-1)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(weights.unsqueeze(1), hidden).squeeze(1), weights


@register("rnn-attention")
class RNNAttentionStudent(StudentModule):
    """Embedding → packed recurrent layers (``rnn``) → ``attention`` → dropout → ``classifier``."""

    config_class = RNNAttentionConfig

    def __init__(self, config: RNNAttentionConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        self.rnn = CELLS[config.cell](
            input_size=config.embedding_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        output_dim = config.hidden_size * (2 if config.bidirectional else 1)
        self.attention = AdditiveAttention(output_dim, config.attention_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(output_dim, num_labels)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (B, T, H·directions), zero at padded steps, and the validity mask (B, T) bool."""
        mask, lengths = valid_positions(attention_mask)
        packed = pack_padded_sequence(self.embedding(input_ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.rnn(packed)
        hidden, _ = pad_packed_sequence(output, batch_first=True, total_length=input_ids.shape[1])
        return hidden, mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels)."""
        hidden, mask = self.encode(input_ids, attention_mask)
        context, _ = self.attention(hidden, mask)
        return self.classifier(self.dropout(context))

    def exportable(self) -> nn.Module:
        """``UnpackedRNNAttention`` sharing this student's weights: the same logits without packed sequences."""
        return UnpackedRNNAttention(self)

    def shrunk(self, amount: float) -> nn.Module:
        """Keep the most important hidden units of every (layer, direction) and slice every weight that touches them.

        Units are ranked by the L2 norm of their incoming gate weights, those of each direction of each layer on
        their own (unit ``i`` of the forward direction is unrelated to unit ``i`` of the backward one). Gate rows
        (4 for LSTM, 3 for GRU) of ``weight_ih``/``weight_hh`` and both biases, the recurrent columns of
        ``weight_hh``, the next layer's input columns, the attention projection's and the classifier's input
        columns are all sliced consistently.
        """
        config, state = self.config, dict(self.state_dict())
        keep = kept_count(config.hidden_size, amount)
        previous: torch.Tensor | None = None  # kept feature indices of the previous layer's output
        for layer in range(config.num_layers):
            kept = [
                _shrink_direction(state, f"l{layer}{suffix}", config.hidden_size, keep, previous)
                + direction * config.hidden_size
                for direction, suffix in enumerate(["", "_reverse"] if config.bidirectional else [""])
            ]
            previous = torch.cat(kept)
        assert previous is not None  # num_layers >= 1
        for name in ("attention.proj.weight", "classifier.weight"):
            state[name] = state[name][:, previous]
        return self.rebuilt(dataclasses.replace(config, hidden_size=keep), state)


def _gate_rows(units: torch.Tensor, hidden: int, gates: int) -> torch.Tensor:
    """Row indices of ``units`` in each of the ``gates`` stacked blocks of ``hidden`` rows (LSTM: 4, GRU: 3)."""
    return torch.cat([gate * hidden + units for gate in range(gates)])


def _rnn_unit_importance(weight_ih: torch.Tensor, weight_hh: torch.Tensor, hidden: int) -> torch.Tensor:
    """L2 norm of each hidden unit's incoming weights over all gates: (gates·H, in) and (gates·H, H) → (H,)."""
    gates = weight_ih.shape[0] // hidden
    squares = weight_ih.reshape(gates, hidden, -1).pow(2).sum(dim=(0, 2))
    return (squares + weight_hh.reshape(gates, hidden, -1).pow(2).sum(dim=(0, 2))).sqrt()


def _shrink_direction(
    state: dict[str, torch.Tensor], layer: str, hidden: int, keep: int, previous: torch.Tensor | None
) -> torch.Tensor:
    """Slice one (layer, direction) of ``state`` in place to its ``keep`` most important units; returns them.

    ``layer`` is the suffix of its tensor names (``l0``, ``l1_reverse``); ``previous`` are the kept input
    features (the previous layer's kept outputs), None for the first layer.
    """
    names = {kind: f"rnn.{kind}_{layer}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    weight_ih, weight_hh = state[names["weight_ih"]], state[names["weight_hh"]]
    units = top_indices(_rnn_unit_importance(weight_ih, weight_hh, hidden), keep)
    rows = _gate_rows(units, hidden, weight_ih.shape[0] // hidden)
    state[names["weight_ih"]] = weight_ih[rows] if previous is None else weight_ih[rows][:, previous]
    state[names["weight_hh"]] = weight_hh[rows][:, units]
    state[names["bias_ih"]], state[names["bias_hh"]] = state[names["bias_ih"]][rows], state[names["bias_hh"]][rows]
    return units


# ---------------------------------------------------------------------------------------------------
# The export form: no packed sequences


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
