"""Beyond binary sentiment (issue 13): emotion (6 classes), TREC (6 coarse classes) and GoEmotions (28 labels,
multi-label) with the local 6-layer teacher, each through ``textdistill run`` (its preset in configs/), plus a TF-IDF
uni+bigram logistic regression on the same split (C, and for multi-label the decision thresholds, chosen on
validation). Writes benchmarks/results/multitask.json (one entry per task, merged with the entries already there).

    python benchmarks/multitask.py --task emotion --task trec --task go_emotions --shared ../shared

A finished run is reused from its run directory and cache (``textdistill run`` skips finished stages).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

import numpy as np
from _common import RESULTS, machine, write_result

from textdistill.config import Config, load_config
from textdistill.data import Dataset, load_dataset
from textdistill.multilabel import choose_thresholds, score_logits
from textdistill.tokens import normalise_text

PRESETS = {
    "emotion": "configs/emotion-cpu.yaml",
    "trec": "configs/trec-cpu.yaml",
    "go_emotions": "configs/go-emotions-cpu.yaml",
}
C_GRID = (0.5, 2.0, 8.0, 32.0)
QUALITY = ("accuracy", "subset_accuracy", "micro_f1", "macro_f1", "agreement")


def _quality(scores: dict[str, Any] | None) -> dict[str, float]:
    return {key: scores[key] for key in QUALITY if scores and key in scores}


def linear_baseline(dataset: Dataset) -> dict[str, Any]:
    """TF-IDF uni+bigram logistic regression: C by validation accuracy (multi-label: one-vs-rest, C and thresholds
    by validation macro F1); scored once on test."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train = vectorizer.fit_transform([normalise_text(t) for t in dataset.train.texts])
    val, test = (
        vectorizer.transform([normalise_text(t) for t in s.texts]) for s in (dataset.validation, dataset.test)
    )
    by_c = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000)
        if dataset.multi_label:
            model = OneVsRestClassifier(model).fit(train, dataset.train.labels)
            thresholds = choose_thresholds(model.decision_function(val), dataset.validation.labels)
            scores = score_logits(model.decision_function(val), dataset.validation.labels, thresholds=thresholds)
            by_c[c] = (scores.macro_f1, model, thresholds, scores)
        else:
            model.fit(train, dataset.train.labels)
            scores = score_logits(model.decision_function(val), dataset.validation.labels)
            by_c[c] = (scores.accuracy, model, None, scores)
    best = max(by_c, key=lambda c: by_c[c][0])
    _, model, thresholds, validation = by_c[best]
    tested = score_logits(model.decision_function(test), dataset.test.labels, thresholds=thresholds)
    return {
        "system": "TF-IDF uni+bigram logistic regression" + (" (one-vs-rest)" if dataset.multi_label else ""),
        "chosen_C": best,
        "validation_by_C": {str(c): v[0] for c, v in by_c.items()},
        "thresholds": None if thresholds is None else thresholds.to_dict(),
        "validation": _quality(validation.to_dict()),
        "test": _quality(tested.to_dict()),
        "wall_seconds": time.perf_counter() - started,
    }


def _student_validation(summary: dict[str, Any]) -> dict[str, float]:
    """A student's validation scores: at its thresholds (multi-label), else its best epoch's record."""
    if summary.get("validation"):
        return _quality(summary["validation"])
    best = summary["training"]["best_epoch"]
    record = next((r for r in summary["training"]["history"] if r["epoch"] == best), {})
    return {key: record[f"val_{key}"] for key in QUALITY if f"val_{key}" in record}


def _speed(bench: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """Bytes and batch-1 single-thread latency of ``model`` at its first measured length."""
    rows = [r for r in bench if r["model"] == model and r["threads"] == 1]
    if not rows:
        return {}
    row = rows[0]
    return {"length": row["length"], "bytes": row.get("bytes"), "latency_ms_p50": row.get("latency_ms_p50")}


def summarise(config: Config, metrics: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    teacher = metrics["teacher"] or {}
    students = {
        s["tag"]: {
            "uses_teacher": s["uses_teacher"],
            "validation": _student_validation(s),
            "test": _quality(s["test"]),
            "parameters": s["parameters"],
            "train_examples": s["train_examples"],
            "thresholds": (s.get("thresholds") or {}).get("method"),
        }
        for s in metrics["students"]
    }
    best = metrics["best_student"]
    deployables = {}
    for tag, entry in metrics["compress"]["students"].items():
        for variant in ("float", "onnx-int8"):
            if variant in entry["scores"]:
                name = tag if variant == "float" else f"{tag} onnx int8"
                deployables[name] = {"test": _quality(entry["scores"][variant]), **_speed(metrics["bench"], name)}
    return {
        "task": dataset.task,
        "labels": dataset.label_names,
        "rows": {name: len(split) for name, split in dataset.splits().items()},
        "teacher": {
            "validation": _quality(teacher.get("validation_metrics")),
            "test": _quality(teacher.get("test_metrics")),
            "train_seconds": teacher.get("train_seconds"),
            "thresholds": (teacher.get("thresholds") or {}).get("method"),
            **_speed(metrics["bench"], "teacher"),
        },
        "students": students,
        "best_student": best,
        "deployables": deployables,
        "run_wall_seconds": metrics["wall_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", choices=sorted(PRESETS), required=True)
    parser.add_argument("--shared", default="../shared", help="folder with data/<task> and models/all-minilm-l6-v2")
    parser.add_argument("--set", action="append", default=[], help="extra dotted overrides for every run")
    parser.add_argument("--suffix", default="", help="recorded under '<task><suffix>' (a variant of a preset)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from textdistill.workflow import run

    path = RESULTS / "multitask.json"
    result = json.loads(path.read_text()) if path.is_file() else {"tasks": {}}
    model = f"{args.shared}/models/all-minilm-l6-v2"
    os.environ["TEXTDISTILL_TEACHER"] = model  # the presets' teacher and pretrained-layers student read it
    for task in args.task:
        overrides = [f"data.path={args.shared}/data/{task}"]
        config = load_config(PRESETS[task], overrides + args.set)
        metrics = run(config)
        dataset = load_dataset(config.data)
        entry = summarise(config, metrics, dataset)
        entry["linear_baseline"] = linear_baseline(dataset)
        entry["command"] = f"TEXTDISTILL_TEACHER={model} textdistill run {PRESETS[task]} " + " ".join(
            f"--set {o}" for o in overrides + args.set
        )
        entry["run_dir"] = config.out_dir
        result["tasks"][task + args.suffix] = entry
        logging.info("%s: %s", task, json.dumps({k: entry[k] for k in ("teacher", "best_student")}, default=str))
    result["machine"] = machine()
    result["script"] = "python " + " ".join(sys.argv)
    result["seeds"] = {"data": 42, "teacher": 42, "students": 42}
    np.set_printoptions(precision=4)
    print(write_result("multitask.json", result))


if __name__ == "__main__":
    main()
