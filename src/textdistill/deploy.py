"""Compression and efficiency stages of a run: pruning sweeps, int8, ONNX, and the side-by-side benchmark.

The pruning sweep is scored on the validation split (it is a choice of how far to prune); the final
deployable artifacts are scored on the test split.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textdistill.bench import (
    BenchEntry,
    bench_models,
    bytes_on_disk,
    fixed_length_batch,
    parameter_counts,
    serialized_bytes,
    torch_threads,
)
from textdistill.cache import atomic_write_json, digest
from textdistill.compress import (
    INT8_SCOPES,
    ONNX_INT8_NAME,
    ONNX_NAME,
    STATIC_SCOPE,
    OnnxModule,
    compare_logits,
    export_onnx,
    int8_scopes_for,
    l1_unstructured_prune,
    onnx_parity,
    prune_vocabulary_by_counts,
    quantize_onnx_int8,
    quantize_onnx_int8_static,
    structured_prune,
)
from textdistill.config import Config
from textdistill.metrics import METRIC_NAMES, agreement
from textdistill.multilabel import Thresholds, score_logits
from textdistill.pipeline import Prepared, student_inputs, teacher_thresholds
from textdistill.students import StudentModule
from textdistill.students.hub import WEIGHTS_NAME, Student, predict_logits
from textdistill.teachers.transformer import load_teacher

logger = logging.getLogger(__name__)


def _scores(
    logits: np.ndarray,
    labels: np.ndarray,
    teacher: np.ndarray | None,
    thresholds: Thresholds | None = None,
    teacher_thresholds: Thresholds | None = None,
) -> dict[str, float]:
    return score_logits(logits, labels, teacher, thresholds, teacher_thresholds).to_dict()


def _thresholds(student: Student) -> Thresholds | None:
    """A multi-label student's saved decision thresholds (None for single-label)."""
    return Thresholds.from_dict(student.config["thresholds"]) if student.multi_label else None


def pruning_sweep(
    model, sequences, labels, sparsities: list[float], pad_id: int, thresholds: Thresholds | None = None
) -> list[dict[str, Any]]:
    """Accuracy (on the given split) of L1-unstructured and structured pruning at each amount (multi-label: the
    scores of ``score_label_sets`` at the float student's ``thresholds``)."""

    rows = []
    for amount in sparsities:
        unstructured = copy.deepcopy(model)
        report = l1_unstructured_prune(unstructured, amount, scope="global")
        logits = predict_logits(unstructured.eval(), sequences, pad_id)
        rows.append(
            {
                "method": "L1 unstructured (global)",
                "sparsity": amount,
                "achieved_sparsity": report["total"]["sparsity"],
                **_scores(logits, labels, None, thresholds),
                "parameters": parameter_counts(unstructured),
            }
        )
        try:
            shrunk = structured_prune(model, amount)
        except (TypeError, ValueError, NotImplementedError) as error:
            logger.info("structured pruning not available for this student: %s", error)
            continue
        logits = predict_logits(shrunk.eval(), sequences, pad_id)
        rows.append(
            {
                "method": "structured (smaller dense model)",
                "sparsity": amount,
                **_scores(logits, labels, None, thresholds),
                "parameters": parameter_counts(shrunk),
            }
        )
        logger.info("pruning %.0f%%: %s", 100 * amount, rows[-2:])
    return rows


DEPLOY_DIR_NAME = "deploy"  # next to a student's model directory: its vocabulary-pruned deployable
LATENCY_TIE = 0.05  # variants within 5% of the fastest batch-1 latency count as equally fast: the smaller wins
PROBE_TEXTS = ["A gripping, beautifully acted film.", "Dull and far too long.", "Fine."] * 3


