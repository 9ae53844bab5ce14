"""Stage wiring: each stage is a function of its inputs and config, cached by a fingerprint of both.

A stage whose artifact already exists for the same fingerprint is skipped (and says so), so a
second run of a finished config does no work and changing the student does not re-train the teacher.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textdistill import builtin
from textdistill.api import fit_student
from textdistill.cache import ArtifactCache, array_digest, atomic_open, atomic_write_text, digest
from textdistill.compress import ONNX_INT8_NAME, OnnxSequenceClassifier, export_classifier_int8
from textdistill.config import (
    Config,
    ConfigError,
    ReportConfig,
    StudentConfig,
    TeacherEntry,
    distill_identity,
    teacher_entries,
)
from textdistill.data import Dataset, label_balance, load_dataset, save_label_mapping, stratified_sample, text_keys
from textdistill.distributed import barrier, is_main_process, main_process_first, predict_logits_sharded
from textdistill.embeddings import embeddings_stage, model_identity
from textdistill.inference import RepresentationTap, aggregate_windows, predict_logits
from textdistill.metrics import agreement
from textdistill.multilabel import Thresholds, choose_thresholds, score_logits
from textdistill.plans import StudentPlan, student_plans
from textdistill.students import count_parameters, pretrained_source
from textdistill.students.hub import save_student
from textdistill.teachers.logits import read_logits_dir
from textdistill.teachers.transformer import checkpoint_hash, fine_tune, load_teacher, write_model_card
from textdistill.tokens import (
    EncodedTexts,
    SpecialIds,
    TokenSettings,
    chunk_windows,
    encode_cached,
    encode_texts,
    length_report,
    load_tokenizer,
    tokenizer_fingerprint,
)
from textdistill.train import DistillData
from textdistill.transfer import with_transfer_texts

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """The data stage's output: splits, the shared tokenizer and every split's full token ids."""

    dataset: Dataset
    tokenizer: Any
    tokenizer_fingerprint: str
    encoded: dict[str, EncodedTexts]
    cache: ArtifactCache
    data_path: str  # config.data.path, a built-in dataset resolved to its directory
    teacher_model: str  # config.teacher.model, a built-in teacher resolved to its directory

    @property
    def special(self) -> SpecialIds:
        return SpecialIds.of(self.tokenizer)


def prepare_data(config: Config) -> Prepared:
    """Load and split the data, then tokenise every split once (cached by fingerprint).

    Built-in stand-ins (``builtin:toy-reviews``, ``builtin:tiny-bert``) are materialised first; ``config`` is not
    changed: ``Prepared.teacher_model`` and ``resolved_config`` name the directories they were built in.
    Under ``accelerate launch`` the main process prepares (and caches) first; the others then read its cache.
    """
    with main_process_first():
        return _prepare_data(config)


def _prepare_data(config: Config) -> Prepared:
    cache = ArtifactCache(config.cache_dir)
    data_config = config.data
    if data_config.path == builtin.TOY_DATA:
        toy = builtin.write_toy_dataset(cache.root / "builtin" / "toy-reviews")
        data_config = dataclasses.replace(data_config, path=str(toy))
    dataset = load_dataset(data_config)
    teacher_model = config.teacher.model
    if teacher_model == builtin.TINY_BERT:
        target = cache.root / "builtin" / f"tiny-bert-{dataset.train.fingerprint}"
        teacher_model = str(builtin.build_tiny_bert(target, dataset.train.texts))
    tokenizer = load_tokenizer(config.tokens.tokenizer or teacher_model)
    dataset = with_transfer_texts(dataset, config.transfer, tokenizer.mask_token or "[MASK]")
    encoded = {
        name: encode_cached(split.texts, split.fingerprint, tokenizer, cache, desc=f"tokenise {name}")
        for name, split in dataset.splits().items()
    }
    return Prepared(
        dataset, tokenizer, tokenizer_fingerprint(tokenizer), encoded, cache, data_config.path, teacher_model
    )


def resolved_config(config: Config, prepared: Prepared) -> Config:
    """``config`` naming the directories that built-in stand-ins were built in (for the run's ``config.yaml``)."""
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, path=prepared.data_path),
        teacher=dataclasses.replace(config.teacher, model=prepared.teacher_model),
    )


def teacher_tokens(config: Config) -> TokenSettings:
    """How the teacher reads: ``tokens.teacher_max_length`` ids, the run's truncation."""
    tokens = config.tokens
    return TokenSettings(tokens.teacher_max_length, tokens.truncation, tokens.head_fraction)


def student_tokens(config: Config, student: StudentConfig) -> TokenSettings:
    """How a student reads: its own ``max_length``, else ``tokens.student_max_length``; the run's truncation."""
    tokens = config.tokens
    return TokenSettings(student.max_length or tokens.student_max_length, tokens.truncation, tokens.head_fraction)


def teacher_inputs(config: Config, prepared: Prepared, split: str) -> list[np.ndarray]:
    """The teacher's input ids of ``split``: one ``[CLS] … [SEP]`` array per example."""
    return teacher_tokens(config).inputs(prepared.encoded[split], prepared.special)


def student_inputs(config: Config, prepared: Prepared, split: str, max_length: int | None = None) -> list[np.ndarray]:
    """A student's input ids of ``split`` at ``max_length`` (default ``tokens.student_max_length``)."""
    settings = student_tokens(config, StudentConfig(max_length=max_length))
    return settings.inputs(prepared.encoded[split], prepared.special)


def _teacher_token_settings(config: Config, prepared: Prepared) -> dict[str, Any]:
    return {"tokenizer": prepared.tokenizer_fingerprint, **teacher_tokens(config).to_dict()}


def _logit_settings(config: Config, prepared: Prepared) -> dict[str, Any]:
    """How the logit pass reads a text: the token settings, plus the window settings under ``chunks``."""
    settings = _teacher_token_settings(config, prepared)
    teacher = config.teacher
    if teacher.inference == "chunks":
        settings |= {
            "inference": "chunks",
            "chunk_stride": teacher.chunk_stride,
            "chunk_aggregate": teacher.chunk_aggregate,
        }
    return settings


# ---------------------------------------------------------------------------------------------------
# Teacher


