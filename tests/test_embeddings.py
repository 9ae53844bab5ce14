"""Word2Vec embeddings: alignment with the vocabulary, untrained rows, coverage and the cache."""

from __future__ import annotations

import numpy as np
import pytest

from textdistill import embeddings
from textdistill.cache import ArtifactCache
from textdistill.config import EmbeddingsConfig
from textdistill.embeddings import EmbeddingMatrix, TokenSentences, build_matrix, embeddings_stage, train_word2vec
from textdistill.tokens import EncodedTexts

VOCAB, PAD = 30, 0
CONFIG = EmbeddingsConfig(vector_size=8, window=2, min_count=2, epochs=2, workers=1, seed=7)


def corpus() -> tuple[EncodedTexts, EncodedTexts]:
    """Train: 40 sentences over ids 5..14, plus id 20 once (below min_count). Unlabelled: id 22 twice."""
    rng = np.random.default_rng(0)
    train = [rng.integers(5, 15, size=8).tolist() for _ in range(40)]
    train[0].append(20)
    unlabelled = [[22, 5, 6], [7, 22]]
    return EncodedTexts.from_sequences(train), EncodedTexts.from_sequences(unlabelled)


def build(encoded: list[EncodedTexts], config: EmbeddingsConfig = CONFIG) -> tuple[EmbeddingMatrix, object]:
    vectors = train_word2vec(encoded, config)
    return build_matrix(vectors, VOCAB, PAD, encoded[0].flat, config.seed), vectors


def test_token_sentences_restart_each_pass():
    train, _ = corpus()
    sentences = TokenSentences([train])
    first, second = list(sentences), list(sentences)
    assert first == second and len(first) == 40
    assert first[0][:3] == [str(t) for t in train.sequence(0)[:3]]


def test_matrix_rows_match_the_tokens_word2vec_trained():
    train, unlabelled = corpus()
    embedding, vectors = build([train, unlabelled])
    assert embedding.matrix.shape == (VOCAB, 8) and embedding.matrix.dtype == np.float32
    counts = np.bincount(np.concatenate([train.flat, unlabelled.flat]), minlength=VOCAB)
    assert np.array_equal(np.flatnonzero(embedding.trained_rows), np.flatnonzero(counts >= 2))
    assert set(np.flatnonzero(embedding.trained_rows)) == set(range(5, 15)) | {22}  # not 20 (seen once)
    for token in np.flatnonzero(embedding.trained_rows):
        assert np.array_equal(embedding.matrix[token], vectors[str(token)])


def test_padding_row_zero_and_untrained_rows_random_at_the_same_scale():
    train, unlabelled = corpus()
    embedding, _ = build([train, unlabelled])
    assert not embedding.matrix[PAD].any()
    untrained = ~embedding.trained_rows
    untrained[PAD] = False
    rows = embedding.matrix[untrained]
    assert len(rows) == VOCAB - 11 - 1
    assert len({row.tobytes() for row in rows}) == len(rows)  # all different, none zero
    assert np.all(np.abs(rows).sum(axis=1) > 0)
    trained_std = embedding.matrix[embedding.trained_rows].std()
    assert 0.5 * trained_std < rows.std() < 2.0 * trained_std
    assert abs(rows.mean()) < trained_std


def test_coverage_numbers():
    train, unlabelled = corpus()
    embedding, _ = build([train, unlabelled])
    assert embedding.vocabulary_coverage == pytest.approx(11 / VOCAB)
    assert embedding.token_coverage == pytest.approx(320 / 321)  # training tokens only: the one id 20 is not covered


def test_training_is_deterministic_with_one_worker():
    train, unlabelled = corpus()
    first, _ = build([train, unlabelled])
    second, _ = build([train, unlabelled])
    assert np.array_equal(first.matrix, second.matrix)


def test_min_count_nothing_reaches_is_a_clear_error():
    train, _ = corpus()
    with pytest.raises(ValueError, match="min_count=1000"):
        train_word2vec([train], EmbeddingsConfig(vector_size=8, min_count=1000, epochs=1, workers=1))


def stage(cache: ArtifactCache, encoded: list[EncodedTexts], fingerprints: list[str], config=CONFIG):
    return embeddings_stage(config, encoded, fingerprints, VOCAB, PAD, "tok-fp", cache)


def test_stage_reuses_the_cache_by_fingerprint(tmp_path, monkeypatch):
    train, unlabelled = corpus()
    cache = ArtifactCache(tmp_path)
    first = stage(cache, [train, unlabelled], ["train-fp", "unlabelled-fp"])
    assert len(list((tmp_path / "embeddings").glob("*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("Word2Vec trained although the matrix is cached")

    monkeypatch.setattr(embeddings, "train_word2vec", fail)
    again = stage(cache, [train, unlabelled], ["train-fp", "unlabelled-fp"])
    assert np.array_equal(again.matrix, first.matrix)
    assert np.array_equal(again.trained_rows, first.trained_rows)
    assert (again.vocabulary_coverage, again.token_coverage) == (first.vocabulary_coverage, first.token_coverage)
    with pytest.raises(AssertionError, match="Word2Vec trained"):
        stage(cache, [train, unlabelled], ["other-train-fp", "unlabelled-fp"])
    with pytest.raises(AssertionError, match="Word2Vec trained"):
        stage(cache, [train], ["train-fp"])
    with pytest.raises(AssertionError, match="Word2Vec trained"):
        stage(
            cache,
            [train, unlabelled],
            ["train-fp", "unlabelled-fp"],
            EmbeddingsConfig(**{**vars(CONFIG), "window": 3}),
        )
