"""Typed configuration: one dataclass per concern, loaded from YAML with dotted ``--set`` overrides.

Every dataclass validates itself in ``__post_init__``. Loading rejects unknown keys (naming the valid
ones) and values of the wrong type (naming the key, the expected type and what was given).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message that says which key and why."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


TASKS = ("auto", "single_label", "multi_label")


@dataclass
class DataConfig:
    """Where the labelled data lives and how it is split."""

    path: str = "stanfordnlp/imdb"  # a Hugging Face hub dataset name, or a local dir with train/test files
    text_column: str = "text"  # column holding the text
    label_column: str = "label"  # column holding the label (ints or strings)
    id_column: str = "id"  # optional: the row number is used when the column is absent
    validation_fraction: float = 0.2  # share of the original training set held out for validation (stratified)
    seed: int = 42  # seed of the train/validation split and subsamples
    bad_rows: str = "error"  # "error": reject empty/null/non-text rows; "drop": drop them and report the count
    use_unlabelled: bool = True  # load the optional `unsup` split as a transfer set
    max_train: int | None = None  # stratified subsample of the original training set (smoke runs)
    max_test: int | None = None  # stratified subsample of the test set (smoke runs)
    max_unlabelled: int | None = None  # random subsample of the unlabelled split
    drop_overlap: bool = False  # drop validation/test rows repeating a train text, unlabelled rows repeating val/test
    drop_unlabelled_overlap: bool = False  # drop only unlabelled rows repeating val/test (the teacher is unchanged)
    use_validation_split: bool = True  # use the dataset's own validation split when it has one (else carve from train)
    task: str = "auto"  # single_label, multi_label, or auto: multi_label when the training labels are lists
    label_delimiter: str | None = None  # multi-label labels given as one string, cut at this delimiter (e.g. ",")
    allow_empty_labels: bool = False  # multi-label: a row may carry no label (else such a row is an error)

    def __post_init__(self) -> None:
        _check(0.0 < self.validation_fraction < 1.0, "data.validation_fraction must be in (0, 1)")
        _check(self.task in TASKS, f"data.task must be one of {TASKS}, got {self.task!r}")
        _check(self.label_delimiter != "", "data.label_delimiter must be a non-empty string or null")
        _check(self.bad_rows in ("error", "drop"), "data.bad_rows must be 'error' or 'drop'")
        for name in ("max_train", "max_test", "max_unlabelled"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"data.{name} must be positive or null")


TRUNCATIONS = ("head", "tail", "head+tail")


@dataclass
class TokensConfig:
    """Tokenisation shared by teacher and students (same WordPiece ids, separate lengths)."""

    tokenizer: str | None = None  # null: the teacher's tokenizer (teacher.model)
    teacher_max_length: int = 128  # teacher input length in tokens, [CLS] and [SEP] included
    student_max_length: int = 400  # student input length (the student is cheap per token, so it may read more)
    truncation: str = "head+tail"  # head, tail or head+tail (keep the start and the end of long texts)
    head_fraction: float = 0.25  # share of the budget kept from the start with head+tail (Sun et al. 2019)

    def __post_init__(self) -> None:
        _check(self.truncation in TRUNCATIONS, f"tokens.truncation must be one of {TRUNCATIONS}")
        _check(self.teacher_max_length >= 8, "tokens.teacher_max_length must be at least 8")
        _check(self.student_max_length >= 8, "tokens.student_max_length must be at least 8")
        _check(0.0 <= self.head_fraction <= 1.0, "tokens.head_fraction must be in [0, 1]")


EMBEDDING_SOURCES = ("word2vec", "teacher")


@dataclass
class EmbeddingsConfig:
    """The students' initial embeddings: gensim Word2Vec on the training texts, or the teacher's own (PCA)."""

    enabled: bool = True  # build the matrix and initialise student embeddings from it
    source: str = "word2vec"  # word2vec: trained on the texts; teacher: the teacher's input embeddings, PCA-projected
    vector_size: int = 300  # Word2Vec dimension (= the student's embedding_dim when used)
    window: int = 5  # Word2Vec context window
    min_count: int = 2  # tokens seen fewer times get a random vector instead
    epochs: int = 5  # Word2Vec epochs
    skip_gram: bool = False  # skip-gram instead of CBOW
    include_unlabelled: bool = True  # also train Word2Vec on the unlabelled texts
    seed: int = 42  # Word2Vec seed (bit-exact only with workers: 1)
    workers: int = 2  # Word2Vec worker threads (1 for bit-exact reproducibility)
    teacher_model: str | None = None  # source teacher: model whose input embeddings are used (null: teacher.model)
    teacher_std: float = 0.25  # source teacher: per-element std of the projection (chosen on IMDB validation)

    def __post_init__(self) -> None:
        for name in ("vector_size", "window", "min_count", "epochs", "workers"):
            _check(getattr(self, name) >= 1, f"embeddings.{name} must be at least 1")
        _check(self.source in EMBEDDING_SOURCES, f"embeddings.source must be one of {EMBEDDING_SOURCES}")
        _check(self.teacher_std > 0, "embeddings.teacher_std must be positive")

    def cache_parts(self) -> dict[str, Any]:
        """The settings the matrix depends on (Word2Vec's cache keys are unchanged by the teacher-source keys)."""
        values = dataclasses.asdict(self)
        values.pop("teacher_model")  # with source teacher, the stage keys the model by its weights instead
        if self.source == "word2vec":
            values.pop("source")
            values.pop("teacher_std")
        return values


TEACHER_INFERENCE = ("truncate", "chunks")
CHUNK_AGGREGATES = ("mean", "mean-probs")


@dataclass
class TeacherConfig:
    """Fine-tuning of the BERT-family teacher with the Hugging Face Trainer."""

    model: str = "bert-base-uncased"  # hub name or local save_pretrained dir
    epochs: float = 2.0  # fine-tuning epochs (fractions allowed)
    batch_size: int = 32  # per-device training batch size
    gradient_accumulation: int = 1  # steps accumulated per optimizer step
    body_lr: float = 3e-5  # learning rate of the pretrained body
    head_lr: float = 1e-3  # learning rate of the new classifier head
    warmup_ratio: float = 0.1  # share of steps with linear warmup
    weight_decay: float = 0.01  # AdamW weight decay (not on biases and norms)
    classifier_dropout: float = 0.1  # dropout on the classifier head
    eval_steps: int | None = None  # null: evaluate once per epoch
    mixed_precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU), no, fp16, bf16 (also on a CPU)
    max_train: int | None = None  # fine-tune on a subset (pilots)
    logit_batch_size: int = 64  # batch size of the logit pass and evaluation
    logits_dir: str | None = None  # shipped logits with a manifest: skips fine-tuning (checked against the data)
    int8_logit_pass: bool = False  # CPU only: an ONNX Runtime int8 teacher if it agrees >= 99.5% on validation
    inference: str = "truncate"  # logit pass: truncate (the tokens: cut) or chunks (windows over the whole text)
    chunk_stride: int = 96  # chunks: content tokens between window starts (below teacher_max_length - 2: overlap)
    chunk_aggregate: str = "mean"  # chunks: mean of the window logits, or mean-probs (log of the mean softmax)
    seed: int = 42  # training seed

    def __post_init__(self) -> None:
        _check(self.epochs > 0, "teacher.epochs must be positive")
        _check(self.batch_size >= 1, "teacher.batch_size must be at least 1")
        _check(self.gradient_accumulation >= 1, "teacher.gradient_accumulation must be at least 1")
        _check(self.body_lr > 0, "teacher.body_lr must be positive")
        _check(self.head_lr > 0, "teacher.head_lr must be positive")
        _check(0.0 <= self.warmup_ratio < 1.0, "teacher.warmup_ratio must be in [0, 1)")
        _check(0.0 <= self.classifier_dropout < 1.0, "teacher.classifier_dropout must be in [0, 1)")
        _check(self.mixed_precision in ("auto", "no", "fp16", "bf16"), "teacher.mixed_precision: auto|no|fp16|bf16")
        _check(self.inference in TEACHER_INFERENCE, f"teacher.inference must be one of {TEACHER_INFERENCE}")
        _check(self.chunk_stride >= 1, "teacher.chunk_stride must be at least 1")
        _check(self.chunk_aggregate in CHUNK_AGGREGATES, f"teacher.chunk_aggregate must be one of {CHUNK_AGGREGATES}")