def teacher_dir(config: Config, prepared: Prepared) -> Path:
    """Where the teacher for this (teacher config, token settings, train/validation data) lives.

    A local base model is identified by its weights' hash, not its path, so ``../shared/x`` and
    ``/abs/shared/x`` name the same teacher.
    """
    teacher = asdict(config.teacher)
    for key in ("logit_batch_size", "logits_dir", "int8_logit_pass", "inference", "chunk_stride", "chunk_aggregate"):
        teacher.pop(key)
    teacher["model"] = _model_identity(prepared.teacher_model)
    fingerprints = prepared.dataset.fingerprints()
    parts = {
        "teacher": teacher,
        "tokens": _teacher_token_settings(config, prepared),
        "data": [fingerprints["train"], fingerprints["validation"]],
    }
    return prepared.cache.root / "teachers" / digest(parts)


def _model_identity(name: str) -> str:

    local = Path(name).expanduser()
    return f"local:{checkpoint_hash(local)}" if local.is_dir() else name


def teacher_stage(config: Config, prepared: Prepared) -> Path:
    """Fine-tune the teacher (or reuse it) and evaluate it on validation and test; returns the model dir."""

    out = teacher_dir(config, prepared)
    summary_path = out / "model" / "metrics.json"
    if summary_path.is_file():
        logger.info("teacher: reusing %s (same config and data)", out / "model")
        return out / "model"
    torch.manual_seed(config.teacher.seed)
    dataset = prepared.dataset
    train = (teacher_inputs(config, prepared, "train"), dataset.train.labels)
    if config.teacher.max_train is not None:
        rows = stratified_sample(train[1], config.teacher.max_train, config.teacher.seed)
        train = ([train[0][i] for i in rows], train[1][rows])
    validation = (teacher_inputs(config, prepared, "validation"), dataset.validation.labels)
    teacher_config = dataclasses.replace(config.teacher, model=prepared.teacher_model)
    summary = fine_tune(train, validation, dataset.label_names, prepared.tokenizer, teacher_config, out)
    summary["fingerprints"] = dataset.fingerprints()
    summary["tokens"] = _teacher_token_settings(config, prepared)
    model_dir = out / "model"
    if is_main_process():  # under a launcher every process fine-tuned (DDP); the main one saved the model
        save_label_mapping(dataset, model_dir / "label_mapping.json")
        prepared.cache.write_json(summary_path, summary)
    barrier()
    return model_dir


# ---------------------------------------------------------------------------------------------------
# Logits


def logits_key(config: Config, prepared: Prepared, checkpoint: str, split: str) -> dict[str, Any]:
    """What a split's teacher logits depend on: the checkpoint, the exact rows and the token settings."""
    return {
        "teacher_checkpoint": checkpoint,
        "data": prepared.dataset.splits()[split].fingerprint,
        **_logit_settings(config, prepared),
    }


def logits_stage(config: Config, prepared: Prepared, model_dir: Path | None) -> dict[str, np.ndarray]:
    """Teacher logits (n, num_labels) for every split, computed once and reused without loading the teacher.

    With ``teacher.logits_dir`` set, logits are read from a shipped directory after checking that its
    manifest matches this data and these token settings; any mismatch is an error, never a silent reuse.
    """
    if config.teacher.logits_dir:
        return load_shipped_logits(config, prepared, Path(config.teacher.logits_dir))
    assert model_dir is not None

    checkpoint = checkpoint_hash(model_dir)
    result: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    splits = prepared.dataset.splits()
    for split in ["validation", *(name for name in splits if name != "validation")]:  # validation first: see below
        data = splits[split]
        mode = _logit_mode(config, prepared, model_dir, models, split, result.get("validation"))
        key = logits_key(config, prepared, checkpoint, split) | {"pass": mode}
        path = prepared.cache.path("logits", key, ".npz")
        if path.is_file():
            logger.info("logits %s: reusing %s", split, path)
            result[split] = _read_logits(path, data.ids)
            continue
        hashes = exact_text_hashes(data.texts)
        logits, missing = _cached_rows(path.parent, key, hashes, len(prepared.dataset.label_names))
        if missing:
            model = _model_for(mode, model_dir, models)
            logits[missing] = _compute_logits(config, prepared, model, split, mode, rows=missing)
        result[split] = logits
        if is_main_process():  # a sharded pass gives every process the whole split; one writes it
            _write_logits(path, logits, data.ids, key, hashes)
    barrier()
    return {name: result[name] for name in splits}


REPRESENTATION_SPLITS = ("train", "unlabelled")  # the splits a student trains on


def representations_stage(config: Config, prepared: Prepared, model_dir: Path) -> dict[str, np.ndarray]:
    """The teacher's representations (n, hidden) float32 of the splits a student trains on: the input of its output
    layer (``RepresentationTap``), for windows of a whole text their mean. Computed once per teacher, data and token
    settings (cached as float16 beside the logits); always the exact teacher (bf16 with ``teacher.mixed_precision:
    bf16``), never the int8 one. What ``distill.representation_weight`` matches the student's features to."""
    checkpoint = checkpoint_hash(model_dir)
    mode = _exact_mode(config)
    splits = prepared.dataset.splits()
    result: dict[str, np.ndarray] = {}
    tap = None
    for split in (name for name in REPRESENTATION_SPLITS if name in splits):
        key = logits_key(config, prepared, checkpoint, split) | {"pass": mode, "output": "representation"}
        path = prepared.cache.path("representations", key, ".npz")
        if path.is_file():
            logger.info("representations %s: reusing %s", split, path)
            result[split] = _read_logits(path, splits[split].ids)
            continue
        tap = tap or RepresentationTap(load_teacher(model_dir), len(prepared.dataset.label_names))
        started = time.perf_counter()
        values = teacher_split_logits(config, prepared, tap, split, mode, f"representations {split}", aggregate="mean")
        logger.info("representations %s: %d texts in %.0f s", split, len(values), time.perf_counter() - started)
        result[split] = values
        if is_main_process():
            _write_logits(path, values, splits[split].ids, key, dtype=np.float16)
    barrier()
    return result


def _model_for(mode: str, model_dir: Path, models: dict[str, Any]):
    """The fp32 teacher, or (``onnx-int8``) its ONNX Runtime int8 version ``model.int8.onnx`` next to the weights
    (exported on first use), loaded once."""

    if mode not in models:
        if mode == "onnx-int8":
            teacher, path = load_teacher(model_dir, "cpu"), model_dir / ONNX_INT8_NAME
            if not path.is_file():
                export_classifier_int8(teacher, path)
            models[mode] = OnnxSequenceClassifier(path, teacher.config, torch.get_num_threads())
        else:  # fp32 and bf16 (autocast at inference) share the fp32 weights
            models[mode] = load_teacher(model_dir)
    return models[mode]


