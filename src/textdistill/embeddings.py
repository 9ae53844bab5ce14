"""The student's initial embedding matrix: Word2Vec on the training texts, or the teacher's own input embeddings.

``embeddings.source: word2vec``: gensim Word2Vec sees the same WordPiece tokens the student reads, so its
matrix lines up row for row with the student's embedding table. Rows for tokens Word2Vec never saw (below
``min_count`` or absent from the training texts) are drawn from N(0, sigma^2), sigma being the standard
deviation of the trained vectors, so that they sit at the same scale; the padding row is zero.

``embeddings.source: teacher``: the word embeddings of the teacher's pretrained transformer (same WordPiece
vocabulary, e.g. 30,522 x 384 for MiniLM) projected to ``vector_size`` dimensions by PCA. The PCA is fitted on
the rows of the tokens that occur at least ``min_count`` times in the training texts (the tokens the student
actually learns from; fitting on all rows spends components on the ~1,000 ``[unused]`` rows and rare
foreign-script pieces), and then every row is projected, so that tokens never seen in training keep the
teacher's pretrained meaning instead of a random vector: that is what this option is for. The projection is
scaled to a per-element standard deviation of ``teacher_std`` (0.25, chosen on IMDB validation for the CNN
student over 0.57, Word2Vec's own scale there: benchmarks/student_embeddings.py); the padding row is zero.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
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
    """An embedding matrix aligned with the vocabulary, and how much of it was fitted on the training texts.

    ``trained_rows``: rows Word2Vec trained (source ``word2vec``), or the rows the PCA was fitted on (source
    ``teacher``; every row of that matrix is a projected teacher vector). ``explained_variance``: with source
    ``teacher``, the share of the fitted rows' variance the projection keeps; None for Word2Vec.
    """

    matrix: np.ndarray  # (vocab_size, vector_size) float32
    trained_rows: np.ndarray  # (vocab_size,) bool
    vocabulary_coverage: float  # share of vocabulary rows with a trained vector
    token_coverage: float  # share of training-token occurrences whose token has a trained vector
    explained_variance: float | None = None  # teacher source: share of the fitted rows' variance kept by the PCA

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "matrix": self.matrix,
            "trained_rows": self.trained_rows,
            "coverage": np.array([self.vocabulary_coverage, self.token_coverage]),
        }
        if self.explained_variance is not None:
            arrays["explained_variance"] = np.array(self.explained_variance)
        with atomic_open(path) as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> EmbeddingMatrix:
        with np.load(path, allow_pickle=False) as stored:
            vocabulary, tokens = stored["coverage"].tolist()
            explained = float(stored["explained_variance"]) if "explained_variance" in stored.files else None
            return cls(stored["matrix"], stored["trained_rows"], vocabulary, tokens, explained)


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


# ---------------------------------------------------------------------------------------------------
# The teacher's input embeddings, projected by PCA


def teacher_input_embeddings(model: str) -> np.ndarray:
    """The word-embedding matrix (vocab, hidden) float32 of a BERT-family model (base or fine-tuned classifier).

    A local directory's ``*.safetensors`` is read for that one tensor (the key ending in
    ``word_embeddings.weight``); a hub name is loaded with ``AutoModel`` and its ``get_input_embeddings()``.
    """
    local = Path(model).expanduser()
    if local.is_dir():
        from safetensors import safe_open

        for path in sorted(local.glob("*.safetensors")):
            with safe_open(str(path), framework="np") as handle:
                keys = [key for key in handle.keys() if key.endswith("word_embeddings.weight")]  # noqa: SIM118
                if keys:
                    return np.asarray(handle.get_tensor(keys[0]), dtype=np.float32)
        raise ValueError(f"embeddings.source teacher: {local} has no *.safetensors with a word_embeddings.weight")
    from transformers import AutoModel

    try:
        loaded = AutoModel.from_pretrained(model)
    except Exception as error:  # hub unreachable, unknown name: one clear message
        raise ValueError(f"embeddings.source teacher: could not load {model!r}: {error}") from error
    return loaded.get_input_embeddings().weight.detach().float().numpy()


@dataclass
class PCA:
    """A fitted principal-component projection: ``(x - mean) @ components.T``."""

    mean: np.ndarray  # (hidden,) float64
    components: np.ndarray  # (dim, hidden) float64, orthonormal rows, by decreasing variance
    explained_variance_ratio: np.ndarray  # (dim,) share of the total variance along each component

    @classmethod
    def fit(cls, rows: np.ndarray, dim: int) -> PCA:
        """Fit on ``rows`` (n, hidden) by SVD of the centred rows; each component's sign is fixed so that its
        largest-magnitude loading is positive (the same rows give the same projection on every machine)."""
        if not 1 <= dim <= min(rows.shape):
            raise ValueError(f"PCA to {dim} dimensions needs 1 <= dim <= min(rows, hidden) = {min(rows.shape)}")
        data = rows.astype(np.float64)
        mean = data.mean(axis=0)
        _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        variance = singular**2
        return cls(mean, (vt * signs[:, None])[:dim], (variance / variance.sum())[:dim])

    def transform(self, rows: np.ndarray) -> np.ndarray:
        """(n, hidden) → (n, dim) float64."""
        return (rows.astype(np.float64) - self.mean) @ self.components.T


def project_teacher_embeddings(
    weights: np.ndarray, fit_rows: np.ndarray, dim: int, pad_id: int, std: float, train_tokens: np.ndarray
) -> EmbeddingMatrix:
    """PCA of ``weights`` (vocab, hidden) fitted on rows ``fit_rows`` (vocab,) bool, every row projected to ``dim``
    and scaled to per-element standard deviation ``std`` over the fitted rows; padding row 0 → (vocab, dim)."""
    if not fit_rows.any():
        raise ValueError("embeddings.source teacher: no token occurs embeddings.min_count times in the texts")
    pca = PCA.fit(weights[fit_rows], dim)
    projected = pca.transform(weights)
    projected *= std / projected[fit_rows].std()
    matrix = projected.astype(np.float32)
    matrix[pad_id] = 0.0
    counts = np.bincount(train_tokens, minlength=len(weights))[: len(weights)]
    token_coverage = float(counts[fit_rows].sum() / max(1, counts.sum()))
    return EmbeddingMatrix(
        matrix, fit_rows, float(fit_rows.mean()), token_coverage, float(pca.explained_variance_ratio.sum())
    )


def token_counts(encoded: list[EncodedTexts], vocab_size: int) -> np.ndarray:
    """Occurrences of each token id (vocab_size,) int64 over every split of ``encoded``."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for texts in encoded:
        counts += np.bincount(texts.flat, minlength=vocab_size)[:vocab_size]
    return counts