@dataclass
class TransferSource:
    """One source of unlabelled transfer texts: a file (parquet/csv/jsonl) or a directory's ``train`` file."""

    path: str = ""  # required
    column: str = "text"  # the column holding the texts
    max_rows: int | None = None  # at most this many texts, drawn at random (seeded)
    name: str = ""  # names its rows' ids (``<name>:<row>``); default: the file or directory name

    def __post_init__(self) -> None:
        _check(bool(self.path), "transfer.sources[].path is required")
        _check(self.max_rows is None or self.max_rows > 0, "transfer.sources[].max_rows must be positive or null")
        self.name = self.name or Path(self.path).stem


# transfer.negation_forms: which negations the edits toggle (transfer.negation_sites): "copula" was good → was not
# good, "auxiliary" wasn't → was, "verb" I loved → I did not love. The default is the two first, as first measured.
NEGATION_FORMS = ("copula", "auxiliary", "verb")
DEFAULT_NEGATION_FORMS = ("copula", "auxiliary")


@dataclass
class TransferConfig:
    """More transfer texts for the students, labelled by the teacher(s): other sources, augmented training texts."""

    sources: list[dict[str, Any]] = field(default_factory=list)  # [{path, column, max_rows, name}] (other domains)
    augment_copies: int = 0  # augmented copies of every training text (Tang et al. 2019: masking, POS, n-grams)
    mask_probability: float = 0.1  # augmentation: each word replaced by the mask token with this probability
    pos_probability: float = 0.0  # augmentation: else replaced by a same-POS word with this one (Tang et al.: 0.1)
    ngram_probability: float = 0.25  # augmentation: only an n-gram of the masked text kept with this probability
    max_ngram: int = 5  # augmentation: the n-gram's length is uniform in 1..max_ngram
    sentence_spans: int = 0  # spans of consecutive sentences cut from training and in-domain unlabelled texts
    max_span_sentences: int = 3  # a span's sentence count is uniform in 1..max_span_sentences
    negation_edits: int = 0  # such spans with one negation put in or taken out (was good → was not good, wasn't → was)
    negation_forms: list[str] = field(default_factory=lambda: list(DEFAULT_NEGATION_FORMS))  # copula/auxiliary/verb
    seed: int = 42  # sampling of sources, augmentation and sentence spans

    def __post_init__(self) -> None:
        _check(self.augment_copies >= 0, "transfer.augment_copies must be at least 0")
        for name in ("mask_probability", "pos_probability", "ngram_probability"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"transfer.{name} must be in [0, 1]")
        _check(
            self.mask_probability + self.pos_probability <= 1.0,
            "transfer.mask_probability + transfer.pos_probability must be at most 1 (one draw per word picks either)",
        )
        _check(self.max_ngram >= 1, "transfer.max_ngram must be at least 1")
        _check(self.sentence_spans >= 0, "transfer.sentence_spans must be at least 0")
        _check(self.negation_edits >= 0, "transfer.negation_edits must be at least 0")
        unknown_forms = sorted(set(self.negation_forms) - set(NEGATION_FORMS))
        _check(not unknown_forms, f"transfer.negation_forms: unknown {unknown_forms}; valid: {list(NEGATION_FORMS)}")
        _check(self.max_span_sentences >= 1, "transfer.max_span_sentences must be at least 1")
        names = [source.name for source in self.source_entries()]
        _check(len(set(names)) == len(names), f"transfer.sources: names must be unique, got {names}")

    def source_entries(self) -> list[TransferSource]:
        """``sources`` checked and typed (unknown keys name the valid ones)."""
        return [from_dict(TransferSource, dict(s), f"transfer.sources[{i}].") for i, s in enumerate(self.sources)]