def _exact_mode(config: Config) -> str:
    """The exact teacher's pass: ``bf16`` (autocast) with ``teacher.mixed_precision: bf16``, else ``fp32``."""
    return "bf16" if config.teacher.mixed_precision == "bf16" else "fp32"


def _logit_mode(
    config: Config, prepared: Prepared, model_dir: Path, models: dict[str, Any], split: str, exact: np.ndarray | None
) -> str:
    """``fp32`` (``bf16`` with ``teacher.mixed_precision: bf16``), or ``onnx-int8`` for non-validation splits when
    the int8 teacher agrees with the exact validation logits ``exact`` on >= 99.5% of reviews (validation itself is
    always exact: model selection sees the exact teacher). The check is stored next to the teacher; one from the
    former PyTorch int8 pass is redone."""
    exact_mode = _exact_mode(config)
    if not config.teacher.int8_logit_pass or split == "validation" or torch.cuda.is_available():
        return exact_mode
    assert exact is not None
    check_path = model_dir / "int8_logit_check.json"
    if not is_main_process():
        barrier()  # under a launcher the main process exports and checks the int8 teacher once; the others read it
    check = json.loads(check_path.read_text()) if check_path.is_file() else {}
    if check.get("pass") != "onnx-int8":
        model = _model_for("onnx-int8", model_dir, models)
        started = time.perf_counter()
        fast = teacher_split_logits(config, prepared, model, "validation", "onnx-int8", sharded=False)
        seconds = time.perf_counter() - started
        check = {
            "pass": "onnx-int8",
            "agreement": agreement(exact, fast),
            "max_abs_logit_diff": float(np.abs(exact - fast).max()),
            "relative_max_abs_logit_diff": float(np.abs(exact - fast).max() / max(np.abs(exact).max(), 1e-12)),
            "int8_reviews_per_second": len(exact) / seconds,
            "threshold": 0.995,
        }
        prepared.cache.write_json(check_path, check)
        logger.info("int8 logit pass: agreement with fp32 on validation %.4f", check["agreement"])
    if is_main_process():
        barrier()
    return "onnx-int8" if check["agreement"] >= check["threshold"] else "fp32"


def teacher_split_logits(
    config: Config,
    prepared: Prepared,
    model,
    split: str,
    mode: str,
    desc: str | None = None,
    sharded: bool = True,
    rows: list[int] | None = None,
    aggregate: str | None = None,
) -> np.ndarray:
    """The teacher's logits (n, K) float32 of ``split`` (of its ``rows`` only, when given): one truncated input per
    text, or with ``teacher.inference: chunks`` windows over the whole text aggregated per text (``aggregate``,
    default ``teacher.chunk_aggregate``). ``mode`` ``bf16`` runs under CPU/GPU autocast. ``model`` may be a
    ``RepresentationTap``: then the rows are its (n, hidden) representations.

    Under a launcher the pass is ``sharded`` over the processes (collective: all of them call it) unless told not to.
    """
    predict = predict_logits_sharded if sharded else predict_logits
    pad, batch_size = prepared.tokenizer.pad_token_id, config.teacher.logit_batch_size
    encoded = prepared.encoded[split] if rows is None else prepared.encoded[split].subset(rows)
    parameter = next(model.parameters(), None)
    device = parameter.device.type if parameter is not None else "cpu"
    with torch.autocast(device, dtype=torch.bfloat16, enabled=mode == "bf16"):
        if config.teacher.inference == "truncate":
            return predict(model, teacher_tokens(config).inputs(encoded, prepared.special), pad, batch_size, desc)
        windows, owners = chunk_windows(
            encoded, config.tokens.teacher_max_length, config.teacher.chunk_stride, prepared.special
        )
        window_logits = predict(model, windows, pad, batch_size, desc)
    output = "representations" if isinstance(model, RepresentationTap) else "logits"
    logger.info("%s %s: %.2f windows per text", output, split, len(windows) / max(len(encoded), 1))
    return aggregate_windows(window_logits, owners, len(encoded), aggregate or config.teacher.chunk_aggregate)


def exact_text_hashes(texts: list[str]) -> np.ndarray:
    """One hex digest per exact text (n,): what a cached logit row is matched on across splits and data."""
    return np.array([hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest() for t in texts])


def _cached_rows(
    directory: Path, key: dict[str, Any], hashes: np.ndarray, num_labels: int
) -> tuple[np.ndarray, list[int]]:
    """Logit rows (n, K) for the texts ``hashes`` already labelled by the same teacher pass with the same settings
    (``key`` but any data: another split, a smaller unlabelled pool, fewer transfer sources), and the rows still
    missing (zeros in the array), so adding transfer texts labels only the new ones. Files written before text
    hashes were stored are not used."""
    wanted = {h: i for i, h in enumerate(hashes.tolist())}
    same_pass = {k: v for k, v in key.items() if k != "data"}
    logits = np.zeros((len(hashes), num_labels), dtype=np.float32)
    found = np.zeros(len(hashes), dtype=bool)
    for path in sorted(directory.glob("*.npz")):
        with np.load(path, allow_pickle=False) as stored:
            if "text_hashes" not in stored.files:
                continue
            if {k: v for k, v in json.loads(str(stored["key"])).items() if k != "data"} != same_pass:
                continue
            pairs = [(wanted[h], j) for j, h in enumerate(stored["text_hashes"].tolist()) if h in wanted]
            if pairs:
                mine, theirs = (list(side) for side in zip(*pairs, strict=True))
                logits[mine], found[mine] = stored["logits"][theirs], True
    if found.any():
        logger.info("logits: %d of %d rows reused from cached passes of this teacher", found.sum(), len(hashes))
    return logits, np.flatnonzero(~found).tolist()


def _compute_logits(
    config: Config, prepared: Prepared, model, split: str, mode: str, rows: list[int] | None = None
) -> np.ndarray:
    """The teacher's logits of ``split`` (of only its ``rows`` when given), timed and recorded."""
    started = time.perf_counter()
    logits = teacher_split_logits(config, prepared, model, split, mode, split, rows=rows)
    seconds = time.perf_counter() - started
    logger.info("logits %s: %d reviews in %.0f s (%.1f reviews/s)", split, len(logits), seconds, len(logits) / seconds)
    _record_logit_pass(prepared, split, len(logits), seconds)
    return logits


