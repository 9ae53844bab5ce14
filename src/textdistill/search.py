"""Search under a budget: students swept by an Optuna multi-objective sampler, kept within latency and size limits.

Each candidate (student family and size, input length, vocabulary ``min_count``) is trained **cheaply** first (a
``search.screen_fraction`` share of the training examples for ``search.screen_epochs`` epochs, with the run's one
training loop) and made into its deployable (vocabulary pruned, ONNX, int8 where it pays: ``deploy.deployables``).
Three objectives are measured on this machine: validation accuracy of the deployable variant that would ship
(maximise), its batch-1 latency on one thread in ms and the bytes of its model file (minimise). The budget
(``search.max_latency_ms``, ``search.max_mb``) enters Optuna as constraints (``Trial.set_constraint``: a value <= 0
is met), so the sampler (NSGA-II or multi-objective TPE) prefers candidates within it.

Optuna's pruners (successive halving, Hyperband) do not apply to multi-objective studies (``Trial.report`` is
single-objective only), so the successive halving here has two rungs: every candidate is screened cheaply, and only
the ``search.top_k`` most accurate candidates of the screened Pareto front that meet the budget are trained fully
(every training example, ``distill.epochs``) and measured again. The chosen model is the most accurate (validation)
fully trained candidate within the budget; it alone is scored on test, once. Nothing is selected on test.

Writes ``out_dir/search/``: ``search.json`` (every trial, the fronts, the choice), ``pareto.md``, ``pareto.png``,
``chosen/`` (the chosen deployable: a saved Student directory with its ONNX files) and ``study.journal`` (the Optuna
study, from which an interrupted search resumes).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textdistill.api import fit_student
from textdistill.bench import bytes_on_disk
from textdistill.cache import array_digest, atomic_write_json, atomic_write_text, digest
from textdistill.compress import ONNX_INT8_NAME, ONNX_NAME, OnnxModule
from textdistill.config import Config, ConfigError, SearchConfig, StudentConfig, distill_identity
from textdistill.deploy import batch1_latencies, choose_variant, deployables, measure_variants, training_inputs
from textdistill.inference import predict_logits
from textdistill.metrics import agreement
from textdistill.multilabel import score_logits
from textdistill.pipeline import Prepared, embeddings_for, prepare_data, student_inputs, teacher_logits_for
from textdistill.plans import StudentPlan
from textdistill.students.hub import WEIGHTS_NAME, save_student
from textdistill.tokens import TokenSettings
from textdistill.train import DistillData

logger = logging.getLogger(__name__)

SEARCH_DIR = "search"  # in the run directory
CHOSEN_DIR = "chosen"  # in SEARCH_DIR: the chosen deployable
MB = 1_000_000  # search.max_mb counts megabytes of 10^6 bytes


class BudgetNotMet(ValueError):
    """No candidate meets ``search.max_latency_ms`` and ``search.max_mb``; the search's files are still written."""


@dataclass
class Candidate:
    """One point of the search space: a student family, its arch, its input length and vocabulary ``min_count``."""

    family: str
    arch: dict[str, Any]
    max_length: int
    vocabulary_min_count: int

    def label(self) -> str:
        """A short readable name, e.g. ``cnn num_filters=64 embedding_dim=32 L=256 min_count=3``."""
        sizes = " ".join(f"{key}={value}" for key, value in self.arch.items() if isinstance(value, int))
        return f"{self.family} {sizes} L={self.max_length} min_count={self.vocabulary_min_count}"


@dataclass
class Measurement:
    """A trained candidate as a deployable: the objectives and what they were measured on."""

    validation_accuracy: float  # of the variant that ships (``variant``), on the whole validation split
    latency_ms: float  # batch-1 median on one thread (lowest of 3 interleaved rounds)
    bytes: int  # the variant's model file
    variant: str  # "pytorch float", "onnx float" or "onnx int8 (<scope>)": the fastest passing the int8 bar
    agreement_with_float: float  # label agreement of the variant with the trained (unpruned) student, validation
    kept_rows: int | None  # embedding rows kept by vocabulary pruning
    directory: str  # the deployable's directory
    training: dict[str, Any] = field(default_factory=dict)  # best epoch, validation loss, wall seconds

    @property
    def megabytes(self) -> float:
        return self.bytes / MB


# ---------------------------------------------------------------------------------------------------
# Pure pieces: the search space, the budget and the Pareto front


