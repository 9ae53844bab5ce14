"""The flagship student: embedding → (Bi)LSTM/GRU → additive attention over time steps → linear.

The attention scores each hidden state with a small MLP (``v · tanh(W h_t + b)``, Yang et al. 2016,
"Hierarchical Attention Networks") and takes a masked softmax over the real time steps. The recurrent layer
runs on a packed sequence, so padding never enters it.

The "original method" setting is ``embedding_dim=100, hidden_size=256, num_layers=2, bidirectional=False``:
with the 30,522-token BERT vocabulary that is about 3.05M embedding + 0.89M LSTM parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textdistill.config import ConfigError
from textdistill.students import register, valid_positions

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNAttentionConfig:
    """Architecture of ``rnn-attention``; ``hidden_size`` is per direction."""

    embedding_dim: int = 300
    hidden_size: int = 256
    num_layers: int = 2
    bidirectional: bool = True
    cell: str = "lstm"  # lstm | gru
    attention_dim: int = 128
    dropout: float = 0.3  # between recurrent layers and before the classifier

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "hidden_size", "num_layers", "attention_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"student.arch.{name} must be at least 1, got {getattr(self, name)}")
        if self.cell not in CELLS:
            raise ConfigError(f"student.arch.cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"student.arch.dropout must be in [0, 1), got {self.dropout}")


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
class RNNAttentionStudent(nn.Module):
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
