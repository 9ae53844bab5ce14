"""``ngram-bag``: a fastText-style student (Joulin et al. 2017) — averaged unigram and hashed bigram embeddings.

The cheapest student by far: no recurrence, no convolution, one table lookup per token and per bigram,
so it can read whole reviews. Unigram rows can start from Word2Vec; bigram rows live in ``bigram_buckets``
extra rows addressed by hashing the id pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from textdistill.config import ConfigError
from textdistill.students.registry import StudentModule, check_arch, register, valid_positions

_HASH_MULTIPLIER = 1_000_003  # odd prime: spreads (left, right) id pairs over the buckets


@dataclass
class NgramBagConfig:
    """Architecture of ``ngram-bag``: embedding size, bigram hash buckets, hidden layer (0: linear) and dropout."""

    embedding_dim: int = 100  # unigram and bigram embedding size
    bigram_buckets: int = 500_000  # hashed bigram rows (0: unigrams only)
    hidden_size: int = 0  # hidden layer before the classifier (0: linear)
    dropout: float = 0.2  # on the averaged embedding
    sparse_gradients: bool = False  # lazy Adam on both tables: only the rows a batch reads move (pays when large)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.bigram_buckets < 0 or self.hidden_size < 0:
            raise ConfigError("student.arch: embedding_dim >= 1, bigram_buckets >= 0 and hidden_size >= 0 required")
        check_arch(self)


@register("ngram-bag")
class NgramBagStudent(StudentModule):
    """Mean of unigram embeddings and hashed-bigram embeddings over real tokens → (hidden) → ``classifier``."""

    config_class = NgramBagConfig

    def __init__(self, config: NgramBagConfig, vocab_size: int, num_labels: int, pad_id: int = 0) -> None:
        super().__init__()
        self.config = config
        sparse = config.sparse_gradients
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id, sparse=sparse)
        self.bigrams = nn.Embedding(max(1, config.bigram_buckets), config.embedding_dim, sparse=sparse)
        nn.init.normal_(self.bigrams.weight, std=0.01)
        self.dropout = nn.Dropout(config.dropout)
        width = config.embedding_dim
        self.hidden = nn.Linear(width, config.hidden_size) if config.hidden_size else None
        self.classifier = nn.Linear(config.hidden_size or width, num_labels)

    def bigram_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Bucket of each adjacent id pair: input_ids (B, T) → (B, T − 1)."""
        left, right = input_ids[:, :-1], input_ids[:, 1:]
        return (left * _HASH_MULTIPLIER + right) % self.config.bigram_buckets

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) int64, attention_mask (B, T) int64 → logits (B, num_labels)."""
        mask, lengths = valid_positions(attention_mask)
        weights = mask.to(self.embedding.weight.dtype)
        total = (self.embedding(input_ids) * weights.unsqueeze(-1)).sum(1)
        count = lengths.clamp(min=1).to(weights.dtype)
        if self.config.bigram_buckets and input_ids.shape[1] > 1:
            pair_weights = (weights[:, :-1] * weights[:, 1:]).unsqueeze(-1)
            total = total + (self.bigrams(self.bigram_ids(input_ids)) * pair_weights).sum(1)
            count = count + (lengths - 1).clamp(min=0).to(weights.dtype)
        features = self.dropout(total / count.unsqueeze(-1))
        if self.hidden is not None:
            features = self.dropout(torch.relu(self.hidden(features)))
        return self.classifier(features)

    def shrunk(self, amount: float) -> nn.Module:
        """Not defined: the weights are embedding tables (every row a token or bigram), with no units to remove."""
        raise NotImplementedError(
            "ngram-bag has no structured pruning: its weights are embedding rows, not units to remove; "
            "use l1_unstructured_prune, or fewer bigram_buckets / a smaller embedding_dim when training"
        )
