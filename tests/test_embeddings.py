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


# ---------------------------------------------------------------------------------------------------
# embeddings.source: teacher (the teacher's input embeddings, PCA-projected)

HIDDEN = 12
TEACHER_CONFIG = EmbeddingsConfig(source="teacher", vector_size=4, min_count=2, teacher_std=0.25)


def teacher_weights(vocab: int, seed: int = 0) -> np.ndarray:
    """(vocab, HIDDEN) rows with a known spectrum: variances 16, 9, 4, 1 on four directions, 0.01 elsewhere."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(HIDDEN, HIDDEN)))
    scales = np.array([4.0, 3.0, 2.0, 1.0] + [0.1] * (HIDDEN - 4))
    return (rng.normal(size=(vocab, HIDDEN)) * scales @ basis.T + 0.5).astype(np.float32)


def save_teacher(directory, tokenizer, weights: np.ndarray):
    """A stand-in teacher directory: the students' tokenizer and a safetensors file with BERT's key name."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    other = np.zeros((2, 2), dtype=np.float32)
    save_file(
        {"bert.embeddings.word_embeddings.weight": weights, "classifier.weight": other},
        directory / "model.safetensors",
    )
    return directory


def tiny_corpus(tokenizer) -> EncodedTexts:
    from textdistill.tokens import encode_texts

    texts = ["the movie was great", "the film was awful and boring", "a great story", "boring acting"] * 3
    return encode_texts(texts, tokenizer, progress=False)


def test_teacher_embeddings_shape_scale_padding_and_fitted_rows(tmp_path, tiny_tokenizer):
    vocab = len(tiny_tokenizer)
    weights = teacher_weights(vocab)
    model = save_teacher(tmp_path / "teacher", tiny_tokenizer, weights)
    encoded = tiny_corpus(tiny_tokenizer)
    embedding = embeddings.teacher_embedding_matrix(TEACHER_CONFIG, [encoded], vocab, PAD, str(model))
    assert embedding.matrix.shape == (vocab, 4) and embedding.matrix.dtype == np.float32
    assert not embedding.matrix[PAD].any()
    counts = np.bincount(encoded.flat, minlength=vocab)
    assert np.array_equal(np.flatnonzero(embedding.trained_rows), np.flatnonzero(counts >= 2))
    assert embedding.matrix[embedding.trained_rows].std() == pytest.approx(0.25, rel=1e-5)
    unseen = ~embedding.trained_rows
    unseen[PAD] = False
    assert np.all(np.abs(embedding.matrix[unseen]).sum(axis=1) > 0)  # projected teacher vectors, not zeros
    assert embedding.token_coverage == pytest.approx(1.0)  # every training token occurs at least twice


def test_teacher_embeddings_are_deterministic(tmp_path, tiny_tokenizer):
    vocab = len(tiny_tokenizer)
    model = save_teacher(tmp_path / "teacher", tiny_tokenizer, teacher_weights(vocab))
    encoded = tiny_corpus(tiny_tokenizer)
    first = embeddings.teacher_embedding_matrix(TEACHER_CONFIG, [encoded], vocab, PAD, str(model))
    second = embeddings.teacher_embedding_matrix(TEACHER_CONFIG, [encoded], vocab, PAD, str(model))
    assert first.matrix.tobytes() == second.matrix.tobytes()


def test_pca_keeps_the_most_variance_of_the_rows_it_is_fitted_on():
    rows = teacher_weights(400, seed=3).astype(np.float64)
    pca = embeddings.PCA.fit(rows, 4)
    assert np.allclose(pca.components @ pca.components.T, np.eye(4), atol=1e-10)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(rows.T)))[::-1]
    assert pca.explained_variance_ratio.sum() == pytest.approx(eigenvalues[:4].sum() / eigenvalues.sum(), rel=1e-9)
    assert np.all(np.diff(pca.explained_variance_ratio) <= 0)
    kept = pca.transform(rows).var(axis=0).sum()
    rng = np.random.default_rng(0)
    for _ in range(50):  # no other 4-dimensional orthonormal projection keeps as much
        basis, _ = np.linalg.qr(rng.normal(size=(HIDDEN, 4)))
        assert ((rows - rows.mean(0)) @ basis).var(axis=0).sum() < kept
    assert kept / rows.var(axis=0).sum() > 0.99  # the four strong directions hold almost all the variance