def _record_logit_pass(prepared: Prepared, split: str, count: int, seconds: float) -> None:
    """Append the logit pass's speed to the cache's logits/timings.jsonl (read by benchmarks/teacher_reference.py).

    Under a launcher only the main process records (the seconds of its shard and the gather)."""
    if not is_main_process():
        return
    path = prepared.cache.root / "logits" / "timings.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"split": split, "reviews": count, "seconds": seconds, "threads": torch.get_num_threads()}
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def _write_logits(
    path: Path,
    logits: np.ndarray,
    ids: list[str],
    key: dict[str, Any],
    hashes: np.ndarray | None = None,
    dtype: type = np.float32,
) -> None:
    key_text = np.array(json.dumps(key, sort_keys=True))
    arrays: dict[str, Any] = {"logits": logits.astype(dtype), "ids": np.array(ids), "key": key_text}
    if hashes is not None:
        arrays["text_hashes"] = hashes
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)


def _read_logits(path: Path, ids: list[str]) -> np.ndarray:
    with np.load(path, allow_pickle=False) as stored:
        if stored["ids"].tolist() != ids:
            raise ValueError(f"{path}: logits are not aligned with this split's example ids")
        return stored["logits"].astype(np.float32)


def load_shipped_logits(config: Config, prepared: Prepared, directory: Path) -> dict[str, np.ndarray]:
    """Read logits shipped with a manifest (see ``export_logits``), checking every key."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"teacher.logits_dir {directory}: no manifest.json")
    manifest = json.loads(manifest_path.read_text())
    expected_tokens = _logit_settings(config, prepared)
    result = {}
    for split, data in prepared.dataset.splits().items():
        entry = manifest["splits"].get(split)
        if entry is None:
            raise ValueError(f"teacher.logits_dir {directory}: no logits for split {split!r}")
        mismatched = {k: (entry["key"].get(k), v) for k, v in expected_tokens.items() if entry["key"].get(k) != v}
        if entry["key"]["data"] != data.fingerprint:
            mismatched["data"] = (entry["key"]["data"], data.fingerprint)
        if mismatched:
            raise ValueError(f"teacher.logits_dir {directory}, split {split}: shipped vs this run {mismatched}")
        result[split] = _read_logits(directory / entry["file"], data.ids)
    logger.info("logits: read from %s (teacher %s)", directory, manifest.get("teacher_checkpoint"))
    return result


def export_logits(
    config: Config, prepared: Prepared, model_dir: Path, logits: dict[str, np.ndarray], directory: Path
) -> None:
    """Write float16 logits per split plus a manifest (checkpoint hash, data fingerprints, token settings).

    Under a launcher only the main process writes."""
    if not is_main_process():
        return
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoint_hash(model_dir)
    manifest: dict[str, Any] = {"teacher_checkpoint": checkpoint, "splits": {}}
    for split, values in logits.items():
        ids = prepared.dataset.splits()[split].ids
        with atomic_open(directory / f"{split}.npz") as handle:
            np.savez_compressed(handle, logits=values.astype(np.float16), ids=np.array(ids))
        key = logits_key(config, prepared, checkpoint, split)
        manifest["splits"][split] = {"file": f"{split}.npz", "examples": len(ids), "key": key}
    atomic_write_text(directory / "manifest.json", json.dumps(manifest, indent=2))


THRESHOLDS_NAME = "thresholds.json"  # a multi-label teacher's decision thresholds, next to its weights


def teacher_thresholds(prepared: Prepared, logits: dict[str, np.ndarray] | None) -> Thresholds | None:
    """A multi-label teacher's decision thresholds, chosen on its validation logits; None for single-label data."""
    if logits is None or not prepared.dataset.multi_label:
        return None
    return choose_thresholds(logits["validation"], prepared.dataset.validation.labels)


def evaluate_teacher(prepared: Prepared, model_dir: Path, logits: dict[str, np.ndarray]) -> dict[str, Any]:
    """Validation and test metrics of the teacher from its cached logits, written next to the model."""

    summary_path = model_dir / "metrics.json"
    summary = json.loads(summary_path.read_text())
    splits = prepared.dataset.splits()
    thresholds = teacher_thresholds(prepared, logits)
    if thresholds is not None:
        summary["thresholds"] = thresholds.to_dict()
        prepared.cache.write_json(model_dir / THRESHOLDS_NAME, thresholds.to_dict())
    for split in ("validation", "test"):
        labels = splits[split].labels
        summary[f"{split}_metrics"] = score_logits(
            logits[split], labels, thresholds=thresholds, details=True
        ).to_dict()
    if is_main_process():
        prepared.cache.write_json(summary_path, summary)
        write_model_card(model_dir, summary, prepared.dataset.fingerprints())
    return summary


# ---------------------------------------------------------------------------------------------------
# Several teachers: each one's logits, then one calibrated, combined target chosen on validation

TEACHERS_REPORT = "teachers.json"  # in the run directory, read by report.write_run_report
ENSEMBLE_STEP, ENSEMBLE_FOLDS = 0.05, 5  # choose_combiner's weight grid step and cross-fitting folds


@dataclass
class TeacherLogits:
    """One teacher's logits {split: (n, K) float32} and how its training-row logits were made."""

    name: str
    kind: str
    logits: dict[str, np.ndarray]
    train_targets: str  # "in-sample", "out-of-fold (k folds)" or "as shipped"
    info: dict[str, Any]


def ensemble_target(config: Config, prepared: Prepared) -> tuple[Path | None, dict[str, np.ndarray]]:
    """Every ``teachers:`` entry's logits, then one target {split: (n, K)} chosen on validation only.

    Shipped logits are read first, so a bad directory fails before any fitting. Returns the transformer entry's
    model dir (None without one or with ``teacher.logits_dir``) and the target the students distill from.
    """
    entries = teacher_entries(config.teachers)
    cost = {"logits": 0, "ngram": 1, "transformer": 2}
    made: dict[str, TeacherLogits] = {}
    model_dir = None
    for entry in sorted(entries, key=lambda e: cost[e.kind]):
        if entry.kind == "transformer":
            model_dir, logits = _single_teacher_logits(config, prepared)
            made[entry.name] = TeacherLogits(entry.name, entry.kind, logits, _transformer_targets(config), {})
        elif entry.kind == "ngram":
            with main_process_first():  # fitted and cached once; under a launcher the others read the cache
                made[entry.name] = ngram_teacher_logits(prepared, entry)
        else:
            made[entry.name] = shipped_teacher_logits(prepared, entry)
    members = [made[entry.name] for entry in entries]
    with main_process_first():
        target, report = combined_target(prepared, members, config.data.seed)
    report |= {"entries": config.teachers, "data": prepared.dataset.fingerprints()}  # the report checks both
    if is_main_process():
        out = Path(config.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / TEACHERS_REPORT, json.dumps(report, indent=2, default=str) + "\n")
    return model_dir, target