def suggest_candidate(trial: Any, search: SearchConfig) -> Candidate:
    """The candidate Optuna's ``trial`` proposes from the lists of ``search`` (every choice is categorical)."""
    family = trial.suggest_categorical("family", list(search.families))
    dim = trial.suggest_categorical("embedding_dim", list(search.embedding_dims))
    arch: dict[str, Any] = {"embedding_dim": dim}
    if family == "cnn":
        arch["num_filters"] = trial.suggest_categorical("num_filters", list(search.num_filters))
    elif family == "rnn-attention":
        hidden = trial.suggest_categorical("hidden_size", list(search.hidden_sizes))
        arch |= {"hidden_size": hidden, "num_layers": 1, "attention_dim": hidden}
    else:
        arch["bigram_buckets"] = trial.suggest_categorical("bigram_buckets", list(search.bigram_buckets))
    max_length = trial.suggest_categorical("max_length", list(search.max_lengths))
    min_count = trial.suggest_categorical("vocabulary_min_count", list(search.vocabulary_min_counts))
    return Candidate(family, arch, int(max_length), int(min_count))


def budget_violations(latency_ms: float, megabytes: float, search: SearchConfig) -> list[float]:
    """Optuna constraint values: ``[latency - max_latency_ms, megabytes - max_mb]`` (<= 0: met; 0 without a limit)."""
    return [
        0.0 if search.max_latency_ms is None else latency_ms - search.max_latency_ms,
        0.0 if search.max_mb is None else megabytes - search.max_mb,
    ]


def within_budget(latency_ms: float, megabytes: float, search: SearchConfig) -> bool:
    return all(value <= 0 for value in budget_violations(latency_ms, megabytes, search))


