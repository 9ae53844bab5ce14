"""Kim (2014), "Convolutional Neural Networks for Sentence Classification": parallel convolutions, max over time.

Embeddings at padded positions are zeroed and each convolution is "wide" (``k − 1`` zeros on both sides), so
every window that touches a real token sees exactly what zero-padding of the bare sequence would give it, and
windows lying entirely in padding are masked to −inf before the max. The result does not depend on how much
padding a batch has, and a sequence shorter than the widest filter still has valid windows.

``pooling: max-mean`` adds the mean over the same windows beside the max: the max says whether a pattern occurs
anywhere, the mean how much of the text it covers (one "great" in a long pan reads like ten under max alone).

``chunk: N`` (with ``chunk_stride``) reads like a teacher that averages its logits over windows of a long text
(``teacher.inference: chunks``): the max is taken within each chunk of ``N`` positions, placed as the teacher
places its windows, then averaged over the chunks. As the classifier is linear, this is the mean of per-chunk
logits (dropout aside); a text no longer than one chunk reads exactly as under the plain max.
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
    chunk: int = 0  # > 0: the max within chunks of this many positions, averaged over chunks (0: whole text)
    chunk_stride: int = 0  # positions between chunk starts (0: the chunk, no overlap)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.num_filters < 1:
            raise ConfigError("student.arch.embedding_dim and student.arch.num_filters must be at least 1")
        if not self.kernel_sizes or any(k < 1 for k in self.kernel_sizes):
            raise ConfigError(f"student.arch.kernel_sizes must be positive widths, got {self.kernel_sizes}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"student.arch.pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.chunk < 0 or not 0 <= self.chunk_stride <= self.chunk:
            raise ConfigError(
                "student.arch.chunk must be >= 0 and student.arch.chunk_stride in [0, chunk], "
                f"got {self.chunk} and {self.chunk_stride}"
            )
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
        maxima = (
            self._chunked_max(features, positions, valid, windows)
            if self.config.chunk
            else features.masked_fill(~valid, float("-inf")).amax(dim=-1)
        )
        if self.config.pooling == "max":
            return maxima
        means = features.masked_fill(~valid, 0.0).sum(dim=-1) / windows.unsqueeze(1).to(features.dtype)
        return torch.cat([maxima, means], dim=-1)

    def _chunked_max(
        self, features: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, ends: torch.Tensor
    ) -> torch.Tensor:
        """The max within each chunk, averaged over the chunks: features (B, F, P), positions (P,), valid (B, 1, P)
        bool, ends (B,) valid positions per row → (B, F). Chunks as the teacher's (``tokens.window_starts``): every
        ``chunk_stride`` positions from 0 while a chunk would end before the text does, then one chunk ending at
        its end."""
        size, stride = self.config.chunk, self.config.chunk_stride or self.config.chunk
        last_start = (ends - size).clamp(min=0).unsqueeze(1)  # (B, 1): the chunk that ends at the text's end
        last = valid & (positions >= last_start).unsqueeze(1)  # (B, 1, P)
        last_max = features.masked_fill(~last, float("-inf")).amax(dim=-1)  # (B, F)
        # max_pool1d rather than Python arithmetic on the length, so the ONNX export keeps the sequence axis dynamic;
        # padding by one chunk leaves every start below the last chunk's (those used) on the grid
        grid_max = nn.functional.max_pool1d(nn.functional.pad(features, (0, size)), size, stride)  # (B, F, W)
        starts = torch.arange(grid_max.shape[-1], device=features.device) * stride
        on_grid = (starts.unsqueeze(0) < last_start).unsqueeze(1)  # (B, 1, W): each such chunk lies in the text
        total = grid_max.masked_fill(~on_grid, 0.0).sum(dim=-1) + last_max
        return total / (on_grid.sum(dim=-1) + 1)

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