def _transformer_targets(config: Config) -> str:
    if config.teacher.logits_dir:
        return "as shipped (teacher.logits_dir)"
    return "in-sample (fine-tuned on these rows)" if config.teacher.max_train is None else "in-sample (partly)"


def _split_ids(prepared: Prepared) -> dict[str, list[str]]:
    return {name: split.ids for name, split in prepared.dataset.splits().items()}


def shipped_teacher_logits(prepared: Prepared, entry: TeacherEntry) -> TeacherLogits:
    """A ``logits`` teacher: its directory read by ``read_logits_dir``, aligned to every split's ids."""
    labels = prepared.dataset.label_names
    try:
        logits = read_logits_dir(entry.settings["path"], _split_ids(prepared), len(labels), labels)
    except ValueError as error:
        raise ValueError(f"teacher {entry.name!r} (kind logits): {error}") from None
    return TeacherLogits(entry.name, entry.kind, logits, "as shipped", {"path": entry.settings["path"]})


def ngram_teacher_dir(prepared: Prepared, entry: TeacherEntry) -> Path:
    """Where an n-gram teacher lives: keyed by its settings, the train/validation fingerprints and the labels."""
    fingerprints = prepared.dataset.fingerprints()
    parts = {
        "kind": "ngram",
        "settings": entry.settings,
        "data": [fingerprints["train"], fingerprints["validation"]],
        "labels": prepared.dataset.label_names,
    }
    return prepared.cache.root / "teachers" / f"ngram-{digest(parts)}"


def ngram_teacher_logits(prepared: Prepared, entry: TeacherEntry) -> TeacherLogits:
    """An ``ngram`` teacher: fitted on train (C chosen on validation), out-of-fold logits for train, the full
    model's logits for the other splits; the model and each split's logits cached under ``ngram_teacher_dir``."""
    from textdistill.teachers.ngram import NgramTeacher, NgramTeacherConfig

    root = ngram_teacher_dir(prepared, entry)
    teacher: NgramTeacher | None = None
    logits = {}
    for name, split in prepared.dataset.splits().items():
        directory = root / "logits" / f"{name}-{split.fingerprint}"
        if not (directory / f"{name}.npz").is_file():
            if teacher is None:
                teacher = _ngram_teacher(prepared, NgramTeacherConfig(**entry.settings), root / "model")
            if name == "train":
                values = teacher.out_of_fold_logits(split.texts, split.labels)
            else:
                values = teacher.predict_logits(split.texts)
            directory.mkdir(parents=True, exist_ok=True)
            _write_logits(directory / f"{name}.npz", values, split.ids, {"teacher": entry.name, "split": name})
        else:
            logger.info("teacher %s: reusing %s logits from %s", entry.name, name, directory)
        logits[name] = read_logits_dir(directory, {name: split.ids}, len(prepared.dataset.label_names))[name]
    info = json.loads((root / "model" / "config.json").read_text(encoding="utf-8"))
    folds = entry.settings["folds"]
    return TeacherLogits(
        entry.name, entry.kind, logits, f"out-of-fold ({folds} folds)", {"model_dir": str(root / "model"), **info}
    )


def _ngram_teacher(prepared: Prepared, settings: Any, model_dir: Path) -> Any:
    """The saved n-gram teacher of ``model_dir``, or a new one fitted on train (C chosen on validation)."""
    from textdistill.teachers.ngram import NgramTeacher

    if (model_dir / "config.json").is_file():
        logger.info("ngram teacher: reusing %s", model_dir)
        return NgramTeacher.load(model_dir)
    data = prepared.dataset
    teacher = NgramTeacher(settings).fit(
        data.train.texts, data.train.labels, data.validation.texts, data.validation.labels, data.label_names
    )
    teacher.save(model_dir)
    return teacher


