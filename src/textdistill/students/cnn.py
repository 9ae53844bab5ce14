"""Kim (2014), "Convolutional Neural Networks for Sentence Classification": parallel convolutions, max over time.

Embeddings at padded positions are zeroed and each convolution is "wide" (``k − 1`` zeros on both sides), so
every window that touches a real token sees exactly what zero-padding of the bare sequence would give it, and
windows lying entirely in padding are masked to −inf before the max. The result does not depend on how much
padding a batch has, and a sequence shorter than the widest filter still has valid windows.

``pooling: max-mean`` adds the mean over the same windows beside the max: the max says whether a pattern occurs
anywhere, the mean how much of the text it covers (one "great" in a long pan reads like ten under max alone).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from textdistill.config import ConfigError
from textdistill.students.registry import StudentModule, check_arch, kept_count, register, top_indices, valid_positions

POOLINGS = {"max": 1, "max-mean": 2}  # pooling → pooled values per feature map


@dataclass
class CNNConfig:
    """Architecture of ``cnn``: ``num_filters`` feature maps for each width in ``kernel_sizes``."""

    embedding_dim: int = 300  # token embedding size (= embeddings.vector_size with Word2Vec)
    num_filters: int = 100  # feature maps per convolution width
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 4, 5])  # convolution widths in tokens
    dropout: float = 0.5  # before the classifier
    pooling: str = "max"  # over time: max, or max-mean (max and mean of every feature map side by side)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.num_filters < 1:
            raise ConfigError("student.arch.embedding_dim and student.arch.num_filters must be at least 1")
        if not self.kernel_sizes or any(k < 1 for k in self.kernel_sizes):
            raise ConfigError(f"student.arch.kernel_sizes must be positive widths, got {self.kernel_sizes}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"student.arch.pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        check_arch(self)


@register("cnn")
class CNNStudent(StudentModule):
    """Embedding → ``convs`` (one Conv1d per width) → ReLU → masked max (and mean) over time → ``classifier``.

    Classifier columns: for each width, its ``num_filters`` maxima, then (max-mean) its ``num_filters`` means.
    """

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
        self.classifier = nn.Linear(self.pooled_per_width * len(config.kernel_sizes), num_labels)

    @property
    def pooled_per_width(self) -> int:
        """Classifier inputs per convolution width: ``num_filters`` × values pooled per feature map."""
        return self.config.num_filters * POOLINGS[self.config.pooling]

    def _pool(self, features: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
        """Max (and mean) over the windows that touch a real token: features (B, F, T + k − 1) → (B, F or 2F)."""
        positions = torch.arange(features.shape[-1], device=features.device)
        windows = lengths + width - 1  # (B,)
        valid = (positions.unsqueeze(0) < windows.unsqueeze(1)).unsqueeze(1)  # (B, 1, T + k − 1)
        maxima = features.masked_fill(~valid, float("-inf")).amax(dim=-1)
        if self.config.pooling == "max":
            return maxima
        means = features.masked_fill(~valid, 0.0).sum(dim=-1) / windows.unsqueeze(1).to(features.dtype)
        return torch.cat([maxima, means], dim=-1)

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
            start = index * self.pooled_per_width  # this width's maxima, then (max-mean) its means
            columns += [kept + start + pooled * filters for pooled in range(POOLINGS[self.config.pooling])]
        state["classifier.weight"] = state["classifier.weight"][:, torch.cat(columns)]
        return self.rebuilt(dataclasses.replace(self.config, num_filters=keep), state)