def test_pca_signs_are_fixed():
    rows = teacher_weights(200, seed=5).astype(np.float64)
    pca, flipped = embeddings.PCA.fit(rows, 3), embeddings.PCA.fit(-rows, 3)
    for component, other in zip(pca.components, flipped.components, strict=True):
        assert component[np.abs(component).argmax()] > 0 and other[np.abs(other).argmax()] > 0
    assert np.allclose(np.abs(pca.components), np.abs(flipped.components), atol=1e-8)


def test_teacher_source_errors_name_the_problem(tmp_path, tiny_tokenizer):
    vocab = len(tiny_tokenizer)
    model = save_teacher(tmp_path / "teacher", tiny_tokenizer, teacher_weights(vocab))
    encoded = tiny_corpus(tiny_tokenizer)
    too_wide = EmbeddingsConfig(source="teacher", vector_size=HIDDEN + 1)
    with pytest.raises(ValueError, match="PCA can only reduce"):
        embeddings.teacher_embedding_matrix(too_wide, [encoded], vocab, PAD, str(model))
    with pytest.raises(ValueError, match="students' vocabulary"):
        embeddings.teacher_embedding_matrix(TEACHER_CONFIG, [encoded], vocab + 5, PAD, str(model))
    with pytest.raises(ValueError, match="not the students'"):
        embeddings.check_teacher_vocabulary(str(model), "another-fingerprint")
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        embeddings.teacher_input_embeddings(str(tmp_path))


def test_teacher_stage_reuses_the_cache_and_keys_the_teacher_weights(tmp_path, tiny_tokenizer, monkeypatch):
    from textdistill.tokens import tokenizer_fingerprint

    vocab, fingerprint = len(tiny_tokenizer), tokenizer_fingerprint(tiny_tokenizer)
    model = save_teacher(tmp_path / "teacher", tiny_tokenizer, teacher_weights(vocab))
    encoded = tiny_corpus(tiny_tokenizer)
    cache = ArtifactCache(tmp_path / "cache")

    def run(config=TEACHER_CONFIG, teacher=model):
        return embeddings_stage(config, [encoded], ["fp"], vocab, PAD, fingerprint, cache, teacher_model=str(teacher))

    first = run()
    assert first.explained_variance is not None and 0.9 < first.explained_variance <= 1.0
    real = embeddings.teacher_input_embeddings

    def fail(*args, **kwargs):
        raise AssertionError("teacher embeddings read although the matrix is cached")

    monkeypatch.setattr(embeddings, "teacher_input_embeddings", fail)
    again = run()
    assert np.array_equal(again.matrix, first.matrix) and again.explained_variance == first.explained_variance
    with pytest.raises(AssertionError, match="read although"):
        run(EmbeddingsConfig(**{**vars(TEACHER_CONFIG), "teacher_std": 0.5}))
    other = save_teacher(tmp_path / "other", tiny_tokenizer, teacher_weights(vocab, seed=9))
    with pytest.raises(AssertionError, match="read although"):
        run(teacher=other)  # other weights, other matrix
    monkeypatch.setattr(embeddings, "teacher_input_embeddings", real)
    assert not np.array_equal(run(teacher=other).matrix, first.matrix)
    with pytest.raises(ValueError, match="no teacher model"):
        embeddings_stage(TEACHER_CONFIG, [encoded], ["fp"], vocab, PAD, fingerprint, cache)


def test_word2vec_cache_key_ignores_the_teacher_source_settings():
    plain = EmbeddingsConfig()
    assert plain.cache_parts() == EmbeddingsConfig(teacher_std=0.7, teacher_model="x").cache_parts()
    assert "source" not in plain.cache_parts()
    assert EmbeddingsConfig(source="teacher").cache_parts()["source"] == "teacher"