def pareto_front(points: list[tuple[float, float, float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates; a point is (accuracy ↑, latency ↓, bytes ↓).

    ``a`` dominates ``b`` when it is at least as good in all three and strictly better in one; equal points do not
    dominate each other (both stay on the front).
    """

    def dominates(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
        no_worse = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2]
        return no_worse and (a[0] > b[0] or a[1] < b[1] or a[2] < b[2])

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


# ---------------------------------------------------------------------------------------------------
# Training and measuring one candidate


@dataclass
class _Context:
    """What every trial shares: the config, the prepared data, the teacher's logits and the embeddings by size."""

    config: Config
    prepared: Prepared
    logits: dict[str, np.ndarray] | None
    out: Path
    embeddings: dict[int, np.ndarray | None] = field(default_factory=dict)

    def embedding(self, dim: int) -> np.ndarray | None:
        """The initial embedding matrix (vocab, dim) at this size (cached by the embeddings stage), or None."""
        config = self.config
        if not (config.embeddings.enabled and config.student.use_word2vec):
            return None
        if dim not in self.embeddings:
            sized = dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, vector_size=dim))
            self.embeddings[dim] = embeddings_for(sized, self.prepared).matrix
        return self.embeddings[dim]

    def data(self, split: str, max_length: int) -> DistillData:
        labels = self.prepared.dataset.splits()[split].labels
        inputs = student_inputs(self.config, self.prepared, split, max_length)
        return DistillData(inputs, labels, None if self.logits is None else self.logits[split])

    def train_data(self, max_length: int) -> DistillData:
        parts = [self.data("train", max_length)]
        if self.logits is not None and self.config.distill.use_unlabelled and "unlabelled" in self.logits:
            parts.append(self.data("unlabelled", max_length))
        return DistillData.concatenate(parts)


def subset(data: DistillData, fraction: float, seed: int) -> DistillData:
    """A seeded random ``fraction`` of ``data``'s rows (at least one), in their original order."""
    if fraction >= 1.0:
        return data
    count = max(1, math.ceil(fraction * len(data)))
    rows = np.sort(np.random.default_rng(seed).permutation(len(data))[:count])
    teacher = None if data.teacher_logits is None else data.teacher_logits[rows]
    return DistillData([data.sequences[i] for i in rows], data.labels[rows], teacher)


def train_candidate(context: _Context, candidate: Candidate, directory: Path, *, screen: bool) -> dict[str, Any]:
    """Train ``candidate`` with the one training loop (``fit_student``) and save it to ``directory/model``.

    ``screen``: the cheap stage (``search.screen_fraction`` of the training rows, ``search.screen_epochs``);
    otherwise every training row for ``distill.epochs``. Returns the training result's summary.
    """
    config, search, prepared = context.config, context.config.search, context.prepared
    student = StudentConfig(
        name=candidate.family,
        arch=candidate.arch,
        use_word2vec=config.student.use_word2vec,
        freeze_embeddings=config.student.freeze_embeddings,
        max_length=candidate.max_length,
    )
    distill, train = config.distill, context.train_data(candidate.max_length)
    if screen:
        distill = dataclasses.replace(distill, epochs=search.screen_epochs)
        train = subset(train, search.screen_fraction, config.data.seed)
    validation = context.data("validation", candidate.max_length)
    pad = prepared.tokenizer.pad_token_id
    model, result = fit_student(
        student,
        distill,
        train,
        validation,
        len(prepared.tokenizer),
        len(prepared.dataset.label_names),
        pad,
        context.embedding(int(candidate.arch["embedding_dim"])),
        directory / "train",
    )
    tokens = TokenSettings(candidate.max_length, config.tokens.truncation, config.tokens.head_fraction)
    save_student(
        model,
        directory / "model",
        name=candidate.family,
        arch=candidate.arch,
        label_names=prepared.dataset.label_names,
        tokenizer=prepared.tokenizer,
        tokens=tokens,
        card_extra={"search": "screened" if screen else "fully trained", "candidate": candidate.label()},
    )
    return {
        "train_examples": len(train),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "wall_seconds": result.wall_seconds,
    }


def measure_candidate(context: _Context, candidate: Candidate, directory: Path) -> Measurement:
    """The trained student in ``directory/model`` as a deployable (``deployables``: vocabulary pruned to
    ``candidate.vocabulary_min_count``, ONNX and int8 per ``compress``), and the variant that would ship
    (``choose_variant``: the fastest whose validation agreement with the float student passes
    ``compress.int8_min_agreement``) with its validation accuracy, latency and bytes."""
    config, prepared = context.config, context.prepared
    compress = dataclasses.replace(config.compress, vocabulary_min_count=candidate.vocabulary_min_count)
    sized = dataclasses.replace(config, compress=compress)
    validation = context.data("validation", candidate.max_length)
    training = training_inputs(config, prepared, candidate.max_length)
    runs = config.search.latency_runs
    made = deployables(sized, directory / "model", validation.sequences, training, runs)
    deploy_dir, student = Path(made["directory"]), made["student"]
    rows = _variant_rows(made, validation.sequences, runs)
    chosen = choose_variant(rows, config.compress.int8_min_agreement)
    assert chosen is not None  # the float student agrees with itself
    module = _variant_module(chosen["name"], student, deploy_dir)
    pad = prepared.tokenizer.pad_token_id
    logits = predict_logits(module, validation.sequences, pad)
    float_logits = predict_logits(made["models"]["float"], validation.sequences, pad)
    vocabulary = made["vocabulary"] or {}
    return Measurement(
        validation_accuracy=float(score_logits(logits, validation.labels).to_dict()["accuracy"]),
        latency_ms=float(chosen["latency_ms_p50"]),
        bytes=int(chosen["bytes"]),
        variant=chosen["name"],
        agreement_with_float=agreement(logits, float_logits),
        kept_rows=vocabulary.get("kept_rows"),
        directory=str(deploy_dir),
    )


def _variant_rows(made: dict[str, Any], validation: list[np.ndarray], runs: int) -> list[dict[str, Any]]:
    """Every measured variant of a deployable (``ship_int8``'s rows, else the float ones measured here)."""
    if made["int8"] is not None:
        return made["int8"]["variants"]
    student, directory = made["student"], Path(made["directory"])
    if (directory / ONNX_NAME).is_file():
        return measure_variants(student, directory / ONNX_NAME, {}, validation, runs)
    from textdistill.bench import fixed_length_batch

    pad = student.config["pad_id"]
    single = fixed_length_batch(validation, student.token_settings.max_length, 1, pad)
    latency = batch1_latencies({"pytorch float": student.model}, single, runs)["pytorch float"]
    row = {"name": "pytorch float", "scope": None, "bytes": bytes_on_disk(directory / WEIGHTS_NAME)}
    return [row | {"agreement": 1.0, "latency_ms_p50": latency}]


def _variant_module(name: str, student: Any, directory: Path) -> Any:
    """The module that runs variant ``name`` of the deployable in ``directory``."""
    if name == "pytorch float":
        return student.model
    if name == "onnx float":
        return OnnxModule(directory / ONNX_NAME, num_threads=1)
    return OnnxModule(directory / ONNX_INT8_NAME, num_threads=1)  # ship_int8 saved the chosen int8 file there


# ---------------------------------------------------------------------------------------------------
# The search


def _objective(context: _Context, records: list[dict[str, Any]]):
    """Optuna's objective: screen one candidate; returns (validation accuracy, latency ms, megabytes)."""
    search = context.config.search

    def objective(trial: Any) -> tuple[float, float, float]:
        candidate = suggest_candidate(trial, search)
        earlier = next((r for r in records if r["candidate"] == candidate), None)
        if earlier is not None:  # samplers may propose a point again: its measurement stands, nothing is retrained
            logger.info("search trial %d: %s is trial %d again", trial.number, candidate.label(), earlier["trial"])
            trial.set_user_attr("same_as", earlier["trial"])
            _set_budget(trial, earlier["screen"].latency_ms, earlier["screen"].megabytes, search)
            return _objectives(earlier["screen"])
        directory = context.out / "trials" / f"{trial.number:03d}"
        logger.info("search trial %d: %s (screening)", trial.number, candidate.label())
        training = train_candidate(context, candidate, directory, screen=True)
        measured = measure_candidate(context, candidate, directory)
        measured.training = training
        _set_budget(trial, measured.latency_ms, measured.megabytes, search)
        records.append({"trial": trial.number, "candidate": candidate, "screen": measured})
        for key, value in (("candidate", candidate), ("screen", measured)):  # kept in the study: a resume reads them
            trial.set_user_attr(key, json.loads(json.dumps(dataclasses.asdict(value), default=float)))
        logger.info(
            "search trial %d: validation accuracy %.4f, %.3f ms, %.3f MB (%s)",
            trial.number,
            measured.validation_accuracy,
            measured.latency_ms,
            measured.megabytes,
            measured.variant,
        )
        return _objectives(measured)

    return objective


def _objectives(measured: Measurement) -> tuple[float, float, float]:
    """What Optuna optimises: (validation accuracy, latency ms, megabytes)."""
    return measured.validation_accuracy, measured.latency_ms, measured.megabytes


def _set_budget(trial: Any, latency_ms: float, megabytes: float, search: SearchConfig) -> None:
    """The budget as Optuna constraints of ``trial`` (``Trial.set_constraint``; <= 0 is met), which the samplers
    use to prefer feasible candidates."""
    for key, value in zip(("latency_ms", "megabytes"), budget_violations(latency_ms, megabytes, search), strict=True):
        trial.set_constraint(key, value)


def make_sampler(search: SearchConfig) -> Any:
    """Optuna's multi-objective sampler (NSGA-II or multi-objective TPE); both honour the trials' constraints."""
    import optuna

    if search.sampler == "tpe":
        startup = max(1, search.trials // 3)
        return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=startup)
    population = max(2, min(50, search.trials // 3))
    return optuna.samplers.NSGAIISampler(population_size=population, seed=search.seed)


def search_stage(config: Config, prepared: Prepared | None = None) -> dict[str, Any]:
    """Run the search of ``config.search`` (see the module docstring); returns what ``search.json`` holds.

    An interrupted search resumes: the study lives in ``search/study.journal`` (Optuna's journal storage) with each
    screened candidate's measurement, so a second call with the same settings screens only the trials still missing
    (a larger ``search.trials`` extends it); other settings start a new study. Raises ``BudgetNotMet`` (after
    writing the files) when no candidate meets the budget.
    """
    import optuna

    prepared = prepared or prepare_data(config)
    if prepared.dataset.multi_label:
        raise ConfigError("textdistill search: single-label data only (its objective is validation accuracy)")
    plan = StudentPlan("search", config.student, config.distill)
    if plan.uses_representations:
        raise ConfigError("textdistill search: distill.representation_weight is not searched yet; set it to 0")
    logits = teacher_logits_for(config, prepared)[1] if plan.uses_teacher else None
    out = Path(config.out_dir) / SEARCH_DIR
    study = _open_study(out, _study_identity(config, prepared, logits), config.search)
    context = _Context(config, prepared, logits, out)
    records = _screened_records(study)
    remaining = config.search.trials - len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    if records:
        logger.info("search: resuming with %d screened trials, %d to go", len(records), max(remaining, 0))
    if remaining > 0:
        study.optimize(_objective(context, records), n_trials=remaining, show_progress_bar=True)
    repeats = {t.number: t.user_attrs["same_as"] for t in study.trials if "same_as" in t.user_attrs}
    return _finish(context, records, repeats)


def _study_identity(config: Config, prepared: Prepared, logits: dict[str, np.ndarray] | None) -> str:
    """What a study's trials depend on: the config (but its ``trials`` and output place), the data and the
    teacher's logits."""
    settings = dataclasses.asdict(config)
    for key in ("out_dir", "cache_dir"):
        settings.pop(key, None)
    settings["search"].pop("trials")
    settings["distill"] = distill_identity(config.distill)  # studies made before an option keep their identity
    logit_digests = {split: array_digest(values) for split, values in (logits or {}).items()}
    return digest({"config": settings, "data": prepared.dataset.fingerprints(), "logits": logit_digests})


def _open_study(out: Path, identity: str, search: SearchConfig) -> Any:
    """The study stored in ``out`` when it was made with ``identity``; otherwise ``out`` is cleared and a new one
    made (its trials belong to other settings)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    identity_path = out / "identity.json"
    stored = json.loads(identity_path.read_text())["identity"] if identity_path.is_file() else None
    if stored != identity:
        if out.exists():
            logger.info("search: %s holds a search with other settings; starting a new one", out)
            shutil.rmtree(out)
        out.mkdir(parents=True)
        atomic_write_json(identity_path, {"identity": identity})
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial is logged here, with its candidate
    return optuna.create_study(
        study_name="search",
        storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))),
        load_if_exists=True,
        directions=["maximize", "minimize", "minimize"],
        sampler=make_sampler(search),
    )


def _screened_records(study: Any) -> list[dict[str, Any]]:
    """The screened candidates of the study's finished trials (a repeated candidate is one record)."""
    import optuna

    records = []
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if "screen" in trial.user_attrs:
            candidate = Candidate(**trial.user_attrs["candidate"])
            records.append(
                {"trial": trial.number, "candidate": candidate, "screen": Measurement(**trial.user_attrs["screen"])}
            )
    return records


def _finish(context: _Context, records: list[dict[str, Any]], repeats: dict[int, int]) -> dict[str, Any]:
    """Retrain the promising candidates fully, choose one within the budget, score it on test, write the files."""
    search = context.config.search
    screened = [_point(r["screen"]) for r in records]
    feasible = [i for i, r in enumerate(records) if _feasible(r["screen"], search)]
    front = [feasible[i] for i in pareto_front([screened[i] for i in feasible])]
    promising = sorted(front, key=lambda i: -records[i]["screen"].validation_accuracy)[: search.top_k]
    if not feasible:
        logger.warning(
            "search: no screened candidate meets the budget (%s); nothing is trained fully", _budget(search)
        )
    for index in promising:
        record = records[index]
        directory = context.out / "trials" / f"{record['trial']:03d}-full"
        logger.info("search: training trial %d fully: %s", record["trial"], record["candidate"].label())
        training = train_candidate(context, record["candidate"], directory, screen=False)
        record["full"] = measure_candidate(context, record["candidate"], directory)
        record["full"].training = training
    full = [i for i, r in enumerate(records) if "full" in r]
    full_front = [full[i] for i in pareto_front([_point(records[i]["full"]) for i in full])]
    chosen_index = _choose(records, full, search)
    result: dict[str, Any] = {
        "budget": {"max_latency_ms": search.max_latency_ms, "max_mb": search.max_mb},
        "search": dataclasses.asdict(search),
        "objectives": ["validation_accuracy (max)", "latency_ms (min, batch 1, one thread)", "bytes (min)"],
        "trials": [_trial_row(r, i in front, i in full_front) for i, r in enumerate(records)],
        "repeated_trials": {str(number): same for number, same in repeats.items()},  # trial: the earlier one
        "screen_front": [records[i]["trial"] for i in front],
        "full_front": [records[i]["trial"] for i in full_front],
        "chosen": None,
    }
    if chosen_index is None:
        result["message"] = _no_candidate_message(records, search)
        logger.warning("search: %s", result["message"])
    else:
        result["chosen"] = _score_chosen(context, records[chosen_index])
    _write(context.out, result, records)
    if chosen_index is None:
        raise BudgetNotMet(f"{result['message']} (see {context.out / 'pareto.md'})")
    return result


def _point(measured: Measurement) -> tuple[float, float, float]:
    return measured.validation_accuracy, measured.latency_ms, float(measured.bytes)


def _feasible(measured: Measurement, search: SearchConfig) -> bool:
    return within_budget(measured.latency_ms, measured.megabytes, search)


def _budget(search: SearchConfig) -> str:
    latency = "none" if search.max_latency_ms is None else f"{search.max_latency_ms:g} ms"
    size = "none" if search.max_mb is None else f"{search.max_mb:g} MB"
    return f"latency <= {latency}, size <= {size}"


def _choose(records: list[dict[str, Any]], full: list[int], search: SearchConfig) -> int | None:
    """The fully trained candidate within the budget with the best validation accuracy (then lowest latency)."""
    meeting = [i for i in full if _feasible(records[i]["full"], search)]
    if not meeting:
        return None
    return max(meeting, key=lambda i: (records[i]["full"].validation_accuracy, -records[i]["full"].latency_ms))


def _no_candidate_message(records: list[dict[str, Any]], search: SearchConfig) -> str:
    """Why nothing was chosen, naming the fastest and the smallest candidate measured."""
    measured = [r.get("full") or r["screen"] for r in records]
    fastest = min(measured, key=lambda m: m.latency_ms)
    smallest = min(measured, key=lambda m: m.bytes)
    return (
        f"no candidate meets the budget ({_budget(search)}) after {len(records)} trials; the fastest took "
        f"{fastest.latency_ms:.3f} ms ({fastest.megabytes:.3f} MB), the smallest {smallest.megabytes:.3f} MB "
        f"({smallest.latency_ms:.3f} ms): raise search.max_latency_ms / search.max_mb or add smaller sizes"
    )


def _score_chosen(context: _Context, record: dict[str, Any]) -> dict[str, Any]:
    """Score the chosen deployable's shipped variant on test (once) and copy its directory to ``chosen/``."""
    candidate, measured = record["candidate"], record["full"]
    prepared = context.prepared
    from textdistill.students.hub import Student

    student = Student.from_pretrained(measured.directory)
    module = _variant_module(measured.variant, student, Path(measured.directory))
    test = context.data("test", candidate.max_length)
    logits = predict_logits(module, test.sequences, prepared.tokenizer.pad_token_id)
    scores = score_logits(logits, test.labels, test.teacher_logits).to_dict()
    target = context.out / CHOSEN_DIR
    shutil.rmtree(target, ignore_errors=True)  # a resumed search chooses again
    shutil.copytree(measured.directory, target)
    logger.info(
        "search: chose trial %d (%s): validation %.4f, test %.4f, %.3f ms, %.3f MB -> %s",
        record["trial"],
        candidate.label(),
        measured.validation_accuracy,
        scores["accuracy"],
        measured.latency_ms,
        measured.megabytes,
        target,
    )
    return {
        "trial": record["trial"],
        "candidate": candidate.label(),
        "directory": str(target),
        "model_file": _model_file(measured.variant),
        "variant": measured.variant,
        "validation_accuracy": measured.validation_accuracy,
        "latency_ms": measured.latency_ms,
        "bytes": measured.bytes,
        "test": scores,
    }


def _model_file(variant: str) -> str:
    return {"pytorch float": WEIGHTS_NAME, "onnx float": ONNX_NAME}.get(variant, ONNX_INT8_NAME)


def _trial_row(record: dict[str, Any], on_screen_front: bool, on_full_front: bool) -> dict[str, Any]:
    candidate = record["candidate"]
    row = {
        "trial": record["trial"],
        "candidate": candidate.label(),
        "family": candidate.family,
        "arch": candidate.arch,
        "max_length": candidate.max_length,
        "vocabulary_min_count": candidate.vocabulary_min_count,
        "screen": dataclasses.asdict(record["screen"]),
        "on_screen_front": on_screen_front,
    }
    if "full" in record:
        row |= {"full": dataclasses.asdict(record["full"]), "on_full_front": on_full_front}
    return row


# ---------------------------------------------------------------------------------------------------
# Files


def _write(out: Path, result: dict[str, Any], records: list[dict[str, Any]]) -> None:
    atomic_write_json(out / "search.json", result)
    atomic_write_text(out / "pareto.md", pareto_markdown(result))
    plot_pareto(result, out / "pareto.png")


def _stage_rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any], bool]]:
    """(stage, trial row, measurement, on that stage's front) for every screened and fully trained measurement."""
    rows = []
    for trial in result["trials"]:
        rows.append(("screen", trial, trial["screen"], trial["on_screen_front"]))
        if "full" in trial:
            rows.append(("full", trial, trial["full"], trial["on_full_front"]))
    return rows