def teacher_embedding_matrix(
    config: EmbeddingsConfig, encoded: list[EncodedTexts], vocab_size: int, pad_id: int, model: str
) -> EmbeddingMatrix:
    """The teacher's word embeddings for the vocabulary ``0..vocab_size-1`` projected to ``config.vector_size``."""
    weights = teacher_input_embeddings(model)
    if weights.shape[0] < vocab_size:
        raise ValueError(
            f"embeddings.source teacher: {model} has {weights.shape[0]:,} embedding rows but the students' vocabulary "
            f"has {vocab_size:,} tokens: the teacher's vocabulary must be the students' (tokens.tokenizer)"
        )
    if config.vector_size > weights.shape[1]:
        raise ValueError(
            f"embeddings.vector_size={config.vector_size} is larger than the teacher's embedding size "
            f"{weights.shape[1]}: PCA can only reduce it"
        )
    fit_rows = token_counts(encoded, vocab_size) >= config.min_count
    fit_rows[pad_id] = False
    return project_teacher_embeddings(
        weights[:vocab_size], fit_rows, config.vector_size, pad_id, config.teacher_std, encoded[0].flat
    )


def check_teacher_vocabulary(model: str, tokenizer_fingerprint: str) -> None:
    """A ValueError unless ``model``'s tokenizer is the students' (same fingerprint): its rows are the ids."""
    from textdistill.tokens import load_tokenizer
    from textdistill.tokens import tokenizer_fingerprint as fingerprint_of

    actual = fingerprint_of(load_tokenizer(model))
    if actual != tokenizer_fingerprint:
        raise ValueError(
            f"embeddings.source teacher: the tokenizer of {model} (fingerprint {actual}) is not the students' "
            f"({tokenizer_fingerprint}); its embedding rows would not line up with the students' token ids"
        )


def model_identity(model: str) -> str:
    """What a source model's embeddings depend on: a local directory's weights hash, else the hub name."""
    local = Path(model).expanduser()
    if local.is_dir():
        from textdistill.teachers.transformer import checkpoint_hash

        return f"local:{checkpoint_hash(local)}"
    return model


# ---------------------------------------------------------------------------------------------------
# The stage


def embeddings_stage(
    config: EmbeddingsConfig,
    encoded: list[EncodedTexts],
    fingerprints: list[str],
    vocab_size: int,
    pad_id: int,
    tokenizer_fingerprint: str,
    cache: ArtifactCache,
    teacher_model: str | None = None,
) -> EmbeddingMatrix:
    """Train Word2Vec or project the teacher's embeddings (``config.source``), or reuse the matrix by fingerprint.

    ``teacher_model``: with source ``teacher``, the model whose input embeddings are projected (required then).
    """
    parts = {
        "config": config.cache_parts(),
        "data": fingerprints,
        "tokenizer": tokenizer_fingerprint,
        "vocab": vocab_size,
    }
    if config.source == "teacher":
        if teacher_model is None:
            raise ValueError("embeddings.source teacher: no teacher model to take the embeddings from")
        check_teacher_vocabulary(teacher_model, tokenizer_fingerprint)
        parts["teacher"] = model_identity(teacher_model)
    path = cache.path("embeddings", parts, ".npz")
    if path.is_file():
        logger.info("embeddings: reusing %s", path)
        return EmbeddingMatrix.load(path)
    if config.source == "teacher":
        assert teacher_model is not None
        embedding = teacher_embedding_matrix(config, encoded, vocab_size, pad_id, teacher_model)
        logger.info(
            "embeddings: teacher %s projected to %d dimensions keeps %.1f%% of the variance of the %d rows it was "
            "fitted on (%.1f%% of training tokens)",
            teacher_model,
            config.vector_size,
            100 * (embedding.explained_variance or 0.0),
            int(embedding.trained_rows.sum()),
            100 * embedding.token_coverage,
        )
    else:
        vectors = train_word2vec(encoded, config)
        embedding = build_matrix(vectors, vocab_size, pad_id, encoded[0].flat, config.seed)
        logger.info(
            "embeddings: Word2Vec covers %.1f%% of vocabulary rows and %.1f%% of training tokens",
            100 * embedding.vocabulary_coverage,
            100 * embedding.token_coverage,
        )
    embedding.save(path)
    return embedding
