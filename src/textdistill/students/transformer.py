"""A tiny pre-norm Transformer encoder (Vaswani et al. 2017; pre-norm as in Xiong et al. 2020) with mean pooling.

Token embeddings (projected to ``d_model`` when ``embedding_dim`` differs, e.g. 300-d Word2Vec vectors) plus
learned positional embeddings feed ``nn.TransformerEncoder``; padded keys are excluded with
``src_key_padding_mask`` and the output is the mean of the real positions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from textdistill.config import ConfigError
from textdistill.students.registry import StudentModule, check_arch, kept_count, register, top_indices, valid_positions


@dataclass
class TransformerConfig:
    """Architecture of ``transformer``."""

    embedding_dim: int = 256  # projected to d_model when different
    d_model: int = 256  # hidden size of the encoder layers
    num_layers: int = 2  # encoder layers
    num_heads: int = 4  # attention heads (divide d_model)
    ff_dim: int = 512  # feed-forward units per layer
    dropout: float = 0.1  # in the layers, on the inputs and before the classifier
    max_positions: int = 512  # learned positions: the longest input

    def __post_init__(self) -> None:
        check_arch(self, ("embedding_dim", "d_model", "num_layers", "num_heads", "ff_dim", "max_positions"))
        if self.d_model % self.num_heads:
            raise ConfigError(
                f"student.arch.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )


@register("transformer")
class TransformerStudent(StudentModule):
    """Embedding (+ projection) + positions → ``encoder`` → final norm → masked mean → dropout → ``classifier``."""

    config_class = TransformerConfig
    # The tracer bakes the sequence length into nn.MultiheadAttention's reshapes: torch.export handles it.
    onnx_exporter = "dynamo"

    def __init__(self, config: TransformerConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        same = config.embedding_dim == config.d_model
        self.projection: nn.Module = nn.Identity() if same else nn.Linear(config.embedding_dim, config.d_model)
        self.positions = nn.Embedding(config.max_positions, config.d_model)
        self.input_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.num_heads,
            dim_feedforward=config.ff_dim,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        norm = nn.LayerNorm(config.d_model)
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, norm=norm, enable_nested_tensor=False)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels); T ≤ max_positions."""
        width = input_ids.shape[1]
        if width > self.config.max_positions:
            raise ValueError(f"sequence width {width} exceeds max_positions={self.config.max_positions}")
        mask, lengths = valid_positions(attention_mask)
        positions = torch.arange(width, device=input_ids.device)
        hidden = self.projection(self.embedding(input_ids)) + self.positions(positions).unsqueeze(0)
        hidden = self.encoder(self.input_dropout(hidden), src_key_padding_mask=~mask)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / lengths.unsqueeze(-1).to(hidden.dtype)
        return self.classifier(self.dropout(pooled))

    def shrunk(self, amount: float) -> nn.Module:
        """Keep the feed-forward units with the largest L2 norm (linear1 row + bias, linear2 column) in every layer.

        Attention heads are kept: at the tiny sizes of these students the feed-forward block holds most of the
        encoder's weights.
        """
        state, keep = dict(self.state_dict()), kept_count(self.config.ff_dim, amount)
        for layer in range(self.config.num_layers):
            prefix = f"encoder.layers.{layer}."
            up, up_bias, down = (state[prefix + n] for n in ("linear1.weight", "linear1.bias", "linear2.weight"))
            kept = top_indices((up.pow(2).sum(dim=1) + up_bias.pow(2) + down.pow(2).sum(dim=0)).sqrt(), keep)
            state[prefix + "linear1.weight"], state[prefix + "linear1.bias"] = up[kept], up_bias[kept]
            state[prefix + "linear2.weight"] = down[:, kept]
        return self.rebuilt(dataclasses.replace(self.config, ff_dim=keep), state)