def pareto_markdown(result: dict[str, Any]) -> str:
    """The table of every measurement (screened and fully trained), front and budget marked, then the choice."""
    budget = result["budget"]
    limits = SearchConfig(max_latency_ms=budget["max_latency_ms"], max_mb=budget["max_mb"])
    lines = [
        "# Search under a budget",
        "",
        f"Budget: {_budget(limits)}. Objectives: validation accuracy (max), batch-1 latency on one thread "
        "(min), bytes of the model file (min). Screen: a share of the training rows for a few epochs; full: every "
        "row for distill.epochs. Front: not dominated among the same stage's candidates within the budget.",
        "",
        "| trial | stage | candidate | variant | validation accuracy | latency ms | MB | within budget | front |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for stage, trial, measured, on_front in _stage_rows(result):
        ok = within_budget(measured["latency_ms"], measured["bytes"] / MB, limits)
        lines.append(
            f"| {trial['trial']} | {stage} | {trial['candidate']} | {measured['variant']} | "
            f"{measured['validation_accuracy']:.4f} | {measured['latency_ms']:.3f} | {measured['bytes'] / MB:.3f} | "
            f"{'yes' if ok else 'no'} | {'yes' if on_front else ''} |"
        )
    chosen = result["chosen"]
    lines.append("")
    if chosen is None:
        lines.append(f"**No model chosen**: {result.get('message', '')}")
    else:
        lines.append(
            f"**Chosen** (validation only): trial {chosen['trial']}, {chosen['candidate']}, {chosen['variant']} "
            f"({chosen['model_file']}): validation accuracy {chosen['validation_accuracy']:.4f}, "
            f"{chosen['latency_ms']:.3f} ms, {chosen['bytes'] / MB:.3f} MB; test accuracy (scored once) "
            f"{chosen['test']['accuracy']:.4f}. Directory: `{chosen['directory']}`."
        )
    return "\n".join(lines) + "\n"


def plot_pareto(result: dict[str, Any], path: Path) -> Path:
    """Validation accuracy against latency; point area ∝ bytes, each stage's front circled, the budget dashed."""
    from textdistill.report import _save, plt

    figure, axis = plt.subplots(figsize=(7.5, 5))
    rows = _stage_rows(result)
    largest = max((m["bytes"] for _, _, m, _ in rows), default=1) or 1
    for stage, color, edge in (("screen", "tab:gray", "tab:orange"), ("full", "tab:blue", "tab:red")):
        points = [(m["latency_ms"], m["validation_accuracy"], m["bytes"], f) for s, _, m, f in rows if s == stage]
        if not points:
            continue
        xs, ys, sizes, fronts = zip(*points, strict=True)
        areas = [20 + 400 * size / largest for size in sizes]
        axis.scatter(xs, ys, s=areas, alpha=0.45, color=color, label=f"{stage} (area ∝ bytes)")
        if any(fronts):  # the front is 3-D (bytes too): circled, not joined by a line
            on = [(x, y, a) for x, y, a, f in zip(xs, ys, areas, fronts, strict=True) if f]
            axis.scatter(
                [p[0] for p in on],
                [p[1] for p in on],
                s=[p[2] for p in on],
                facecolors="none",
                edgecolors=edge,
                linewidths=1.5,
                label=f"{stage} Pareto front",
            )
    budget = result["budget"]
    if budget["max_latency_ms"] is not None:
        axis.axvline(budget["max_latency_ms"], color="black", linestyle="--", linewidth=1, label="latency budget")
    chosen = result["chosen"]
    if chosen is not None:
        axis.scatter([chosen["latency_ms"]], [chosen["validation_accuracy"]], marker="*", s=200, color="gold")
        axis.annotate(
            "chosen", (chosen["latency_ms"], chosen["validation_accuracy"]), xytext=(6, 6), textcoords="offset points"
        )
    axis.set_xlabel("batch-1 latency, one thread (ms)")
    axis.set_ylabel("validation accuracy")
    mb = "" if budget["max_mb"] is None else f", size budget {budget['max_mb']:g} MB"
    axis.set_title(f"Search under a budget{mb}")
    axis.legend(fontsize=8, loc="lower right")
    return _save(figure, path)
