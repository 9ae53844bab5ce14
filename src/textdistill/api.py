"""The Python API: distill a student in a few lines, on the same path as the command line's stages.

    from textdistill import Distiller

    distiller = Distiller("cnn", teacher="path/to/fine-tuned-classifier")
    student = distiller.fit(train_texts, train_labels, unlabelled=more_texts)
    student.predict(["A wonderful, moving film."])
    student.save_pretrained("my-student")

Texts may be lists, numpy arrays, pandas Series or Hugging Face ``datasets`` columns; labels may be ints or
strings. The teacher is a fine-tuned ``AutoModelForSequenceClassification`` (a directory or a hub name),
``"ngram"`` (the built-in NB-weighted logistic regression, fitted here), precomputed logits
(``{"train": array, "validation": array, "unlabelled": array}``), or ``None`` for hard labels only.
``fit_student`` is the one place a student is built, initialised and trained: ``pipeline.student_stage``
calls it too.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from textdistill.config import DataConfig, DistillConfig, EmbeddingsConfig, StudentConfig, TokensConfig, from_dict
from textdistill.data import encode_labels, is_label_set, label_names_from, label_sets, multi_hot, stratified_split
from textdistill.embeddings import build_matrix, check_teacher_vocabulary, teacher_embedding_matrix, train_word2vec
from textdistill.inference import RepresentationTap, predict_logits
from textdistill.multilabel import choose_thresholds
from textdistill.students import StudentModule, build_arch, build_student, init_embeddings, pretrained_source
from textdistill.students.hub import Student, check_texts, student_config
from textdistill.teachers.ngram import NgramTeacher, NgramTeacherConfig
from textdistill.teachers.transformer import load_teacher
from textdistill.tokens import (
    EncodedTexts,
    SpecialIds,
    TokenSettings,
    encode_texts,
    load_tokenizer,
    tokenizer_fingerprint,
)
from textdistill.train import DistillData, TrainResult, train_student

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "unlabelled")
HARD_LABELS_ONLY = {"soft_weight": 0.0, "hard_weight": 1.0, "sequence_weight": 0.0, "mse_weight": 0.0}


def fit_student(
    student: StudentConfig,
    distill: DistillConfig,
    train: DistillData,
    validation: DistillData,
    vocab_size: int,
    num_labels: int,
    pad_id: int,
    embedding: np.ndarray | None,
    run_dir: Path,
) -> tuple[nn.Module, TrainResult]:
    """Build student ``student.name``, initialise it and train it with the hybrid loss in ``run_dir`` (resumable);
    returns the model with its best weights.

    A student whose arch names pretrained weights loads them (``StudentModule.init_pretrained``), embedding
    included; any other takes ``embedding`` ((vocab_size, dim) Word2Vec or teacher-PCA matrix, or None).
    """
    torch.manual_seed(distill.seed)
    use_embedding = student.use_word2vec and embedding is not None
    dim = embedding.shape[1] if use_embedding and embedding is not None else None
    model = build_student(student.name, student.arch, vocab_size, num_labels, dim, pad_id)
    if isinstance(model, StudentModule) and model.init_pretrained():
        _keep_pretrained_embedding(model, student, use_embedding)
    elif use_embedding and embedding is not None:
        init_embeddings(model, embedding, student.freeze_embeddings)
    result = train_student(model, train, validation, distill, run_dir, pad_id)
    return model, result


def _keep_pretrained_embedding(model: StudentModule, student: StudentConfig, had_matrix: bool) -> None:
    """The pretrained word embedding wins over Word2Vec / teacher PCA (its layers were trained on it); it honours
    ``student.freeze_embeddings``."""
    if had_matrix:
        logger.info(
            "student %s: embedding from %s; the Word2Vec/teacher embedding matrix is not used",
            student.name,
            pretrained_source(student.name, student.arch),
        )
    model.embedding.weight.requires_grad_(not student.freeze_embeddings)


# ---------------------------------------------------------------------------------------------------
# Inputs


def as_texts(values: Any, name: str) -> list[str]:
    """A list of texts from a list, numpy array, pandas Series or ``datasets`` column; bad texts are errors."""
    if isinstance(values, str):
        raise ValueError(f"{name}: expected a sequence of texts, got one string")
    texts = values.tolist() if isinstance(values, np.ndarray | pd.Series) else list(values)
    if not texts:
        raise ValueError(f"{name}: no texts")
    check_texts(texts)
    return texts


def _as_config(cls: type, value: Any, prefix: str) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    return from_dict(cls, dict(value), prefix)


class Distiller:
    """Distill a teacher into a small student: ``Distiller(student, teacher=...).fit(texts, labels)``.

    Args:
        student: a registered student name (``cnn``, ``rnn-attention``, ``transformer``, ``ngram-bag``,
            ``pretrained-layers``) or a ``StudentConfig``.
        teacher: see the module docstring.
        tokenizer: the WordPiece tokenizer the student reads (a directory or hub name); default: the
            transformer teacher's. Required with the n-gram teacher, precomputed logits or no teacher.
        arch: the student's own settings (e.g. ``{"num_filters": 100}``), merged into ``student``.
        distill, tokens, embeddings, teacher_settings: config sections (dataclasses or dicts of their keys).
        output_dir: where training writes checkpoints (resumable); default a temporary directory.
        validation_fraction: share of the training texts held out for validation when ``fit`` gets none.
    """

    def __init__(
        self,
        student: str | StudentConfig = "cnn",
        *,
        teacher: str | Path | Mapping[str, Any] | None = None,
        tokenizer: str | Path | None = None,
        arch: Mapping[str, Any] | None = None,
        distill: DistillConfig | Mapping[str, Any] | None = None,
        tokens: TokensConfig | Mapping[str, Any] | None = None,
        embeddings: EmbeddingsConfig | Mapping[str, Any] | None = None,
        teacher_settings: NgramTeacherConfig | Mapping[str, Any] | None = None,
        output_dir: str | Path | None = None,
        validation_fraction: float = 0.1,
    ) -> None:
        base = StudentConfig(name=student) if isinstance(student, str) else student
        self.student = dataclasses.replace(base, arch={**base.arch, **(arch or {})})
        self.teacher = teacher
        self.tokenizer_name = str(tokenizer) if tokenizer is not None else None
        self.distill = _as_config(DistillConfig, distill, "distill.")
        self.tokens = _as_config(TokensConfig, tokens, "tokens.")
        self.embeddings = _as_config(EmbeddingsConfig, embeddings, "embeddings.")
        self.ngram = _as_config(NgramTeacherConfig, teacher_settings, "teacher_settings.")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.validation_fraction = validation_fraction
        self.training_: TrainResult | None = None
        uses_word2vec = self.student.use_word2vec and self.embeddings.enabled
        build_arch(self.student.name, self.student.arch, self.embeddings.vector_size if uses_word2vec else None)
        if self.tokenizer_name is None and not self._teacher_is_transformer():
            raise ValueError("give tokenizer= (a WordPiece tokenizer directory or hub name) for this teacher")
        if self.distill.representation_weight > 0 and not self._teacher_is_transformer():
            raise ValueError("distill.representation_weight > 0 needs a transformer teacher (its representations)")

    def _teacher_is_transformer(self) -> bool:
        return isinstance(self.teacher, str | Path) and str(self.teacher) != "ngram"

    # -- fit ---------------------------------------------------------------------------------------

    def fit(
        self,
        texts: Iterable[str],
        labels: Iterable[Any],
        *,
        validation: tuple[Iterable[str], Iterable[Any]] | None = None,
        unlabelled: Iterable[str] | None = None,
    ) -> Student:
        """Train the student on ``texts``/``labels`` (+ ``unlabelled`` texts labelled by the teacher).

        Labels that are lists (label sets, e.g. ``["joy", "love"]``) make a multi-label student: sigmoid outputs, the
        binary distillation losses, and decision thresholds chosen on validation (``Student.predict`` returns sets).

        ``validation`` (texts, labels) drives early stopping and the teacher's choices; without it a stratified
        ``validation_fraction`` of the training texts is held out. Returns the trained ``Student``.
        """
        splits, label_names = self._splits(texts, labels, validation, unlabelled)
        tokenizer = load_tokenizer(self.tokenizer_name or str(self.teacher))
        encoded = {name: encode_texts(split[0], tokenizer, desc=f"tokenise {name}") for name, split in splits.items()}
        teacher = _load_classifier(str(self.teacher)) if self._teacher_is_transformer() else None
        logits = self._teacher_targets(splits, label_names, tokenizer, encoded, teacher)
        representations = self._teacher_representations(splits, tokenizer, encoded, teacher)
        length = self.student.max_length or self.tokens.student_max_length
        settings = TokenSettings(length, self.tokens.truncation, self.tokens.head_fraction)
        data = _distill_data(splits, encoded, logits, settings, SpecialIds.of(tokenizer), representations)
        embedding = self._word2vec(encoded, tokenizer)
        distill = self.distill if logits is not None else dataclasses.replace(self.distill, **HARD_LABELS_ONLY)
        run_dir = self.output_dir or Path(tempfile.mkdtemp(prefix="textdistill-"))
        model, self.training_ = fit_student(
            self.student,
            distill,
            data["train"],
            data["validation"],
            len(tokenizer),
            len(label_names),
            tokenizer.pad_token_id,
            embedding,
            run_dir,
        )
        thresholds = None
        if data["validation"].labels.ndim == 2:  # multi-label: decision thresholds chosen on validation
            validation_logits = predict_logits(model, data["validation"].sequences, tokenizer.pad_token_id)
            thresholds = choose_thresholds(validation_logits, data["validation"].labels).to_dict()
        config = student_config(
            model,
            self.student.name,
            self.student.arch,
            len(tokenizer),
            tokenizer.pad_token_id,
            label_names,
            settings,
            thresholds,
        )
        return Student(model, tokenizer, config)

    def _splits(self, texts, labels, validation, unlabelled) -> tuple[dict[str, tuple[list[str], Any]], list[str]]:
        """{split: (texts, label ids or None)} and the label names (sorted distinct training labels)."""
        train_texts, raw_labels = as_texts(texts, "texts"), pd.Series(list(labels))
        if len(raw_labels) != len(train_texts):
            raise ValueError(f"{len(train_texts)} texts but {len(raw_labels)} labels")
        multi_label = any(is_label_set(value) for value in raw_labels)
        names = _label_names(raw_labels, multi_label)
        if len(names) < 2:
            raise ValueError(f"need at least two distinct labels, got {names}")
        train_ids = _encode(raw_labels, names, "labels", multi_label)
        splits: dict[str, tuple[list[str], Any]] = {}
        if validation is None:
            kept, held = stratified_split(train_ids, self.validation_fraction, self.distill.seed)
            splits["train"] = ([train_texts[i] for i in kept], train_ids[kept])
            splits["validation"] = ([train_texts[i] for i in held], train_ids[held])
        else:
            val_texts, val_labels = as_texts(validation[0], "validation texts"), pd.Series(list(validation[1]))
            if len(val_labels) != len(val_texts):
                raise ValueError(f"validation: {len(val_texts)} texts but {len(val_labels)} labels")
            splits["train"] = (train_texts, train_ids)
            splits["validation"] = (val_texts, _encode(val_labels, names, "validation labels", multi_label))
        if unlabelled is not None and self.teacher is None:
            logger.warning("unlabelled texts are ignored without a teacher to label them")
        elif unlabelled is not None:
            splits["unlabelled"] = (as_texts(unlabelled, "unlabelled"), None)
        return splits, names

    # -- teachers ----------------------------------------------------------------------------------

    def _teacher_targets(self, splits, label_names, tokenizer, encoded, model) -> dict[str, np.ndarray] | None:
        """Teacher logits (n, num_labels) per split, columns in the order of ``label_names``; None: no teacher.
        ``model``: the transformer teacher, loaded (None for the other teachers)."""
        if self.teacher is None:
            return None
        if isinstance(self.teacher, Mapping):
            return _given_logits(self.teacher, splits, len(label_names))
        if str(self.teacher) == "ngram":
            return self._ngram_logits(splits)
        order = _teacher_columns(model.config.id2label, label_names)
        inputs = self._teacher_inputs(tokenizer, encoded, list(splits))
        pad = tokenizer.pad_token_id
        return {name: predict_logits(model, ids, pad, 64, name)[:, order] for name, ids in inputs.items()}

    def _teacher_representations(self, splits, tokenizer, encoded, model) -> dict[str, np.ndarray] | None:
        """With ``distill.representation_weight > 0``: the transformer teacher ``model``'s representations (n, hidden)
        of the texts the student trains on (``RepresentationTap``); else None."""
        if self.distill.representation_weight <= 0:
            return None
        tap = RepresentationTap(model, model.config.num_labels)
        inputs = self._teacher_inputs(tokenizer, encoded, [name for name in splits if name != "validation"])
        pad = tokenizer.pad_token_id
        return {name: predict_logits(tap, ids, pad, 64, f"representations {name}") for name, ids in inputs.items()}

    def _teacher_inputs(self, tokenizer, encoded, names: list[str]) -> dict[str, list[np.ndarray]]:
        """The teacher's inputs (``tokens.teacher_max_length``, truncated, wrapped) of the named splits."""
        settings = TokenSettings(self.tokens.teacher_max_length, self.tokens.truncation, self.tokens.head_fraction)
        return {name: settings.inputs(encoded[name], SpecialIds.of(tokenizer)) for name in names}

    def _ngram_logits(self, splits) -> dict[str, np.ndarray]:
        """The built-in n-gram teacher: C chosen on validation; training rows get out-of-fold logits."""
        train_texts, train_labels = splits["train"]
        val_texts, val_labels = splits["validation"]
        if train_labels.ndim == 2:
            raise ValueError("the n-gram teacher is single-label; give a transformer teacher or logits for label sets")
        teacher = NgramTeacher(self.ngram).fit(train_texts, train_labels, val_texts, val_labels)
        logits = {"train": teacher.out_of_fold_logits(train_texts, train_labels)}
        logits |= {name: teacher.predict_logits(texts) for name, (texts, _) in splits.items() if name != "train"}
        return logits

    def _word2vec(self, encoded: dict[str, EncodedTexts], tokenizer: Any) -> np.ndarray | None:
        """The initial embedding matrix aligned with the vocabulary (None when unused): Word2Vec on the training
        (and unlabelled) token ids, or with ``embeddings.source: teacher`` the teacher's PCA-projected embeddings
        (``embeddings.teacher_model``, else the transformer teacher)."""
        if not (self.student.use_word2vec and self.embeddings.enabled):
            return None
        if pretrained_source(self.student.name, self.student.arch) is not None:
            return None  # the student's embedding comes with its pretrained weights
        sentences = [encoded["train"]] + ([encoded["unlabelled"]] if "unlabelled" in encoded else [])
        vocab_size, pad_id = len(tokenizer), tokenizer.pad_token_id
        if self.embeddings.source == "teacher":
            model = self.embeddings.teacher_model or (str(self.teacher) if self._teacher_is_transformer() else None)
            if model is None:
                raise ValueError("embeddings source 'teacher' needs embeddings.teacher_model or a transformer teacher")
            check_teacher_vocabulary(model, tokenizer_fingerprint(tokenizer))
            return teacher_embedding_matrix(self.embeddings, sentences, vocab_size, pad_id, model).matrix
        vectors = train_word2vec(sentences, self.embeddings)
        return build_matrix(vectors, vocab_size, pad_id, encoded["train"].flat, self.embeddings.seed).matrix