def deployables(
    config: Config,
    student_dir: Path,
    validation: list[np.ndarray],
    training: list[np.ndarray] | None = None,
    runs: int = 100,
) -> dict[str, Any]:
    """The deployable form of one saved student: its vocabulary pruned (if configured), exported to ONNX and, if
    an int8 version passes the bar, that ONNX int8 version.

    With ``compress.vocabulary_min_count`` the student keeps the embedding rows of tokens seen that often in
    ``training`` (its training and unlabelled token ids) and is saved to ``student_dir/../deploy``
    (``pruned_deployable``); the ONNX files are written next to the deployable. ``validation`` (the student's
    validation token ids) decides which int8 file ships: see ``ship_int8``. Returns {"student" (the
    deployable), "directory", "models" ({"float": the trained student} plus "vocabulary-pruned"),
    "onnx_parity_max_abs_diff", "int8" (``ship_int8``'s record, None when not quantized), "vocabulary"
    (``pruned_deployable``'s record, None without pruning)}.
    """

    student = Student.from_pretrained(student_dir)
    models: dict[str, Any] = {"float": student.model}
    directory, vocabulary = student_dir, None
    if config.compress.vocabulary_min_count is not None:
        if training is None:
            raise ValueError("compress.vocabulary_min_count needs the training token ids to count tokens in")
        directory = student_dir.parent / DEPLOY_DIR_NAME
        student, vocabulary = pruned_deployable(student, student_dir, training, config, directory)
        models["vocabulary-pruned"] = student.model
    (directory / ONNX_INT8_NAME).unlink(missing_ok=True)  # a file from an earlier run is not this run's check
    parity, int8 = None, None
    if config.compress.export_onnx:
        max_length = student.config["tokenization"]["max_length"]
        onnx_path = export_onnx(student.model, directory / ONNX_NAME, config.compress.onnx_opset, max_length)
        parity = onnx_parity(student.model, onnx_path, student.sequences(PROBE_TEXTS), student.config["pad_id"])
        if config.compress.quantize:
            bar, scopes = config.compress.int8_min_agreement, tuple(config.compress.int8_scopes)
            int8 = ship_int8(student, onnx_path, validation, bar, scopes=scopes, runs=runs, calibration=training)
    return {
        "student": student,
        "directory": str(directory),
        "models": models,
        "onnx_parity_max_abs_diff": parity,
        "int8": int8,
        "vocabulary": vocabulary,
    }


def pruned_deployable(
    student: Student, student_dir: Path, training: list[np.ndarray], config: Config, directory: Path
) -> tuple[Student, dict[str, Any]]:
    """The student with its vocabulary pruned to the tokens seen ``compress.vocabulary_min_count`` times in
    ``training``, saved to ``directory``; returns it reloaded and ``prune_vocabulary_by_counts``'s record with
    the weights file's ``bytes_before`` and ``bytes_after``."""
    tokenizer = student.tokenizer
    min_count = config.compress.vocabulary_min_count
    assert min_count is not None
    model = student.model
    if not isinstance(model, StudentModule):
        raise TypeError(f"vocabulary pruning needs a registered student, not {type(model).__name__}")
    pruned, record = prune_vocabulary_by_counts(
        model, training, min_count, tokenizer.all_special_ids, tokenizer.unk_token_id
    )
    Student(pruned, tokenizer, student.config).save_pretrained(directory)
    deployable = Student.from_pretrained(directory)
    record |= {
        "directory": str(directory),
        "bytes_before": bytes_on_disk(student_dir / WEIGHTS_NAME),
        "bytes_after": bytes_on_disk(directory / WEIGHTS_NAME),
    }
    logger.info("vocabulary-pruned deployable: %s", record)
    return deployable, record


