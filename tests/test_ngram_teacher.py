"""The n-gram teacher: shapes for 2 and 3 classes, C chosen on validation, exact save/load, honest
out-of-fold logits, and clear errors for bad input. Tiny toy texts, offline, a second or two."""

from __future__ import annotations

import json

import numpy as np
import pytest

from textdistill.config import ConfigError
from textdistill.teachers import ngram
from textdistill.teachers.ngram import NgramTeacher, NgramTeacherConfig

WORDS = {
    0: ["great", "wonderful", "loved", "superb", "moving"],
    1: ["awful", "boring", "hated", "dull", "waste"],
    2: ["okay", "average", "fine", "mediocre", "passable"],
}
FILLER = ["the", "movie", "film", "plot", "was", "and", "acting", "story"]


def toy_texts(n: int, num_labels: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Reviews whose class shows in a few class words among filler words (a <br /> tag now and then)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_labels
    rng.shuffle(labels)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(WORDS[int(label)], 2))
        rng.shuffle(words)
        texts.append(" ".join(words[:4]) + " <br /><br />" + " ".join(words[4:]))
    return texts, labels


@pytest.fixture(scope="module")
def three_class() -> NgramTeacher:
    train, train_y = toy_texts(90, 3, seed=0)
    val, val_y = toy_texts(30, 3, seed=1)
    config = NgramTeacherConfig(min_df=1, c_grid=[0.01, 1.0])
    return NgramTeacher(config).fit(train, train_y, val, val_y, ["pos", "neg", "mixed"])


def test_three_classes_give_one_logit_per_class_and_learn(three_class):
    test, test_y = toy_texts(30, 3, seed=2)
    logits = three_class.predict_logits(test)
    assert logits.shape == (30, 3) and logits.dtype == np.float32
    assert np.mean(logits.argmax(1) == test_y) >= 0.9
    assert three_class.predict_logits([]).shape == (0, 3)


def test_two_classes_give_centred_logits_whose_softmax_is_the_lr_probability():
    train, train_y = toy_texts(60, 2, seed=0)
    teacher = NgramTeacher(NgramTeacherConfig(min_df=1)).fit(train, train_y, train, train_y)
    logits = teacher.predict_logits(train).astype(np.float64)
    assert logits.shape == (60, 2) and teacher.label_names == ["0", "1"]
    np.testing.assert_allclose(logits.sum(1), 0.0, atol=1e-6)
    margin = logits[:, 1] - logits[:, 0]
    features = teacher.vectorizer.transform(train)
    np.testing.assert_allclose(margin, teacher.weights.decision_values(features)[:, 0], rtol=1e-5, atol=1e-5)
    assert np.mean((margin > 0) == train_y) >= 0.95


def test_br_tags_and_case_do_not_become_features(three_class):
    vocabulary = set(three_class.vectorizer.vocabulary_)
    assert "great" in vocabulary and "br" not in vocabulary
    assert not any(any(ch.isupper() for ch in term) for term in vocabulary)


def test_c_is_the_one_with_best_validation_accuracy(monkeypatch):
    """Stub models that predict one class everywhere: C=0.3 predicts the validation majority, so it must win
    (on the balanced train split every C ties, so choosing on train would pick the smallest, 0.1)."""
    train, train_y = toy_texts(60, 3, seed=0)
    val, val_y = toy_texts(30, 3, seed=1)
    val_y = np.where(np.arange(30) < 20, 2, val_y)  # class 2 is the validation majority
    predicted_class = {0.1: 0, 0.3: 2, 1.0: 1}

    def constant_models(self, features, y, cs):
        zeros = np.zeros((3, features.shape[1]))
        return {c: ngram.NgramWeights(zeros, zeros, np.eye(3)[predicted_class[c]]) for c in cs}

    monkeypatch.setattr(NgramTeacher, "_fit_weights", constant_models)
    teacher = NgramTeacher(NgramTeacherConfig(min_df=1, c_grid=[1.0, 0.1, 0.3])).fit(train, train_y, val, val_y)
    assert teacher.chosen_c == 0.3
    assert teacher.validation_accuracy == pytest.approx(np.mean(val_y == 2))
    assert teacher.validation_accuracy_by_c[0.1] == pytest.approx(np.mean(val_y == 0))