def _load_classifier(name: str) -> Any:
    """A fine-tuned sequence classifier from a local directory, or from the Hugging Face hub by name."""
    if Path(name).expanduser().is_dir():
        return load_teacher(Path(name).expanduser())
    try:
        model = AutoModelForSequenceClassification.from_pretrained(name, dtype=torch.float32)
    except Exception as error:  # hub unreachable, unknown name: one clear message
        raise ValueError(f"teacher {name!r} is neither a directory nor a loadable hub classifier: {error}") from error
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def _given_logits(given: Mapping[str, Any], splits, num_labels: int) -> dict[str, np.ndarray]:
    """Precomputed logits, checked: one (n, num_labels) finite array per split of ``splits``."""
    missing = [name for name in splits if name not in given]
    if missing:
        raise ValueError(f"teacher logits: no {missing} array (given: {sorted(given)}; need one per split)")
    logits = {}
    for name, (texts, _) in splits.items():
        values = np.asarray(given[name], dtype=np.float32)
        if values.shape != (len(texts), num_labels):
            raise ValueError(f"teacher logits[{name!r}]: shape {values.shape}, expected ({len(texts)}, {num_labels})")
        logits[name] = values
    return logits


def _teacher_columns(id2label: Mapping[Any, str], label_names: list[str]) -> list[int]:
    """The teacher's logit column of each of ``label_names``: by name when the teacher names its labels."""
    teacher_names = [str(id2label[i]) for i in sorted(id2label, key=int)]
    if sorted(teacher_names) == sorted(label_names):
        return [teacher_names.index(name) for name in label_names]
    if len(teacher_names) != len(label_names):
        raise ValueError(f"the teacher has {len(teacher_names)} labels {teacher_names}, the data {label_names}")
    logger.warning("teacher labels %s are not the data's %s: assuming the same order", teacher_names, label_names)
    return list(range(len(label_names)))