TEACHER_KINDS = ("transformer", "ngram", "logits")
RESERVED_TEACHER_NAMES = ("ensemble",)  # the combined target's name in reports


@dataclass
class TeacherEntry:
    """One validated entry of ``teachers:``: a unique name, a kind and that kind's settings.

    ``settings``: for ``ngram`` every ``NgramTeacherConfig`` key (defaults filled in, so they enter cache keys);
    for ``logits`` ``{"path": directory}``; for ``transformer`` nothing (it uses the ``teacher:`` section).
    """

    name: str
    kind: str
    settings: dict[str, Any]


def _ngram_keys() -> list[str]:
    from textdistill.teachers.ngram import NgramTeacherConfig  # on demand: scipy only when an ngram teacher is used

    return [f.name for f in dataclasses.fields(NgramTeacherConfig)]


def _teacher_settings(kind: str, settings: dict[str, Any], where: str) -> dict[str, Any]:
    """The checked kind-specific settings of one entry (unknown keys name the valid ones)."""
    valid = {"transformer": [], "logits": ["path"], "ngram": _ngram_keys() if kind == "ngram" else []}[kind]
    unknown = sorted(set(settings) - set(valid))
    _check(not unknown, f"{where}: unknown key(s) {unknown} for kind {kind!r}; valid keys: {['name', 'kind', *valid]}")
    if kind == "ngram":
        from textdistill.teachers.ngram import NgramTeacherConfig

        return from_dict(NgramTeacherConfig, settings, f"{where}.").to_dict()
    if kind == "logits":
        path = settings.get("path")
        _check(isinstance(path, str) and bool(path), f"{where}.path: a logits directory is required, got {path!r}")
    return dict(settings)