def test_save_load_reproduces_logits_exactly(three_class, tmp_path):
    test, _ = toy_texts(20, 3, seed=3)
    three_class.save(tmp_path / "teacher")
    saved = json.loads((tmp_path / "teacher" / "config.json").read_text())
    assert saved["chosen_c"] == three_class.chosen_c and saved["label_names"] == ["pos", "neg", "mixed"]
    assert saved["validation_accuracy"] == three_class.validation_accuracy
    assert not list((tmp_path / "teacher").glob("*.pkl"))
    loaded = NgramTeacher.load(tmp_path / "teacher")
    assert np.array_equal(loaded.predict_logits(test), three_class.predict_logits(test))
    assert loaded.config == three_class.config and loaded.label_names == three_class.label_names


def test_out_of_fold_logits_are_honest_on_memorisable_data():
    """Each text has its own words and a random label: fitted in-sample it is memorised, out of fold it is chance."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=80)
    texts = [f"w{i}a w{i}b w{i}c" for i in range(80)]
    config = NgramTeacherConfig(min_df=1, c_grid=[100.0], folds=4)
    teacher = NgramTeacher(config).fit(texts, labels, texts, labels)
    in_sample = np.mean(teacher.predict_logits(texts).argmax(1) == labels)
    out_of_fold = teacher.out_of_fold_logits(texts, labels)
    assert out_of_fold.shape == (80, 2) and out_of_fold.dtype == np.float32
    assert in_sample == 1.0
    assert np.mean(out_of_fold.argmax(1) == labels) < 0.75  # chance is ~0.5; memorising would give 1.0


def test_out_of_fold_logits_match_the_model_on_learnable_data(three_class):
    texts, labels = toy_texts(60, 3, seed=4)
    logits = three_class.out_of_fold_logits(texts, labels, folds=3, seed=0)
    assert logits.shape == (60, 3)
    assert np.mean(logits.argmax(1) == labels) >= 0.9


@pytest.mark.parametrize(
    ("texts", "labels", "match"),
    [
        ([], [], "train: no texts"),
        (["good", "bad"], [0], "2 texts but labels of shape"),
        (["good", "bad"], [0, -1], "negative"),
        (["good", "bad"], [0.0, 1.0], "integer class ids"),
        (["good", 3], [0, 1], "text 1 is int"),
        (["good", "bad"], [0, 0], "at least two classes"),
    ],
)
def test_bad_training_input_is_a_clear_value_error(texts, labels, match):
    with pytest.raises(ValueError, match=match):
        NgramTeacher(NgramTeacherConfig(min_df=1)).fit(texts, labels, ["good"], [0])


def test_label_count_mismatch_is_a_value_error():
    texts, labels = ["good film", "bad film", "fine film"], [0, 1, 2]
    with pytest.raises(ValueError, match=r"label 2 is outside the 2 label names"):
        NgramTeacher(NgramTeacherConfig(min_df=1)).fit(texts, labels, texts, labels, ["pos", "neg"])
    with pytest.raises(ValueError, match=r"classes \['mixed'\] have no training examples"):
        NgramTeacher(NgramTeacherConfig(min_df=1)).fit(texts[:2], labels[:2], texts, labels, ["pos", "neg", "mixed"])


def test_unfitted_teacher_and_too_few_rows_per_fold_are_value_errors(three_class, tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        NgramTeacher().predict_logits(["good"])
    with pytest.raises(ValueError, match="not a saved n-gram teacher"):
        NgramTeacher.load(tmp_path)
    with pytest.raises(ValueError, match=r"too few: \{'mixed': 1\}"):
        three_class.out_of_fold_logits(["great", "awful", "okay", "great", "awful"], [0, 1, 2, 0, 1], folds=2)
    with pytest.raises(ValueError, match="min_df"):
        NgramTeacher(NgramTeacherConfig(min_df=5)).fit(["good film", "bad one"], [0, 1], ["good"], [0])


@pytest.mark.parametrize(
    "settings",
    [
        {"ngram_range": [2, 1]},
        {"ngram_range": [1]},
        {"alpha": 0.0},
        {"c_grid": []},
        {"c_grid": [1.0, -1.0]},
        {"folds": 1},
        {"solver": "lbfgs"},
        {"min_df": 0},
        {"token_pattern": "("},
    ],
)
def test_bad_settings_are_config_errors(settings):
    with pytest.raises(ConfigError, match="ngram teacher"):
        NgramTeacherConfig(**settings)