def combined_target(
    prepared: Prepared, members: list[TeacherLogits], seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Temperatures and the combiner chosen on validation → target {split: (n, K) float32} and its report.

    Cached under ``teacher-ensemble/<key>``, the key hashing every teacher's logits, the labels and the settings.
    """
    key = {
        "teachers": {m.name: {s: array_digest(v) for s, v in m.logits.items()} for m in members},
        "data": prepared.dataset.fingerprints(),
        "settings": {"step": ENSEMBLE_STEP, "folds": ENSEMBLE_FOLDS},
        "seed": seed,
    }
    directory = prepared.cache.root / "teacher-ensemble" / digest(key)
    report_path = directory / "report.json"
    split_ids = _split_ids(prepared)
    if report_path.is_file():
        logger.info("teachers: reusing the combined target %s", directory)
        target = read_logits_dir(directory, split_ids, len(prepared.dataset.label_names))
        return target, json.loads(report_path.read_text(encoding="utf-8"))
    target, report = _choose_target(prepared, members, seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, values in target.items():
        _write_logits(directory / f"{split}.npz", values, split_ids[split], {"split": split, **key})
    prepared.cache.write_json(report_path, report)
    return target, report


def _choose_target(
    prepared: Prepared, members: list[TeacherLogits], seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-teacher temperature on validation; one teacher: its calibrated logits; more: ``choose_combiner``."""
    from textdistill.teachers.ensemble import calibrate, choose_combiner, fit_temperature

    labels = prepared.dataset.validation.labels
    temperatures = {m.name: fit_temperature(m.logits["validation"], labels) for m in members}
    splits = list(prepared.dataset.splits())
    calibrated = {s: calibrate({m.name: m.logits[s] for m in members}, temperatures) for s in splits}
    combiner: dict[str, Any] = {"method": "single", "temperatures": temperatures}
    if len(members) == 1:
        target = {s: calibrated[s][members[0].name].astype(np.float32) for s in splits}
    else:
        folds = _combiner_folds(labels)
        choice = choose_combiner(calibrated["validation"], labels, ENSEMBLE_STEP, folds, seed)
        target = {s: choice.combine(calibrated[s]).astype(np.float32) for s in splits}
        combiner = {
            "method": choice.method,
            "temperatures": temperatures,
            "weights": choice.weights,
            "held_out_validation_nll": {"weights": choice.weight_search_nll, "stacking": choice.stacking_nll},
            "folds": folds,
            **({"stacker": choice.stacker.to_dict()} if choice.method == "stacking" else {}),
        }
    return target, _ensemble_report(prepared, members, calibrated, target, combiner)


def _combiner_folds(labels: np.ndarray) -> int:
    """``ENSEMBLE_FOLDS``, fewer when a class has fewer validation rows (at least 2)."""
    smallest = int(np.bincount(labels).min())
    if smallest < 2:
        raise ValueError(
            f"teachers: a class has {smallest} validation row(s); choosing the combiner needs at least 2 per class "
            "(raise data.validation_fraction or use one teacher)"
        )
    folds = min(ENSEMBLE_FOLDS, smallest)
    if folds < ENSEMBLE_FOLDS:
        logger.warning(
            "teachers: only %d validation rows in a class; cross-fitting the combiner with %d folds", smallest, folds
        )
    return folds


def _ensemble_report(
    prepared: Prepared,
    members: list[TeacherLogits],
    calibrated: dict[str, dict[str, np.ndarray]],
    target: dict[str, np.ndarray],
    combiner: dict[str, Any],
) -> dict[str, Any]:
    """Per teacher (calibrated) and the ensemble: validation and test accuracy, macro F1, NLL, ECE, agreement;
    training-row accuracy with how each teacher's training targets were made (in-sample vs out-of-fold)."""
    from textdistill.teachers.ensemble import teacher_report

    splits = prepared.dataset.splits()
    scored = {
        s: teacher_report(calibrated[s] | {"ensemble": target[s]}, splits[s].labels) for s in ("validation", "test")
    }
    train = teacher_report(calibrated["train"] | {"ensemble": target["train"]}, splits["train"].labels)["models"]
    teachers = [
        {
            "name": m.name,
            "kind": m.kind,
            "train_targets": m.train_targets,
            "train_accuracy": train[m.name]["accuracy"],
            "temperature": combiner["temperatures"][m.name],
            "info": m.info,
        }
        for m in members
    ]
    return {
        "teachers": teachers,
        "combiner": combiner,
        "ensemble_train_accuracy": train["ensemble"]["accuracy"],
        **scored,
    }


# ---------------------------------------------------------------------------------------------------
# Embeddings and the data report


def embeddings_for(config: Config, prepared: Prepared):
    """The students' embedding matrix: Word2Vec on the train texts (plus unlabelled texts by config), or the
    teacher's input embeddings (``embeddings.teacher_model``, else the teacher's model) PCA-fitted on those texts."""

    names = ["train"] + (
        ["unlabelled"] if config.embeddings.include_unlabelled and "unlabelled" in prepared.encoded else []
    )
    return embeddings_stage(
        config.embeddings,
        [prepared.encoded[name] for name in names],
        [prepared.dataset.splits()[name].fingerprint for name in names],
        len(prepared.tokenizer),
        prepared.tokenizer.pad_token_id,
        prepared.tokenizer_fingerprint,
        prepared.cache,
        teacher_model=config.embeddings.teacher_model or prepared.teacher_model,
    )


def data_report(config: Config, prepared: Prepared) -> dict[str, Any]:
    """Split sizes, label balance, token-length percentiles, truncation rates and Word2Vec coverage."""

    limits = {"teacher": config.tokens.teacher_max_length, "student": config.tokens.student_max_length}
    report: dict[str, Any] = {"labels": prepared.dataset.label_names, "splits": {}}
    for name, split in prepared.dataset.splits().items():
        report["splits"][name] = {
            "rows": len(split),
            "fingerprint": split.fingerprint,
            "label_balance": label_balance(split, prepared.dataset.label_names) if name != "unlabelled" else None,
            "dropped_rows": prepared.dataset.dropped_rows.get(name, 0),
            "token_lengths": length_report(prepared.encoded[name], limits),
        }
    if prepared.dataset.duplicates is not None:
        report["duplicates"] = prepared.dataset.duplicates.to_dict()
    if config.embeddings.enabled:
        embedding = embeddings_for(config, prepared)
        coverage = {
            "vocabulary_rows": int(embedding.matrix.shape[0]),
            "vector_size": int(embedding.matrix.shape[1]),
            "vocabulary_coverage": embedding.vocabulary_coverage,
            "training_token_coverage": embedding.token_coverage,
        }
        if config.embeddings.source == "teacher":  # coverage: the rows the PCA was fitted on
            report["teacher_embeddings"] = coverage | {"explained_variance": embedding.explained_variance}
        else:
            report["word2vec"] = coverage
    return report


# ---------------------------------------------------------------------------------------------------
# Students


def _distill_data(
    config: Config, prepared: Prepared, split: str, logits, max_length: int | None, representations=None
) -> DistillData:
    labels = prepared.dataset.splits()[split].labels
    inputs = student_inputs(config, prepared, split, max_length)
    teacher_representations = None if representations is None else representations[split]
    return DistillData(inputs, labels, None if logits is None else logits[split], teacher_representations)


def student_stage(
    config: Config,
    prepared: Prepared,
    plan: StudentPlan,
    logits: dict[str, np.ndarray] | None,
    embedding,
    representations: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train (or reuse) one student, save it like a Hugging Face model, and evaluate it on test.

    ``representations``: the teacher's per split (``representations_stage``), used by a plan with
    ``distill.representation_weight > 0`` only."""

    run_dir = Path(config.out_dir) / "students" / plan.tag
    model_dir = run_dir / "model"
    summary_path = run_dir / "summary.json"
    if pretrained_source(plan.student.name, plan.student.arch) is not None:
        embedding = None  # its embedding comes with its pretrained weights: Word2Vec settings do not change it
    representations = representations if plan.uses_representations else None
    if plan.uses_representations and representations is None:
        raise ConfigError(f"student {plan.tag}: distill.representation_weight > 0 needs the teacher's representations")
    key = _student_key(config, prepared, plan, logits, embedding, representations)
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("key") == key:
        logger.info("student %s: reusing %s (same settings, data and teacher)", plan.tag, model_dir)
        return json.loads(summary_path.read_text())
    teacher_logits = logits if plan.uses_teacher else None
    tokens = student_tokens(config, plan.student)
    length = tokens.max_length
    parts = [_distill_data(config, prepared, "train", teacher_logits, length, representations)]
    if teacher_logits is not None and plan.distill.use_unlabelled and "unlabelled" in teacher_logits:
        parts.append(_distill_data(config, prepared, "unlabelled", teacher_logits, length, representations))
    train = DistillData.concatenate(parts)
    validation = _distill_data(config, prepared, "validation", teacher_logits, length)
    train_dir = run_dir / "train"
    _clear_stale_training(train_dir, key)
    train_dir.mkdir(parents=True, exist_ok=True)
    prepared.cache.write_json(train_dir / "key.json", {"key": key})
    model, result = fit_student(
        plan.student,
        plan.distill,
        train,
        validation,
        len(prepared.tokenizer),
        len(prepared.dataset.label_names),
        prepared.tokenizer.pad_token_id,
        None if embedding is None else embedding.matrix,
        train_dir,
    )
    pad = prepared.tokenizer.pad_token_id
    thresholds = student_thresholds(model, validation, prepared, pad)
    teacher_cut = teacher_thresholds(prepared, logits)
    test_data = _distill_data(config, prepared, "test", logits, length)
    test_logits = predict_logits(model, test_data.sequences, pad)
    test = score_logits(
        test_logits, test_data.labels, test_data.teacher_logits, thresholds, teacher_cut, True
    ).to_dict()
    summary = {
        "tag": plan.tag,
        "student": plan.student.name,
        "key": key,
        "model_dir": str(model_dir),
        "parameters": count_parameters(model),
        "uses_teacher": plan.uses_teacher,
        "train_examples": len(train),
        "test": test,
        **(
            {
                "validation": _validation_scores(model, validation, thresholds, teacher_cut, pad),
                "thresholds": thresholds.to_dict(),
            }
            if thresholds
            else {}
        ),
        "training": result.to_dict(),
        "tokens": tokens.to_dict(),
        "student_config": asdict(plan.student),
        "distill_config": asdict(plan.distill),
    }
    save_student(
        model,
        model_dir,
        name=plan.student.name,
        arch=plan.student.arch,
        label_names=prepared.dataset.label_names,
        tokenizer=prepared.tokenizer,
        tokens=tokens,
        thresholds=None if thresholds is None else thresholds.to_dict(),
        metrics={
            "test_accuracy": test.get("accuracy", test.get("subset_accuracy")),
            "test_macro_f1": test.get("macro_f1"),
            "test_agreement_with_teacher": test.get("agreement"),
        },
        card_extra={"distillation": asdict(plan.distill), "data_fingerprints": prepared.dataset.fingerprints()},
    )
    prepared.cache.write_json(summary_path, summary)
    return summary


def student_thresholds(model, validation: DistillData, prepared: Prepared, pad: int) -> Thresholds | None:
    """A multi-label student's decision thresholds, chosen on its own validation logits; None for single-label."""
    if not prepared.dataset.multi_label:
        return None
    logits = predict_logits(model, validation.sequences, pad)
    return choose_thresholds(logits, validation.labels)


def _validation_scores(
    model, validation: DistillData, thresholds: Thresholds | None, teacher: Thresholds | None, pad: int
) -> dict[str, Any]:
    """Validation scores at the chosen thresholds (a multi-label student is selected by their macro F1); agreement
    with the teacher's label sets at the teacher's own thresholds."""
    logits = predict_logits(model, validation.sequences, pad)
    return score_logits(logits, validation.labels, validation.teacher_logits, thresholds, teacher).to_dict()


def _clear_stale_training(train_dir: Path, key: str) -> None:
    """Delete ``train_dir`` when its key.json names other settings: its checkpoint and done.json belong to that
    student (``train_student`` would refuse them), not to this one. The same key keeps a checkpoint to resume."""
    key_path = train_dir / "key.json"
    if key_path.is_file() and json.loads(key_path.read_text()).get("key") != key:
        logger.info("student: settings changed since %s was trained; training again from scratch", train_dir)
        shutil.rmtree(train_dir)


def _student_key(
    config: Config, prepared: Prepared, plan: StudentPlan, logits, embedding, representations=None
) -> str:
    teacher = None
    if plan.uses_teacher and logits is not None:
        teacher = {split: array_digest(values) for split, values in logits.items()}
    return digest(
        {
            "student": asdict(plan.student),
            "distill": distill_identity(plan.distill) | {"num_threads": None},  # an execution setting
            "tokens": [config.tokens.student_max_length, config.tokens.truncation, config.tokens.head_fraction],
            "tokenizer": prepared.tokenizer_fingerprint,
            "data": prepared.dataset.fingerprints(),
            "teacher": teacher,
            "embeddings": None if embedding is None else array_digest(embedding.matrix),
        }
        | _pretrained_part(plan)
        | _representations_part(representations)
    )


def _representations_part(representations: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """The teacher's representations a student matches, in the key only when it uses them."""
    return (
        {}
        if representations is None
        else {"representations": {k: array_digest(v) for k, v in representations.items()}}
    )


def _pretrained_part(plan: StudentPlan) -> dict[str, str]:
    """The weights a student starts from (a local directory: the hash of its files), in the key only when it has
    some, so that other students' keys stay what they were."""
    source = pretrained_source(plan.student.name, plan.student.arch)
    return {} if source is None else {"pretrained": model_identity(source)}


# ---------------------------------------------------------------------------------------------------
# Robustness checks

ROBUSTNESS_REPORT = "robustness.json"  # in the run directory


def robustness_stage(
    config: Config,
    prepared: Prepared,
    model_dir: Path | None,
    summaries: list[dict[str, Any]],
    domain: list[Any] | None = None,
) -> dict[str, Any]:
    """The behavioural checks (``robustness.build_checks`` on the validation split) scored for the teacher (when
    its model is in this run) and every student; ``{"skipped": why}`` where they do not apply (a 2-class task
    whose positive label is known, see ``robustness.applies``). Written to ``robustness.json``, reused while the
    checks, the teacher and the students are unchanged. ``domain``: the ``domain_checks`` already read, if any
    (read here otherwise)."""
    from textdistill import robustness

    report_config = config.report
    positive, skipped = robustness.applies(
        str(report_config.robustness), prepared.dataset.label_names, report_config.positive_label
    )
    if positive is None:
        return {"skipped": skipped}
    validation = prepared.dataset.validation
    settings = robustness.CheckSettings(report_config.robustness_seed, report_config.robustness_max_per_check)
    checks = robustness.build_checks(validation.texts, validation.labels, positive, settings)
    checks += domain if domain is not None else domain_checks(report_config, prepared.dataset, positive)
    if not checks:
        return {"skipped": "robustness checks skipped: no check could be built from the validation texts"}
    rows = [[c.name, c.texts, c.expected.tolist(), c.originals] for c in checks]
    teacher = checkpoint_hash(model_dir) if model_dir is not None else None
    key = digest({"checks": rows, "teacher": teacher, "students": [s["key"] for s in summaries]})
    path = Path(config.out_dir) / ROBUSTNESS_REPORT
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("key") == key:
        logger.info("robustness: reusing %s", path)
        return json.loads(path.read_text(encoding="utf-8"))
    predictors = {"teacher": _teacher_predictor(config, prepared, model_dir)} if model_dir is not None else {}
    predictors |= {s["tag"]: _student_predictor(Path(s["model_dir"])) for s in summaries}
    predictions = {name: robustness.predict_checks(checks, predict) for name, predict in predictors.items()}
    reference = predictions.get("teacher")
    models = {
        name: [s.to_dict() for s in robustness.score_checks(checks, got, None if name == "teacher" else reference)]
        for name, got in predictions.items()
    }
    report = {
        "key": key,
        "positive_label": prepared.dataset.label_names[positive],
        "checks": [
            {"name": c.name, "kind": c.kind, "description": c.description, "sample": c.sample(2)} for c in checks
        ],
        "models": models,
        "notes": _robustness_notes(config, model_dir),
    }
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    return report


def domain_checks(report_config: ReportConfig, dataset: Dataset, positive: int) -> list[Any]:
    """The ``report.domain_checks`` (``robustness.read_domain_check``), leaving out the run's own texts."""
    from textdistill import robustness

    entries = report_config.domain_check_entries()
    if not entries:
        return []
    own = [split.texts for name, split in dataset.splits().items() if name != "test"]
    seen = set(text_keys([text for texts in own for text in texts]))
    return [
        robustness.read_domain_check(
            entry,
            positive,
            np.random.default_rng([report_config.robustness_seed, index]),
            seen,
            f"report.domain_checks[{index}]",
        )
        for index, entry in enumerate(entries)
    ]


def _robustness_notes(config: Config, model_dir: Path | None) -> list[str]:
    if model_dir is None:
        return ["the teacher is not scored: its model is not part of this run (shipped logits or no transformer)"]
    if config.teachers:
        return ["teacher: the transformer entry of teachers: (the combined target has no model to run on new texts)"]
    return []


def _teacher_predictor(config: Config, prepared: Prepared, model_dir: Path):
    """texts → the fine-tuned teacher's label ids (n,), reading them as the logit pass does (truncated, or windows
    under ``teacher.inference: chunks``), in fp32."""
    model, pad, batch_size = load_teacher(model_dir), prepared.tokenizer.pad_token_id, config.teacher.logit_batch_size

    def predict(texts: list[str]) -> np.ndarray:
        encoded = encode_texts(texts, prepared.tokenizer, progress=False)
        if config.teacher.inference == "truncate":
            inputs = teacher_tokens(config).inputs(encoded, prepared.special)
            return predict_logits(model, inputs, pad, batch_size).argmax(-1)
        length, stride = config.tokens.teacher_max_length, config.teacher.chunk_stride
        windows, owners = chunk_windows(encoded, length, stride, prepared.special)
        logits = predict_logits(model, windows, pad, batch_size)
        return aggregate_windows(logits, owners, len(texts), config.teacher.chunk_aggregate).argmax(-1)

    return predict


def _student_predictor(model_dir: Path):
    """texts → a saved student's label ids (n,)."""
    from textdistill.students.hub import Student

    student = Student.from_pretrained(model_dir)
    return lambda texts: student.predict_logits(texts).argmax(-1)


# ---------------------------------------------------------------------------------------------------
# Whole runs


def teacher_logits_for(config: Config, prepared: Prepared) -> tuple[Path | None, dict[str, np.ndarray] | None]:
    """The teacher (fine-tuned or reused) and its logits; with ``teacher.logits_dir`` only the shipped logits.

    With ``teachers:`` set, the logits are the ensemble target of those teachers (see ``ensemble_target``) and the
    model dir is the transformer entry's (None without one).
    """
    if config.teachers:
        if prepared.dataset.multi_label:
            raise ConfigError("teachers: combining several teachers is single-label only; use the teacher: section")
        return ensemble_target(config, prepared)
    return _single_teacher_logits(config, prepared)


def _single_teacher_logits(config: Config, prepared: Prepared) -> tuple[Path | None, dict[str, np.ndarray]]:
    """The ``teacher:`` section's model and logits (fine-tuned, reused or shipped)."""
    if config.teacher.logits_dir:
        return None, logits_stage(config, prepared, None)
    model_dir = teacher_stage(config, prepared)
    logits = logits_stage(config, prepared, model_dir)
    evaluate_teacher(prepared, model_dir, logits)
    return model_dir, logits


def distill(config: Config, prepared: Prepared | None = None, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Data, embeddings, teacher logits (when a student needs them) and every planned student (or ``only``)."""
    plans = [plan for plan in student_plans(config) if not only or plan.tag in only]
    prepared = prepared or prepare_data(config)
    if only and len(plans) != len(set(only)):
        raise ConfigError(f"--only {only}: known tags are {[plan.tag for plan in student_plans(config)]}")
    model_dir, logits = teacher_logits_for(config, prepared) if any(p.uses_teacher for p in plans) else (None, None)
    representations = teacher_representations_for(config, prepared, model_dir, plans)
    if not is_main_process():  # under a launcher all processes make the teacher's logits; students train in one
        return []
    embedding = embeddings_for(config, prepared) if config.embeddings.enabled else None
    return [student_stage(config, prepared, plan, logits, embedding, representations) for plan in plans]


def teacher_representations_for(
    config: Config, prepared: Prepared, model_dir: Path | None, plans: list[StudentPlan] | None = None
) -> dict[str, np.ndarray] | None:
    """The teacher's representations when a plan (default: every planned student) uses them, else None."""
    plans = student_plans(config) if plans is None else plans
    users = [plan.tag for plan in plans if plan.uses_representations]
    if not users:
        return None
    if model_dir is None:
        raise ConfigError(
            f"students {users}: distill.representation_weight > 0 needs the transformer teacher's model to compute "
            "its representations; shipped logits (teacher.logits_dir) or a teacher without a model have none"
        )
    return representations_stage(config, prepared, model_dir)