def teacher_entries(entries: list[dict[str, Any]]) -> list[TeacherEntry]:
    """The ``teachers:`` list checked: kinds, keys per kind, unique names, at most one transformer."""
    parsed = []
    for index, entry in enumerate(entries):
        where = f"teachers[{index}]"
        _check(isinstance(entry, dict), f"{where}: expected a mapping {{name, kind, ...}}, got {entry!r}")
        name, kind = entry.get("name"), entry.get("kind")
        _check(isinstance(name, str) and bool(name.strip()), f"{where}.name: a non-empty string is required")
        _check(name not in RESERVED_TEACHER_NAMES, f"{where}.name: {name!r} is reserved; choose another name")
        _check(kind in TEACHER_KINDS, f"{where}.kind: {kind!r} is not a teacher kind; valid kinds: {TEACHER_KINDS}")
        settings = {k: v for k, v in entry.items() if k not in ("name", "kind")}
        parsed.append(TeacherEntry(str(name), str(kind), _teacher_settings(str(kind), settings, f"{where} ({name})")))
    names = [entry.name for entry in parsed]
    _check(len(set(names)) == len(names), f"teachers: names must be unique, got {names}")
    transformers = [entry.name for entry in parsed if entry.kind == "transformer"]
    _check(len(transformers) <= 1, f"teachers: at most one transformer entry (it uses teacher:), got {transformers}")
    return parsed


@dataclass
class StudentConfig:
    """Which student to train; ``arch`` is validated by that student's own config dataclass."""

    name: str = "rnn-attention"  # registered student: cnn, ngram-bag, pretrained-layers, rnn-attention or transformer
    arch: dict[str, Any] = field(default_factory=dict)  # keys of that student's own config (see the student reference)
    use_word2vec: bool = True  # initialise the embedding table from Word2Vec
    freeze_embeddings: bool = False  # keep the embedding table fixed
    max_length: int | None = None  # this student's input length (null: tokens.student_max_length)

    def __post_init__(self) -> None:
        _check(self.max_length is None or self.max_length >= 8, "student.max_length must be at least 8 or null")