LABEL_SETS = DataConfig(allow_empty_labels=True)  # the Python API takes label sets as given (an empty set is allowed)


def _label_names(labels: pd.Series, multi_label: bool) -> list[str]:
    """Sorted distinct labels, or every name of every label set."""
    if not multi_label:
        return label_names_from(labels, None)
    return sorted({name for row in label_sets(labels, "labels", LABEL_SETS, None) for name in row})


def _encode(labels: pd.Series, names: list[str], split: str, multi_label: bool) -> np.ndarray:
    """(n,) label ids, or (n, K) multi-hot label sets."""
    if multi_label:
        return multi_hot(label_sets(labels, split, LABEL_SETS, None), names, split)
    return encode_labels(labels, names, split, None)


def _distill_data(
    splits, encoded, logits, settings: TokenSettings, special: SpecialIds, representations=None
) -> dict[str, DistillData]:
    """Training data (unlabelled rows appended, label -1, when a teacher labels them) and validation data; the
    teacher's ``representations`` go with the training rows when given."""
    shape_of_labels = splits["train"][1].shape[1:]  # () or (K,) for label sets

    def data(name: str) -> DistillData:
        labels = splits[name][1]
        if labels is None:
            labels = np.full((len(splits[name][0]), *shape_of_labels), -1)
        teacher_logits = None if logits is None else logits[name]
        teacher_representations = None if representations is None else representations.get(name)
        return DistillData(settings.inputs(encoded[name], special), labels, teacher_logits, teacher_representations)

    train = data("train")
    if "unlabelled" in splits and logits is not None:
        train = DistillData.concatenate([train, data("unlabelled")])
    return {"train": train, "validation": data("validation")}