def ship_int8(
    student,
    onnx_path: Path,
    validation: list[np.ndarray],
    min_agreement: float,
    *,
    scopes: tuple[str, ...] = tuple(INT8_SCOPES),
    runs: int = 100,
    calibration: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Quantize ``onnx_path`` to int8 in each of ``scopes`` (``INT8_SCOPES``, dynamic: all ops, all but
    convolutions, only the embedding tables; ``static``: calibrated on ``calibration``, the training token ids,
    skipped without them), measure every variant here, and keep the best int8 one as ``model.int8.onnx``.

    Each variant (PyTorch float, ONNX float, each int8 file) gets its label agreement with the float student
    on ``validation`` and its batch-1 latency on one thread, on the machine that deploys (int8 kernels differ
    between CPUs): ``measure_variants``. The int8 file that ships is ``choose_variant`` among the int8 files
    whose agreement is at least ``min_agreement``: the fastest, the smaller of those within ``LATENCY_TIE``.
    If none reaches the bar, no int8 file ships and a warning says so. ``chosen`` is the same choice among all
    variants (float included): what to deploy on this machine. Returns the shipped (or, if refused, the
    best-agreeing) int8 variant's ``int8_check`` figures plus ``scope``, ``min_agreement``, ``shipped``,
    ``status`` (``"shipped (agreement 0.9950 >= 0.99)"`` or ``"refused (agreement 0.9700 < 0.99)"``),
    ``variants`` (every measured row) and ``chosen`` (a variant name).
    """

    target = onnx_path.with_name(ONNX_INT8_NAME)
    with tempfile.TemporaryDirectory(dir=onnx_path.parent) as scratch:
        files = {}
        for scope in int8_scopes_for(onnx_path, scopes):
            path = Path(scratch) / f"{scope}.onnx"
            if scope != STATIC_SCOPE:
                files[f"onnx int8 ({scope})"] = quantize_onnx_int8(onnx_path, path, scope)
            elif calibration:
                files[f"onnx int8 ({scope})"] = quantize_onnx_int8_static(onnx_path, path, calibration)
        variants = measure_variants(student, onnx_path, files, validation, runs)
        int8_rows = [row for row in variants if row["name"] in files]
        best = choose_variant(int8_rows, min_agreement)
        if best is not None:
            Path(files[best["name"]]).replace(target)
    chosen = choose_variant(variants, min_agreement)
    shown = best or max(int8_rows, key=lambda row: row["agreement"])
    shipped = best is not None
    relation = ">=" if shipped else "<"
    status = f"{'shipped' if shipped else 'refused'} (agreement {shown['agreement']:.4f} {relation} {min_agreement})"
    if shipped:
        logger.info("int8: %s on %d validation reviews: %s (%s)", status, len(validation), target, shown["name"])
    else:
        logger.warning(
            "int8: %s on %d validation reviews: %s not shipped (compress.int8_min_agreement)",
            status,
            len(validation),
            target,
        )
    figures = {key: shown[key] for key in ("agreement", "max_abs_diff", "relative_max_abs_diff")}
    return figures | {
        "scope": shown["scope"],
        "min_agreement": min_agreement,
        "shipped": shipped,
        "status": status,
        "variants": [{key: value for key, value in row.items() if key != "path"} for row in variants],
        "chosen": None if chosen is None else chosen["name"],
    }


def measure_variants(
    student, onnx_path: Path, int8_files: dict[str, Path], validation: list[np.ndarray], runs: int
) -> list[dict[str, Any]]:
    """One row per variant: ``name``, ``scope`` (int8 ops, None for float), ``bytes`` (its file),
    ``compare_logits`` figures against the float student on ``validation`` and ``latency_ms_p50`` (batch 1, one
    thread, a validation review at the student's input length; the best of 3 interleaved rounds of ``runs``
    calls, so a burst of load on a shared machine does not decide)."""
    pad = student.config["pad_id"]
    reference = predict_logits(student.model, validation, pad)
    weights = onnx_path.parent / WEIGHTS_NAME  # the deployable's directory (absent: the in-memory size)
    modules: dict[str, tuple[Any, Path, str | None]] = {
        "pytorch float": (student.model, weights, None),
        "onnx float": (OnnxModule(onnx_path, num_threads=1), onnx_path, None),
    }
    for name, path in int8_files.items():
        modules[name] = (OnnxModule(path, num_threads=1), path, name.split("(")[1].rstrip(")"))
    rows: list[dict[str, Any]] = []
    for name, (module, path, scope) in modules.items():
        logits = reference if module is student.model else predict_logits(module, validation, pad)
        rows.append(
            {"name": name, "scope": scope, "bytes": _bytes(module, path), "path": path}
            | compare_logits(reference, logits, thresholds=student.thresholds)
        )
    single = fixed_length_batch(validation, student.token_settings.max_length, 1, pad)
    latencies = batch1_latencies({name: entry[0] for name, entry in modules.items()}, single, runs)
    for row in rows:
        row["latency_ms_p50"] = latencies[row["name"]]
    logger.info("deploy variants: %s", [(r["name"], r["agreement"], r["latency_ms_p50"], r["bytes"]) for r in rows])
    return rows


def _bytes(module: Any, path: Path) -> int:
    return bytes_on_disk(path) if path.is_file() else serialized_bytes(module)


def batch1_latencies(modules: dict[str, Any], single, runs: int, rounds: int = 3) -> dict[str, float]:
    """Median batch-1 milliseconds of each module on one thread: the lowest of ``rounds`` interleaved rounds."""
    best = dict.fromkeys(modules, float("inf"))
    with torch_threads(1), torch.inference_mode():
        for _ in range(rounds):
            for name, module in modules.items():
                for _ in range(min(10, runs)):  # warm-up
                    module(*single)
                seconds = []
                for _ in range(runs):
                    start = time.perf_counter()
                    module(*single)
                    seconds.append(time.perf_counter() - start)
                best[name] = min(best[name], float(np.median(seconds)) * 1000.0)
    return best


def choose_variant(rows: list[dict[str, Any]], min_agreement: float) -> dict[str, Any] | None:
    """The fastest row (``latency_ms_p50``) with ``agreement >= min_agreement``; rows within ``LATENCY_TIE`` of
    it count as equally fast and the smallest (``bytes``) of them wins. None if no row reaches the bar."""
    passing = [row for row in rows if row["agreement"] >= min_agreement]
    if not passing:
        return None
    fastest = min(row["latency_ms_p50"] for row in passing)
    return min(
        (row for row in passing if row["latency_ms_p50"] <= fastest * (1 + LATENCY_TIE)),
        key=lambda row: (row["bytes"], row["latency_ms_p50"]),
    )


def evaluate_variants(
    variants: dict[str, Any],
    sequences,
    labels,
    teacher,
    pad_id: int,
    directory: Path,
    thresholds: Thresholds | None = None,
    teacher_thresholds: Thresholds | None = None,
):
    """Test scores of the float student and, when it shipped, the int8 ONNX file, with agreement with the float
    student (multi-label: at the student's ``thresholds``; agreement is the share of identical label sets).

    The float ONNX file is not scored again: ``onnx_parity`` bounds its logit difference from the float model.
    """

    modules = dict(variants)
    if (directory / ONNX_INT8_NAME).is_file():
        modules["onnx-int8"] = OnnxModule(directory / ONNX_INT8_NAME)
    logits = {name: predict_logits(module.eval(), sequences, pad_id) for name, module in modules.items()}
    scores = {
        name: _scores(values, labels, teacher, thresholds, teacher_thresholds) for name, values in logits.items()
    }
    for name, values in logits.items():
        if thresholds is None:
            scores[name]["agreement_with_float_student"] = agreement(values, logits["float"])
        else:
            same = (thresholds.predict(values) == thresholds.predict(logits["float"])).all(axis=1)
            scores[name]["agreement_with_float_student"] = float(same.mean())
    return scores


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, value)


# ---------------------------------------------------------------------------------------------------
# Stages of a run


def best_student(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The best student by validation accuracy, or (multi-label) validation macro F1 at its thresholds; never test."""
    return max(summaries, key=_selection_score)


def _selection_score(summary: dict[str, Any]) -> float:
    validation = summary.get("validation")
    if validation and "macro_f1" in validation:
        return float(validation["macro_f1"])
    return summary["training"]["best_val_accuracy"] or 0.0


def compress_stage(config: Config, prepared: Prepared, main: dict[str, Any], best: dict[str, Any], logits):
    """Pruning sweep of the main student (validation), and ONNX/int8 versions of the main and best students.

    Each student's ``int8`` entry records whether its int8 file shipped, e.g. ``"refused (agreement 0.9700 <
    0.99)"``, and ``int8_check`` the measured figures (validation split, this machine: every variant's
    agreement, batch-1 latency and bytes, and the one ``chosen``). With ``compress.vocabulary_min_count``,
    ``vocabulary`` records the pruned deployable (rows kept, weight bytes before and after) and
    ``deploy_dir`` where it and its ONNX files are.
    """

    out = Path(config.out_dir) / "compress"
    path = out / "compress.json"
    # the metric names are in the key: scores stored under older names are recomputed, not read by the report
    key = digest(
        {"main": main["key"], "best": best["key"], "compress": asdict(config.compress), "metrics": METRIC_NAMES}
    )
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        logger.info("compress: reusing %s", path)
        return json.loads(path.read_text())
    pad = prepared.tokenizer.pad_token_id
    main_student = Student.from_pretrained(main["model_dir"])
    length = main["tokens"]["max_length"]
    validation = student_inputs(config, prepared, "validation", length)
    sweep = pruning_sweep(
        main_student.model,
        validation,
        prepared.dataset.validation.labels,
        config.compress.sparsities,
        pad,
        _thresholds(main_student),
    )
    teacher_cut = teacher_thresholds(prepared, logits)
    result: dict[str, Any] = {"key": key, "sweep": sweep, "students": {}}
    for summary in {main["tag"]: main, best["tag"]: best}.values():
        length = summary["tokens"]["max_length"]
        validation = student_inputs(config, prepared, "validation", length)
        training = training_inputs(config, prepared, length)  # counted by vocabulary pruning, calibrates static int8
        made = deployables(config, Path(summary["model_dir"]), validation, training, config.bench.runs)
        test = student_inputs(config, prepared, "test", length)
        teacher = None if logits is None else logits["test"]
        scores = evaluate_variants(
            made["models"],
            test,
            prepared.dataset.test.labels,
            teacher,
            pad,
            Path(made["directory"]),
            _thresholds(made["student"]),
            teacher_cut,
        )
        int8 = made["int8"]
        result["students"][summary["tag"]] = {
            "scores": scores,
            "onnx_parity": made["onnx_parity_max_abs_diff"],
            "int8": "not made" if int8 is None else int8["status"],
            "int8_check": int8,
            "vocabulary": made["vocabulary"],
            "deploy_dir": made["directory"],
        }
    write_json(path, result)
    return result


def training_inputs(config: Config, prepared: Prepared, length: int) -> list[np.ndarray]:
    """A student's input ids of the training split and, when the data has one, the unlabelled (transfer) split:
    the texts whose tokens vocabulary pruning counts."""
    splits = ["train"] + (["unlabelled"] if "unlabelled" in prepared.encoded else [])
    return [row for split in splits for row in student_inputs(config, prepared, split, length)]


def bench_stage(config: Config, prepared: Prepared, teacher_model_dir, summaries, compressed) -> list[dict[str, Any]]:
    """Teacher, students and compressed students measured side by side in one process."""

    def own_length(summary: dict[str, Any]) -> int:
        return summary["tokens"]["max_length"]

    teacher_length = config.tokens.teacher_max_length
    planned: list[tuple[BenchEntry, list[int]]] = []
    if teacher_model_dir is not None:
        teacher = BenchEntry("teacher", load_teacher(teacher_model_dir, "cpu"), path=teacher_model_dir)
        planned.append((teacher, sorted({teacher_length, own_length(best_student(summaries))})))
    for summary in summaries:
        directory = Path(summary["model_dir"])
        lengths = sorted({own_length(summary), teacher_length})
        student = Student.from_pretrained(directory)
        planned.append((BenchEntry(summary["tag"], student.model, path=directory / "model.safetensors"), lengths))
        if summary["tag"] not in compressed["students"]:
            continue
        if summary is summaries[0]:
            planned += [(entry, lengths) for entry in _pruned_entries(summary["tag"], student.model)]
        deploy_dir = Path(compressed["students"][summary["tag"]].get("deploy_dir") or directory)
        if deploy_dir != directory:
            pruned = Student.from_pretrained(deploy_dir).model
            entry = BenchEntry(f"{summary['tag']} vocabulary-pruned", pruned, path=deploy_dir / WEIGHTS_NAME)
            planned.append((entry, lengths))
        for suffix, file in (("onnx", ONNX_NAME), ("onnx int8", ONNX_INT8_NAME)):
            if (deploy_dir / file).is_file():
                planned.append((BenchEntry(f"{summary['tag']} {suffix}", deploy_dir / file), lengths))
    longest = max(length for _, lengths in planned for length in lengths)
    reviews = student_inputs(config, prepared, "test", longest)[:256]
    pad = prepared.tokenizer.pad_token_id
    rows = []
    for entry, lengths in planned:
        rows += bench_models([entry], config.bench, lengths, reviews, pad_id=pad)
    return rows


def _pruned_entries(tag: str, model) -> list:
    """The main student pruned by half: L1 unstructured (same dense shapes) and structured (a smaller dense model)."""

    unstructured = copy.deepcopy(model)
    l1_unstructured_prune(unstructured, 0.5)
    entries = [BenchEntry(f"{tag} 50% L1 unstructured", unstructured, note="zeros in dense tensors")]
    try:
        entries.append(BenchEntry(f"{tag} 50% structured", structured_prune(model, 0.5), note="smaller dense model"))
    except (TypeError, ValueError, NotImplementedError) as error:
        logger.info("no structured pruning for %s: %s", tag, error)
    return entries


def cached_bench(config: Config, prepared: Prepared, teacher_model_dir, summaries, compressed):
    path = Path(config.out_dir) / "bench.json"
    key = digest(
        {
            "students": [s["key"] for s in summaries],
            "compress": compressed["key"],
            "teacher": str(teacher_model_dir),
            "bench": asdict(config.bench),
        }
    )
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        logger.info("bench: reusing %s", path)
        return json.loads(path.read_text())["rows"]
    rows = bench_stage(config, prepared, teacher_model_dir, summaries, compressed)
    prepared.cache.write_json(path, {"key": key, "rows": rows})
    return rows