@dataclass
class DistillConfig:
    """The hybrid loss and the one student training loop."""

    temperature: float = 2.0  # softmax temperature of the soft term
    soft_weight: float = 1.0  # KL(teacher_T || student_T) * T^2
    hard_weight: float = 0.5  # cross-entropy with the true labels
    sequence_weight: float = 0.0  # cross-entropy toward the teacher's argmax
    mse_weight: float = 0.0  # MSE between logits (Tang et al. 2019)
    confidence_threshold: float = 0.0  # sequence term only where teacher confidence >= this
    representation_weight: float = 0.0  # pull the classifier input toward the teacher's (PKD); needs its model
    use_unlabelled: bool = True  # train on the teacher-labelled transfer set too
    epochs: int = 10  # maximum epochs (early stopping may end sooner)
    batch_size: int = 64  # student batch size
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW weight decay
    grad_clip: float = 1.0  # gradient-norm clipping
    warmup_ratio: float = 0.05  # share of steps with linear warmup, then linear decay
    patience: int = 5  # epochs without validation-loss improvement before stopping
    seed: int = 42  # student training seed
    num_threads: int | None = None  # null: torch's default

    def __post_init__(self) -> None:
        _check(self.temperature > 0, "distill.temperature must be positive")
        weights = (self.soft_weight, self.hard_weight, self.sequence_weight, self.mse_weight)
        _check(all(w >= 0 for w in weights), f"distill.soft/hard/sequence/mse_weight must be >= 0, got {weights}")
        _check(sum(weights) > 0, "distill.soft/hard/sequence/mse_weight: at least one must be positive")
        _check(0.0 <= self.confidence_threshold < 1.0, "distill.confidence_threshold must be in [0, 1)")
        _check(self.representation_weight >= 0, "distill.representation_weight must be >= 0")
        for name in ("epochs", "batch_size", "patience"):
            _check(getattr(self, name) >= 1, f"distill.{name} must be at least 1")
        _check(self.lr > 0, "distill.lr must be positive")


def distill_identity(config: DistillConfig) -> dict[str, Any]:
    """``config`` as a dict for run keys and checkpoint signatures, without the options added since runs were first
    keyed while they are off (so that the runs written before them keep their keys)."""
    values = dataclasses.asdict(config)
    if values["representation_weight"] == 0:
        del values["representation_weight"]
    return values


@dataclass
class CompressConfig:
    """Pruning, quantization and export of the trained student."""

    sparsities: list[float] = field(default_factory=lambda: [0.0, 0.3, 0.5, 0.7, 0.9])  # pruning amounts swept
    quantize: bool = True  # ship model.int8.onnx (ONNX Runtime dynamic int8 of the ONNX export) if it passes the bar
    int8_min_agreement: float = 0.995  # int8 must predict the float student's label on this share of validation
    # int8 variants measured (all ops / all but Conv / embedding tables only); the fastest that passes ships
    int8_scopes: list[str] = field(default_factory=lambda: ["all", "no-conv", "embedding", "static"])  # int8 tried
    # The deployable (students/<tag>/deploy) keeps only the embedding rows of tokens seen this often in the
    # training and unlabelled inputs; the other tokens read [UNK].
    vocabulary_min_count: int | None = None  # vocabulary pruning: keep tokens seen this often in training (null: off)
    export_onnx: bool = True  # export to ONNX and check parity with ONNX Runtime
    onnx_opset: int = 17  # ONNX opset (17 or newer)

    def __post_init__(self) -> None:
        _check(all(0.0 <= s < 1.0 for s in self.sparsities), "compress.sparsities must be in [0, 1)")
        _check(0.0 <= self.int8_min_agreement <= 1.0, "compress.int8_min_agreement must be in [0, 1]")
        _check(
            self.export_onnx or not self.quantize,
            "compress.quantize: true needs compress.export_onnx: true (the int8 model is an ONNX file); "
            "set compress.quantize: false to skip int8",
        )
        _check(self.onnx_opset >= 17, "compress.onnx_opset must be 17 or newer")
        _check(
            bool(self.int8_scopes) and set(self.int8_scopes) <= {"all", "no-conv", "embedding", "static"},
            "compress.int8_scopes must be a non-empty list of: all, no-conv, embedding, static",
        )
        _check(
            self.vocabulary_min_count is None or self.vocabulary_min_count >= 1,
            "compress.vocabulary_min_count must be null or at least 1",
        )


