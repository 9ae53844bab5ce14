"""Word2Vec (gensim) trained on the tokenised training texts, as an embedding matrix for the student vocab.

Word2Vec sees the same WordPiece tokens the student reads, so its matrix lines up row for row with
the student's embedding table. Rows for tokens Word2Vec never saw (below ``min_count`` or absent
from the training texts) are drawn from N(0, sigma^2), sigma being the standard deviation of the
trained vectors, so that they sit at the same scale; the padding row is zero.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from textdistill.cache import ArtifactCache, atomic_open
from textdistill.config import EmbeddingsConfig
from textdistill.tokens import EncodedTexts

logger = logging.getLogger(__name__)


class TokenSentences:
    """Restartable iterator over token-id strings of one or more encoded splits (gensim iterates it per epoch)."""

    def __init__(self, encoded: list[EncodedTexts]) -> None:
        self.encoded = encoded

    def __iter__(self) -> Iterator[list[str]]:
        for texts in self.encoded:
            for index in range(len(texts)):
                yield texts.sequence(index).astype(str).tolist()


@dataclass
class EmbeddingMatrix:
    """An embedding matrix aligned with the vocabulary, and how much of it Word2Vec actually trained."""

    matrix: np.ndarray  # (vocab_size, vector_size) float32
    trained_rows: np.ndarray  # (vocab_size,) bool
    vocabulary_coverage: float  # share of vocabulary rows with a trained vector
    token_coverage: float  # share of training-token occurrences whose token has a trained vector

    def save(self, path: Path) -> None:
        with atomic_open(path) as handle:
            np.savez(
                handle,
                matrix=self.matrix,
                trained_rows=self.trained_rows,
                coverage=np.array([self.vocabulary_coverage, self.token_coverage]),
            )

    @classmethod
    def load(cls, path: Path) -> EmbeddingMatrix:
        with np.load(path, allow_pickle=False) as stored:
            vocabulary, tokens = stored["coverage"].tolist()
            return cls(stored["matrix"], stored["trained_rows"], vocabulary, tokens)


def train_word2vec(encoded: list[EncodedTexts], config: EmbeddingsConfig):
    """Train gensim Word2Vec on token-id sentences; returns the KeyedVectors."""
    from gensim.models import Word2Vec

    sentences = TokenSentences(encoded)
    model = Word2Vec(
        vector_size=config.vector_size,
        window=config.window,
        min_count=config.min_count,
        sg=int(config.skip_gram),
        epochs=config.epochs,
        seed=config.seed,
        workers=config.workers,
    )
    model.build_vocab(sentences)
    if not model.wv.index_to_key:  # gensim would fail with "you must first build vocabulary"
        raise ValueError(f"Word2Vec: no token occurs embeddings.min_count={config.min_count} times in the texts")
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    return model.wv


def build_matrix(vectors, vocab_size: int, pad_id: int, train_tokens: np.ndarray, seed: int) -> EmbeddingMatrix:
    """Align Word2Vec vectors with token ids ``0..vocab_size-1``; unseen rows ~ N(0, sigma^2), padding row 0."""
    trained = np.zeros(vocab_size, dtype=bool)
    dim = vectors.vector_size
    matrix = np.zeros((vocab_size, dim), dtype=np.float32)
    for key in vectors.index_to_key:
        token_id = int(key)
        if 0 <= token_id < vocab_size:
            matrix[token_id] = vectors[key]
            trained[token_id] = True
    sigma = float(matrix[trained].std()) if trained.any() else 0.1
    rng = np.random.default_rng(seed)
    untrained = ~trained
    matrix[untrained] = rng.normal(0.0, sigma, size=(int(untrained.sum()), dim)).astype(np.float32)
    matrix[pad_id] = 0.0
    counts = np.bincount(train_tokens, minlength=vocab_size)[:vocab_size]
    token_coverage = float(counts[trained].sum() / max(1, counts.sum()))
    return EmbeddingMatrix(matrix, trained, float(trained.mean()), token_coverage)


def embeddings_stage(
    config: EmbeddingsConfig,
    encoded: list[EncodedTexts],
    fingerprints: list[str],
    vocab_size: int,
    pad_id: int,
    tokenizer_fingerprint: str,
    cache: ArtifactCache,
) -> EmbeddingMatrix:
    """Train (or reuse, by fingerprint) Word2Vec and return the aligned matrix with its coverage."""
    parts = {"config": asdict(config), "data": fingerprints, "tokenizer": tokenizer_fingerprint, "vocab": vocab_size}
    path = cache.path("embeddings", parts, ".npz")
    if path.is_file():
        logger.info("embeddings: reusing %s", path)
        return EmbeddingMatrix.load(path)
    vectors = train_word2vec(encoded, config)
    embedding = build_matrix(vectors, vocab_size, pad_id, encoded[0].flat, config.seed)
    embedding.save(path)
    logger.info(
        "embeddings: Word2Vec covers %.1f%% of vocabulary rows and %.1f%% of training tokens",
        100 * embedding.vocabulary_coverage,
        100 * embedding.token_coverage,
    )
    return embedding
