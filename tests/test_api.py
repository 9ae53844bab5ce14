"""The Python API on tiny offline data: every teacher kind, every input type, clear errors, save and reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from textdistill import Distiller, Student
from textdistill.config import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")

POSITIVE = ["good", "great", "wonderful", "excellent", "love", "best", "fun", "moving"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dull", "worst", "hate", "waste"]
FILLER = ["the", "movie", "film", "story", "plot", "acting", "was", "it", "this", "really", "quite"]
TINY = {"distill": {"epochs": 4, "batch_size": 16, "lr": 1e-2}, "embeddings": {"vector_size": 16, "workers": 1}}
ARCH = {"num_filters": 8, "kernel_sizes": [2, 3]}


def reviews(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Short reviews whose label ('pos'/'neg') is carried by two sentiment words among filler words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, size=6)) + list(rng.choice(POSITIVE if label else NEGATIVE, size=2))
        texts.append(" ".join(rng.permutation(words)))
    return texts, ["pos" if label else "neg" for label in labels]


@pytest.fixture(scope="module")
def data():
    return reviews(160, seed=0), reviews(60, seed=1)


def accuracy(student: Student, texts: list[str], labels: list[str]) -> float:
    predicted = [row["label"] for row in student.predict(texts)]
    return float(np.mean([p == t for p, t in zip(predicted, labels, strict=True)]))


def test_ngram_teacher_end_to_end_with_pandas_and_string_labels(data, tiny_tokenizer, tmp_path):
    (texts, labels), (val_texts, val_labels) = data
    tokenizer_dir = tmp_path / "tokenizer"
    tiny_tokenizer.save_pretrained(str(tokenizer_dir))
    distiller = Distiller("cnn", teacher="ngram", tokenizer=tokenizer_dir, arch=ARCH, **TINY)
    student = distiller.fit(pd.Series(texts), pd.Series(labels), validation=(np.array(val_texts), val_labels))
    assert student.label_names == ["neg", "pos"]
    assert accuracy(student, val_texts, val_labels) >= 0.9
    assert distiller.training_ is not None and distiller.training_.best_val_accuracy >= 0.9
    probabilities = student.predict_proba(val_texts[:5])
    assert probabilities.shape == (5, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    student.save_pretrained(tmp_path / "student")
    reloaded = Student.from_pretrained(tmp_path / "student")
    assert np.array_equal(reloaded.predict_logits(val_texts), student.predict_logits(val_texts))


def test_hard_labels_without_a_teacher_hold_out_validation(data, tiny_tokenizer, tmp_path):
    (texts, labels), (val_texts, val_labels) = data
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    settings = TINY | {"distill": TINY["distill"] | {"epochs": 10}}
    distiller = Distiller("cnn", tokenizer=tmp_path / "tokenizer", arch=ARCH, validation_fraction=0.25, **settings)
    student = distiller.fit(texts, labels, unlabelled=val_texts)  # no teacher: the unlabelled texts are unused
    assert distiller.training_ is not None
    assert distiller.training_.train_examples_per_second > 0
    assert accuracy(student, val_texts, val_labels) >= 0.85


def test_precomputed_logits_are_checked(data, tiny_tokenizer, tmp_path):
    (texts, labels), (val_texts, val_labels) = data
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    signs = {"pos": 1.0, "neg": -1.0}
    given = {
        "train": np.array([[-2 * signs[y], 2 * signs[y]] for y in labels]),
        "validation": np.array([[-2 * signs[y], 2 * signs[y]] for y in val_labels]),
    }
    distiller = Distiller("cnn", teacher=given, tokenizer=tmp_path / "tokenizer", arch=ARCH, **TINY)
    student = distiller.fit(texts, labels, validation=(val_texts, val_labels))
    assert accuracy(student, val_texts, val_labels) >= 0.9
    with pytest.raises(ValueError, match=r"no \['unlabelled'\] array"):
        distiller.fit(texts, labels, validation=(val_texts, val_labels), unlabelled=val_texts)
    short = {"train": given["train"][:-1], "validation": given["validation"]}
    with pytest.raises(ValueError, match=r"logits\['train'\]: shape \(159, 2\), expected \(160, 2\)"):
        Distiller("cnn", teacher=short, tokenizer=tmp_path / "tokenizer", arch=ARCH, **TINY).fit(
            texts, labels, validation=(val_texts, val_labels)
        )


def save_tiny_teacher(tokenizer, directory: Path, label_names: list[str]) -> Path:
    """A random one-layer BERT classifier with ``tokenizer``, saved as a teacher directory."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def test_transformer_teacher_directory(data, tiny_tokenizer, tmp_path):
    (texts, labels), (val_texts, val_labels) = data
    teacher_dir = save_tiny_teacher(tiny_tokenizer, tmp_path / "teacher", ["pos", "neg"])
    distiller = Distiller("cnn", teacher=teacher_dir, arch=ARCH, **TINY)  # the tokenizer comes from the teacher
    student = distiller.fit(texts[:40], labels[:40], validation=(val_texts[:20], val_labels[:20]))
    assert student.label_names == ["neg", "pos"]  # the teacher's columns were reordered by name
    assert student.predict_logits(val_texts[:3]).shape == (3, 2)