@dataclass
class BenchConfig:
    """Efficiency measurement settings."""

    runs: int = 100  # timed runs per latency measurement
    warmup: int = 10  # untimed runs before timing
    batch_size: int = 32  # batch size of the throughput measurement
    threads: list[int] = field(default_factory=lambda: [1, 0])  # 0: all cores

    def __post_init__(self) -> None:
        _check(self.runs >= 1, "bench.runs must be at least 1")
        _check(self.warmup >= 0, "bench.warmup must be at least 0")


SEARCH_FAMILIES = ("cnn", "ngram-bag", "rnn-attention")
SEARCH_SAMPLERS = ("nsga2", "tpe")


@dataclass
class SearchConfig:
    """``textdistill search``: students swept under a latency and size budget (Optuna multi-objective)."""

    trials: int = 12  # candidates screened (each trained cheaply, then measured as a deployable)
    sampler: str = "nsga2"  # Optuna multi-objective sampler: nsga2 (NSGAIISampler) or tpe (TPESampler)
    seed: int = 42  # sampler seed
    families: list[str] = field(default_factory=lambda: list(SEARCH_FAMILIES))  # student families swept
    embedding_dims: list[int] = field(default_factory=lambda: [32, 64, 100])  # embedding sizes swept
    num_filters: list[int] = field(default_factory=lambda: [32, 64, 100])  # cnn: feature maps per width swept
    hidden_sizes: list[int] = field(default_factory=lambda: [32, 64, 128])  # rnn-attention: hidden size swept
    bigram_buckets: list[int] = field(default_factory=lambda: [0, 20000, 100000])  # ngram-bag: buckets swept
    max_lengths: list[int] = field(default_factory=lambda: [128, 256, 400])  # student input lengths swept
    vocabulary_min_counts: list[int] = field(default_factory=lambda: [1, 3, 10])  # vocabulary pruning swept
    max_latency_ms: float | None = None  # budget: batch-1 latency on one thread of the deployable (null: none)
    max_mb: float | None = None  # budget: megabytes (10^6 bytes) of the deployable's model file (null: none)
    screen_epochs: int = 1  # cheap stage: epochs each candidate trains
    screen_fraction: float = 0.25  # cheap stage: share of the training examples each candidate trains on
    top_k: int = 3  # full stage: the best of the cheap Pareto front (validation accuracy) retrained fully
    latency_runs: int = 30  # timed batch-1 calls per round (3 rounds, the lowest median kept)

    def __post_init__(self) -> None:
        _check(self.trials >= 1, "search.trials must be at least 1")
        _check(self.sampler in SEARCH_SAMPLERS, f"search.sampler must be one of {SEARCH_SAMPLERS}")
        _check(
            bool(self.families) and set(self.families) <= set(SEARCH_FAMILIES),
            f"search.families must be a non-empty list of: {', '.join(SEARCH_FAMILIES)}",
        )
        for name in ("embedding_dims", "num_filters", "hidden_sizes", "max_lengths", "vocabulary_min_counts"):
            values = getattr(self, name)
            _check(
                bool(values) and all(v >= 1 for v in values), f"search.{name} must be a non-empty list of ints >= 1"
            )
        _check(
            bool(self.bigram_buckets) and all(v >= 0 for v in self.bigram_buckets),
            "search.bigram_buckets must be a non-empty list of ints >= 0",
        )
        _check(all(v >= 8 for v in self.max_lengths), "search.max_lengths must be at least 8")
        for name in ("max_latency_ms", "max_mb"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"search.{name} must be positive or null")
        _check(self.screen_epochs >= 1, "search.screen_epochs must be at least 1")
        _check(0.0 < self.screen_fraction <= 1.0, "search.screen_fraction must be in (0, 1]")
        _check(self.top_k >= 1, "search.top_k must be at least 1")
        _check(self.latency_runs >= 1, "search.latency_runs must be at least 1")


