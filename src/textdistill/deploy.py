"""Compression and efficiency stages of a run: pruning sweeps, int8, ONNX, and the side-by-side benchmark.

The pruning sweep is scored on the validation split (it is a choice of how far to prune); the final
deployable artifacts are scored on the test split.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from textdistill.bench import BenchEntry, bench_models, parameter_counts
from textdistill.cache import atomic_write_json, digest
from textdistill.compress import (
    ONNX_INT8_NAME,
    ONNX_NAME,
    OnnxModule,
    export_onnx,
    int8_check,
    l1_unstructured_prune,
    onnx_parity,
    quantize_onnx_int8,
    structured_prune,
)
from textdistill.config import Config
from textdistill.metrics import METRIC_NAMES, agreement
from textdistill.multilabel import Thresholds, score_logits
from textdistill.pipeline import Prepared, student_inputs, teacher_thresholds
from textdistill.students.hub import Student, predict_logits
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


def deployables(config: Config, student_dir: Path, validation: list[np.ndarray]) -> dict[str, Any]:
    """The ONNX export of one saved student and, if it passes the int8 bar, its ONNX int8 version.

    ``validation`` (the student's validation token ids) decides whether ``model.int8.onnx`` ships: see
    ``ship_int8``. Returns {"student", "models": {"float": module}, "onnx_parity_max_abs_diff", "int8"} where
    ``int8`` is ``ship_int8``'s record (None when not quantized).
    """

    student = Student.from_pretrained(student_dir)
    (student_dir / ONNX_INT8_NAME).unlink(missing_ok=True)  # a file from an earlier run is not this run's check
    parity, int8 = None, None
    if config.compress.export_onnx:
        max_length = student.config["tokenization"]["max_length"]
        onnx_path = export_onnx(student.model, student_dir / ONNX_NAME, config.compress.onnx_opset, max_length)
        probe = student.sequences(["A gripping, beautifully acted film.", "Dull and far too long.", "Fine."] * 3)
        parity = onnx_parity(student.model, onnx_path, probe, student.config["pad_id"])
        if config.compress.quantize:
            int8 = ship_int8(student, onnx_path, validation, config.compress.int8_min_agreement)
    return {"student": student, "models": {"float": student.model}, "onnx_parity_max_abs_diff": parity, "int8": int8}


def ship_int8(student, onnx_path: Path, validation: list[np.ndarray], min_agreement: float) -> dict[str, Any]:
    """Quantize ``onnx_path`` to int8 and keep ``model.int8.onnx`` next to it only if it is good enough.

    The int8 model's predicted labels are compared with the float student's on ``validation``, here, on the
    machine that deploys (int8 kernels differ between CPUs). Below ``min_agreement`` the file is deleted and a
    warning says so. Returns ``int8_check``'s figures plus ``min_agreement``, ``shipped`` and ``status``
    (``"shipped (agreement 0.9950 >= 0.99)"`` or ``"refused (agreement 0.9700 < 0.99)"``).
    """

    path = quantize_onnx_int8(onnx_path, onnx_path.with_name(ONNX_INT8_NAME))
    check = int8_check(student.model, path, validation, student.config["pad_id"], thresholds=student.thresholds)
    shipped = check["agreement"] >= min_agreement
    relation = ">=" if shipped else "<"
    status = f"{'shipped' if shipped else 'refused'} (agreement {check['agreement']:.4f} {relation} {min_agreement})"
    if shipped:
        logger.info("int8: %s on %d validation reviews: %s", status, len(validation), path)
    else:
        path.unlink()
        logger.warning(
            "int8: %s on %d validation reviews: %s not shipped (compress.int8_min_agreement)",
            status,
            len(validation),
            path,
        )
    return check | {"min_agreement": min_agreement, "shipped": shipped, "status": status}


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
    0.99)"``, and ``int8_check`` the measured figures (validation split, this machine).
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
        made = deployables(config, Path(summary["model_dir"]), student_inputs(config, prepared, "validation", length))
        test = student_inputs(config, prepared, "test", length)
        teacher = None if logits is None else logits["test"]
        scores = evaluate_variants(
            made["models"],
            test,
            prepared.dataset.test.labels,
            teacher,
            pad,
            Path(summary["model_dir"]),
            _thresholds(made["student"]),
            teacher_cut,
        )
        int8 = made["int8"]
        result["students"][summary["tag"]] = {
            "scores": scores,
            "onnx_parity": made["onnx_parity_max_abs_diff"],
            "int8": "not made" if int8 is None else int8["status"],
            "int8_check": int8,
        }
    write_json(path, result)
    return result


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
        for suffix, file in (("onnx", ONNX_NAME), ("onnx int8", ONNX_INT8_NAME)):
            if (directory / file).is_file():
                planned.append((BenchEntry(f"{summary['tag']} {suffix}", directory / file), lengths))
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