def test_a_student_matching_the_transformer_teachers_representations(data, tiny_tokenizer, tmp_path, monkeypatch):
    from textdistill import api

    (texts, labels), (val_texts, val_labels) = data
    teacher_dir = save_tiny_teacher(tiny_tokenizer, tmp_path / "teacher", ["neg", "pos"])
    given = []
    train_student = api.train_student

    def recording(model, train, validation, *args, **kwargs):
        given.append((train.teacher_representations, validation.teacher_representations))
        return train_student(model, train, validation, *args, **kwargs)

    monkeypatch.setattr(api, "train_student", recording)
    distill = {**TINY["distill"], "representation_weight": 1.0}
    distiller = Distiller("cnn", teacher=teacher_dir, arch=ARCH, **(TINY | {"distill": distill}))
    distiller.fit(texts[:40], labels[:40], validation=(val_texts[:20], val_labels[:20]), unlabelled=val_texts[20:30])
    ((train, validation),) = given
    assert train is not None and train.shape == (50, 16) and validation is None  # 40 train + 10 unlabelled rows
    with pytest.raises(ValueError, match="needs a transformer teacher"):
        Distiller("cnn", teacher="ngram", tokenizer=teacher_dir, distill={"representation_weight": 1.0})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, t, y: d.fit(t, y[:-1]), "160 texts but 159 labels"),
        (lambda d, t, y: d.fit(t, ["pos"] * len(t)), "at least two distinct labels"),
        (lambda d, t, y: d.fit([*t[:-1], "   "], y), r"texts\[159\] is empty"),
        (lambda d, t, y: d.fit("one text", y), "one string"),
        (lambda d, t, y: d.fit(t, y, validation=(t[:5], ["pos", "neg", "meh", "pos", "neg"])), "'meh'"),
    ],
)
def test_bad_input_is_a_clear_error(data, tiny_tokenizer, tmp_path, call, message):
    (texts, labels), _ = data
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    with pytest.raises(ValueError, match=message):
        call(Distiller("cnn", tokenizer=tmp_path / "tokenizer", arch=ARCH, **TINY), texts, labels)


def test_settings_are_validated_at_construction(tmp_path):
    with pytest.raises(ValueError, match="unknown student 'lstm'"):
        Distiller("lstm", tokenizer=tmp_path)
    with pytest.raises(ConfigError, match=r"distill\.lrr"):
        Distiller("cnn", tokenizer=tmp_path, distill={"lrr": 1})
    with pytest.raises(ValueError, match="give tokenizer="):
        Distiller("cnn", teacher="ngram")


def test_onnx_export_of_a_fitted_student_matches(data, tiny_tokenizer, tmp_path):
    from textdistill.compress import OnnxModule, int8_check
    from textdistill.inference import predict_logits

    (texts, labels), (val_texts, val_labels) = data
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    student = Distiller("cnn", teacher="ngram", tokenizer=tmp_path / "tokenizer", arch=ARCH, **TINY).fit(texts, labels)
    sequences = student.sequences(val_texts)
    exported = predict_logits(OnnxModule(student.export_onnx(tmp_path / "model.onnx")), sequences, 0)
    assert np.abs(exported - student.predict_logits(val_texts)).max() < 1e-4  # float32 rounding only
    check = int8_check(student.model, student.export_onnx(tmp_path / "model.int8.onnx", int8=True), sequences, 0)
    assert check["agreement"] >= 0.95 and not (tmp_path / "model.int8.float.onnx").exists()


def test_hugging_face_datasets_columns_are_accepted(data, tiny_tokenizer, tmp_path):
    from datasets import Dataset

    (texts, labels), (val_texts, val_labels) = data
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    train = Dataset.from_dict({"text": texts, "label": [int(y == "pos") for y in labels]})
    validation = Dataset.from_dict({"text": val_texts, "label": [int(y == "pos") for y in val_labels]})
    distiller = Distiller("cnn", tokenizer=tmp_path / "tokenizer", arch=ARCH, **TINY)
    student = distiller.fit(train["text"], train["label"], validation=(validation["text"], validation["label"]))
    assert student.label_names == ["0", "1"]
    assert distiller.training_ is not None and distiller.training_.epochs_run >= 1


def test_an_unreachable_hub_teacher_is_a_clear_error(data, tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (texts, labels), _ = data
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    distiller = Distiller("cnn", teacher="no-such-user/no-such-model", tokenizer=tmp_path / "tokenizer", arch=ARCH)
    with pytest.raises(ValueError, match="neither a directory nor a loadable hub classifier"):
        distiller.fit(texts, labels)


def test_teacher_embeddings_initialise_the_student(data, tiny_tokenizer, tmp_path):
    from textdistill.config import EmbeddingsConfig, StudentConfig
    from textdistill.embeddings import teacher_embedding_matrix
    from textdistill.tokens import encode_texts

    (texts, labels), (val_texts, val_labels) = data
    teacher_dir = save_tiny_teacher(tiny_tokenizer, tmp_path / "teacher", ["neg", "pos"])
    settings = {**TINY, "embeddings": {"vector_size": 8, "source": "teacher"}}
    frozen = StudentConfig(name="cnn", arch=ARCH, freeze_embeddings=True)
    student = Distiller(frozen, teacher=teacher_dir, **settings).fit(
        texts[:40], labels[:40], validation=(val_texts[:20], val_labels[:20])
    )
    encoded = encode_texts(texts[:40], tiny_tokenizer, progress=False)
    expected = teacher_embedding_matrix(
        EmbeddingsConfig(vector_size=8, source="teacher"), [encoded], len(tiny_tokenizer), 0, str(teacher_dir)
    ).matrix
    assert np.allclose(student.model.embedding.weight.detach().numpy(), expected)
    with pytest.raises(ValueError, match="embeddings.teacher_model or a transformer teacher"):
        Distiller("cnn", tokenizer=teacher_dir, arch=ARCH, **settings).fit(texts[:40], labels[:40])