ROBUSTNESS_SETTINGS = ("auto", "on", "off")


@dataclass
class DomainCheck:
    """A check on another dataset's texts with its own labels mapped to this task's positive and negative label:
    a file (parquet/csv/jsonl), a directory's ``split`` file or a hub dataset's ``split``. A row whose label (or,
    multi-label, every label) is in ``positive`` expects the positive label, in ``negative`` the negative one; the
    other rows (mixed, neutral, unlisted) are left out."""

    path: str = ""  # required
    positive: list[str] = field(default_factory=list)  # label names that mean the positive label (required)
    negative: list[str] = field(default_factory=list)  # label names that mean the negative label (required)
    split: str = "test"  # never the split the transfer texts come from
    column: str = "text"  # the column holding the texts
    label_column: str = "label"  # a label name per row, or a list of them (multi-label)
    max_rows: int | None = None  # at most this many rows, drawn at random (report.robustness_seed)
    name: str = ""  # the check is "domain: <name>"; default: the file or directory name

    def __post_init__(self) -> None:
        _check(bool(self.path), "path is required")
        _check(bool(self.positive) and bool(self.negative), "positive and negative (label names) are required")
        both = sorted(set(self.positive) & set(self.negative))
        _check(not both, f"labels {both} are both positive and negative")
        _check(self.max_rows is None or self.max_rows > 0, "max_rows must be positive or null")
        self.name = self.name or Path(self.path).stem


@dataclass
class ReportConfig:
    """What the run report holds beyond the results table: the behavioural (robustness) checks."""

    robustness: str | bool = "auto"  # checks from validation texts: auto (binary, positive label known), on, off
    positive_label: str | None = None  # robustness: the positive label's name (null: 1, pos or positive)
    robustness_max_per_check: int = 300  # robustness: rows per check (seeded sample)
    robustness_seed: int = 42  # robustness: seed of the sampling and of the random edits
    domain_checks: list[dict[str, Any]] = field(default_factory=list)  # checks on other datasets: [{path, ...}]

    def __post_init__(self) -> None:
        if isinstance(self.robustness, bool):  # YAML 1.1 reads a bare on/off as true/false
            self.robustness = "on" if self.robustness else "off"
        _check(self.robustness in ROBUSTNESS_SETTINGS, f"report.robustness must be one of {ROBUSTNESS_SETTINGS}")
        _check(self.robustness_max_per_check >= 1, "report.robustness_max_per_check must be at least 1")
        names = [check.name for check in self.domain_check_entries()]
        _check(len(set(names)) == len(names), f"report.domain_checks: names must be unique, got {names}")

    def domain_check_entries(self) -> list[DomainCheck]:
        """``domain_checks`` checked and typed (unknown keys name the valid ones)."""
        return [
            from_dict(DomainCheck, dict(c), f"report.domain_checks[{i}].") for i, c in enumerate(self.domain_checks)
        ]


