"""Kim (2014), "Convolutional Neural Networks for Sentence Classification": parallel convolutions, max over time.

Embeddings at padded positions are zeroed and each convolution is "wide" (``k − 1`` zeros on both sides), so
every window that touches a real token sees exactly what zero-padding of the bare sequence would give it, and
windows lying entirely in padding are masked to −inf before the max. The result does not depend on how much
padding a batch has, and a sequence shorter than the widest filter still has valid windows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from textdistill.config import ConfigError
from textdistill.students.registry import StudentModule, check_arch, kept_count, register, top_indices, valid_positions


@dataclass
class CNNConfig:
    """Architecture of ``cnn``: ``num_filters`` feature maps for each width in ``kernel_sizes``."""

    embedding_dim: int = 300  # token embedding size (= embeddings.vector_size with Word2Vec)
    num_filters: int = 100  # feature maps per convolution width
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])  # convolution widths in tokens
    dropout: float = 0.5  # before the classifier

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.num_filters < 1:
            raise ConfigError("student.arch.embedding_dim and student.arch.num_filters must be at least 1")
        if not self.kernel_sizes or any(k < 1 for k in self.kernel_sizes):
            raise ConfigError(f"student.arch.kernel_sizes must be positive widths, got {self.kernel_sizes}")
        check_arch(self)


@register("cnn")
class CNNStudent(StudentModule):
    """Embedding → ``convs`` (one Conv1d per width) → ReLU → masked max over time → dropout → ``classifier``."""

    config_class = CNNConfig

    def __init__(self, config: CNNConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_dim, config.num_filters, kernel_size=k, padding=k - 1)
            for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.num_filters * len(config.kernel_sizes), num_labels)

    @staticmethod
    def _pool(features: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
        """Max over the windows that touch a real token: features (B, F, T + k − 1) → (B, F)."""
        positions = torch.arange(features.shape[-1], device=features.device)
        valid = positions.unsqueeze(0) < (lengths + width - 1).unsqueeze(1)
        return features.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels)."""
        mask, lengths = valid_positions(attention_mask)
        embedded = self.embedding(input_ids) * mask.unsqueeze(-1)
        embedded = embedded.transpose(1, 2)  # (B, E, T)
        pooled = [
            self._pool(torch.relu(conv(embedded)), lengths, width)
            for conv, width in zip(self.convs, self.config.kernel_sizes, strict=True)
        ]
        return self.classifier(self.dropout(torch.cat(pooled, dim=-1)))

    def shrunk(self, amount: float) -> nn.Module:
        """Keep the filters with the largest L1 norm in every convolution, and the matching classifier columns."""
        filters, keep = self.config.num_filters, kept_count(self.config.num_filters, amount)
        state, columns = dict(self.state_dict()), []
        for index in range(len(self.config.kernel_sizes)):
            weight = state[f"convs.{index}.weight"]  # (filters, embedding_dim, width)
            kept = top_indices(weight.abs().sum(dim=(1, 2)), keep)
            state[f"convs.{index}.weight"], state[f"convs.{index}.bias"] = (
                weight[kept],
                state[f"convs.{index}.bias"][kept],
            )
            columns.append(kept + index * filters)
        state["classifier.weight"] = state["classifier.weight"][:, torch.cat(columns)]
        return self.rebuilt(dataclasses.replace(self.config, num_filters=keep), state)