@dataclass
class Config:
    """The whole run: one section per concern."""

    out_dir: str = "runs/default"  # run directory: resolved config, metrics, report, models
    cache_dir: str = ".cache/textdistill"  # content-addressed cache of tokens, embeddings, teachers, logits
    data: DataConfig = field(default_factory=DataConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    students: list[dict[str, Any]] = field(default_factory=list)  # more students: [{tag, student, distill}]
    teachers: list[dict[str, Any]] = field(default_factory=list)  # ensembled [{name, kind: transformer/ngram/logits}]
    transfer: TransferConfig = field(default_factory=TransferConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        teacher_entries(self.teachers)  # every entry checked at load, before any stage
        window = self.tokens.teacher_max_length - 2  # content tokens per window, [CLS] and [SEP] aside
        _check(
            self.teacher.inference != "chunks" or self.teacher.chunk_stride <= window,
            f"teacher.chunk_stride ({self.teacher.chunk_stride}) must not exceed tokens.teacher_max_length - 2 "
            f"({window}): windows would skip tokens",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def tokenizer_name(self) -> str:
        return self.tokens.tokenizer or self.teacher.model


# ---------------------------------------------------------------------------------------------------
# Generic loading machinery


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a resolved type annotation, allowing int where float is expected."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin in (list, dict):
        _check(isinstance(value, origin), f"{key}: expected {_type_name(annotation)}, got {value!r}")
        if origin is list:
            (item_type,) = typing.get_args(annotation)
            return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return dict(value)
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads "1e-3" as a string
    ok = isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
    _check(ok, f"{key}: expected {_type_name(annotation)}, got {value!r} ({type(value).__name__})")
    return value


def from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict; unknown keys and wrong types are ConfigErrors."""
    _check(isinstance(values, dict), f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(valid))
    _check(not unknown, f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys here: {valid}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, {} if value is None else value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError as error:
        section = prefix.rstrip(".")
        raise ConfigError(f"{section}: {error}" if section and section not in str(error) else str(error)) from None


def apply_override(values: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML (``1e-3``, ``[1, 2]``)."""
    _check("=" in assignment, f"--set expects dotted.key=value, got {assignment!r}")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    node = values
    for key in keys[:-1]:
        if node.get(key) is None:  # absent, or an empty section (`data:` in YAML)
            node[key] = {}
        node = node[key]
        _check(isinstance(node, dict), f"--set {dotted}: {key} is not a section")
    node[keys[-1]] = _parse_yaml(raw, f"--set {assignment}") if raw.strip() else ""


def _parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)``; a syntax error is a ConfigError naming ``source``, the line and the column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        detail = f"{context}, {problem}" if context else problem
        raise ConfigError(f"{source}: invalid YAML{where}: {detail}") from None


def _expand_env(node: Any) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in string values (paths given by environment variables)."""
    if isinstance(node, dict):
        return {k: _expand_env(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v) for v in node]
    if isinstance(node, str) and "${" in node:
        return _substitute(node)
    return node


def _substitute(text: str) -> str:
    out, rest = "", text
    while "${" in rest:
        before, _, after = rest.partition("${")
        inner, _, rest = after.partition("}")
        name, _, default = inner.partition(":-")
        out += before + os.environ.get(name, default)
    return out + rest


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}): is this a YAML config?") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply dotted overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        _check(path.is_file(), f"config file not found: {path}")
        loaded = _parse_yaml(_read_text(path), str(path))
        _check(loaded is None or isinstance(loaded, dict), f"{path}: the top level must be a mapping")
        values = loaded or {}
    for assignment in overrides or []:
        apply_override(values, assignment)
    return from_dict(Config, _expand_env(values))


def dump_config(config: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in the dataclass source: the meaning shown in the reference."""
    import inspect

    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?  # (.*)$", line)
        if match:
            comments[match.group(1)] = match.group(2)
    return comments


def reference_markdown() -> str:
    """Every config key with its type, default and meaning, generated from the dataclasses (cannot drift)."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    defaults = Config()
    for section in dataclasses.fields(Config):
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            lines += field_rows(value, f"{section.name}.")
        else:
            comment = _field_comments(Config).get(section.name, "")
            row = (section.name, _cell_type(typing.get_type_hints(Config)[section.name]), json_default(value), comment)
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def field_rows(defaults: Any, prefix: str = "") -> list[str]:
    """``| prefix + key | type | default | meaning |`` for every field of the dataclass instance ``defaults``; the
    meaning is the field's trailing comment."""
    cls = type(defaults)
    comments, hints = _field_comments(cls), typing.get_type_hints(cls)
    rows = [
        (prefix + f.name, _cell_type(hints[f.name]), json_default(getattr(defaults, f.name)), comments.get(f.name, ""))
        for f in dataclasses.fields(cls)
    ]
    return ["| " + " | ".join(row) + " |" for row in rows]


def _cell_type(annotation: Any) -> str:
    return _type_name(annotation).replace(" | ", " or ")


def json_default(value: Any) -> str:
    import json

    return f"`{json.dumps(value)}`"
