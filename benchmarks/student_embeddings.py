"""The CNN student on IMDB with Word2Vec vs teacher-PCA embeddings (issue 11): validation and test accuracy, and
the robustness checks built from validation (``textdistill.robustness``) for each, recorded as JSON.

Both variants distill from the shipped reference-teacher logits (``teacher.logits_dir``), with the settings of
the ``cnn`` student of configs/imdb-cpu.yaml (100 filters of widths 3/4/5, 400 tokens, the 30,000 teacher-labelled
unlabelled reviews, 3 epochs, 100-dimensional embeddings); only ``embeddings.source`` differs. A TF-IDF
uni+bigram logistic regression (C chosen on validation) is scored on the same checks as a reference, and with
``--teacher-dir`` a fine-tuned teacher checkpoint is scored too (and students' agreement with it reported).

    OMP_NUM_THREADS=1 python benchmarks/student_embeddings.py --data ../shared/data/imdb \
        --teacher ../shared/models/all-minilm-l6-v2

Writes benchmarks/results/student_embeddings.json; run directories under runs/student-embeddings/.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, write_result
from imdb_cpu_reference import student_record

from textdistill import robustness
from textdistill.config import Config, load_config
from textdistill.pipeline import data_report, distill, prepare_data, robustness_stage

logger = logging.getLogger("student_embeddings")

SOURCES = ("word2vec", "teacher")
CNN = "{name: cnn, arch: {num_filters: 100}, max_length: 400}"


def variant_name(source: str, teacher_std: float | None) -> str:
    return "cnn-word2vec" if source == "word2vec" else f"cnn-teacher-pca-std{teacher_std:g}"


def variant_config(args: argparse.Namespace, source: str, seed: int, teacher_std: float | None = None) -> Config:
    """configs/imdb-cpu.yaml's ``cnn`` student alone, with embeddings from ``source`` (scaled to ``teacher_std``
    for the teacher's) and distill seed ``seed``."""
    std = [f"embeddings.teacher_std={teacher_std}"] if teacher_std is not None else []
    overrides = [
        f"data.path={args.data}",
        f"teacher.model={args.teacher}",
        "teacher.logits_dir=benchmarks/results/teacher_logits",
        f"out_dir=runs/student-embeddings/{variant_name(source, teacher_std)}-seed{seed}",
        f"student={CNN}",
        "students=[]",
        "distill.use_unlabelled=true",
        f"distill.epochs={args.epochs}",
        f"distill.seed={seed}",
        "distill.num_threads=1",
        f"embeddings.source={source}",
        "embeddings.workers=1",
        "report.robustness=on",
        *std,
        *args.overrides,
    ]
    return load_config("configs/imdb-cpu.yaml", overrides)


def linear_baseline_predictor(prepared) -> tuple[Any, dict[str, Any]]:
    """TF-IDF uni+bigram logistic regression on train (C chosen on validation): its predict function and scores."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from textdistill.tokens import normalise_text

    data = prepared.dataset
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True)
    train = vectorizer.fit_transform([normalise_text(t) for t in data.train.texts])
    validation = vectorizer.transform([normalise_text(t) for t in data.validation.texts])
    fitted = {c: LogisticRegression(C=c, max_iter=2000).fit(train, data.train.labels) for c in (1.0, 4.0, 16.0)}
    scores = {c: float((m.predict(validation) == data.validation.labels).mean()) for c, m in fitted.items()}
    best = max(scores, key=lambda c: scores[c])
    model = fitted[best]
    test = vectorizer.transform([normalise_text(t) for t in data.test.texts])
    record = {
        "C": best,
        "validation_accuracy": scores[best],
        "test_accuracy": float((model.predict(test) == data.test.labels).mean()),
    }
    return (lambda texts: model.predict(vectorizer.transform([normalise_text(t) for t in texts]))), record


def run_variant(
    args: argparse.Namespace, prepared, source: str, seed: int, teacher_std: float | None, teacher_dir: Path | None
) -> dict:
    config = variant_config(args, source, seed, teacher_std)
    started = time.perf_counter()
    embeddings = data_report(config, prepared)
    embedding_seconds = time.perf_counter() - started
    (summary,) = distill(config, prepared)
    checks = robustness_stage(config, prepared, teacher_dir, [summary])
    return {
        "variant": variant_name(source, teacher_std),
        "embeddings_source": source,
        "teacher_std": config.embeddings.teacher_std if source == "teacher" else None,
        "embeddings": embeddings.get("teacher_embeddings") or embeddings.get("word2vec"),
        "embeddings_seconds_with_cache": embedding_seconds,
        "student": student_record(summary),
        "robustness": checks["models"][summary["tag"]],
        "teacher_robustness": checks["models"].get("teacher"),
        "run_dir": config.out_dir,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--teacher", default="../shared/models/all-minilm-l6-v2")
    parser.add_argument("--teacher-dir", type=Path, default=None, help="a fine-tuned teacher to score on the checks")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument(
        "--teacher-stds",
        type=float,
        nargs="+",
        default=[0.25, 0.57],
        help="embeddings.teacher_std values tried with the teacher source (0.57: Word2Vec's std on this data)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    prepared = prepare_data(variant_config(args, "word2vec", args.seeds[0]))
    results: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "machine": machine(), "variants": []}
    if args.teacher_dir is not None:
        results["teacher_scored"] = teacher_record(args.teacher_dir)
    variants = [
        (source, std) for source in args.sources for std in (args.teacher_stds if source == "teacher" else [None])
    ]
    for seed in args.seeds:
        for source, std in variants:
            results["variants"].append(run_variant(args, prepared, source, seed, std, args.teacher_dir))
            write_result("student_embeddings.json", results)  # partial results survive an interrupted run
    predict, linear = linear_baseline_predictor(prepared)
    checks = validation_checks(variant_config(args, "word2vec", args.seeds[0]), prepared)
    linear["robustness"] = [s.to_dict() for s in robustness.score_model(checks, lambda t: np.asarray(predict(t)))]
    results["tfidf_logistic_regression"] = linear
    results["checks"] = [
        {"name": c.name, "kind": c.kind, "rows": len(c), "description": c.description} for c in checks
    ]
    results["wall_seconds"] = time.perf_counter() - started
    print(write_result("student_embeddings.json", results))
    print(json.dumps(summary_table(results), indent=1))


def teacher_record(model_dir: Path) -> dict[str, Any]:
    """Which fine-tuned teacher ``--teacher-dir`` names: its weights hash, settings and validation scores."""
    from textdistill.teachers.transformer import checkpoint_hash

    summary_path = model_dir / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {
        "dir": str(model_dir),
        "checkpoint": checkpoint_hash(model_dir),
        "validation": summary.get("validation"),
        "hyperparameters": summary.get("hyperparameters"),
        "tokens": summary.get("tokens"),
    }


def validation_checks(config: Config, prepared) -> list[robustness.CheckSet]:
    """The checks ``robustness_stage`` builds for ``config`` (same settings, same rows)."""
    validation, report = prepared.dataset.validation, config.report
    positive, _ = robustness.applies(str(report.robustness), prepared.dataset.label_names, report.positive_label)
    assert positive is not None
    settings = robustness.CheckSettings(report.robustness_seed, report.robustness_max_per_check)
    return robustness.build_checks(validation.texts, validation.labels, positive, settings)


def summary_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per model: validation/test accuracy and accuracy per check."""
    rows = []
    for variant in results["variants"]:
        student = variant["student"]
        checks = {s["check"]: round(s["accuracy"], 3) for s in variant["robustness"]}
        rows.append(
            {
                "model": f"{variant['variant']} seed {student['seed']}",
                "validation": student["best_validation_accuracy"],
                "test": student["test_accuracy"],
                **checks,
            }
        )
    linear = results.get("tfidf_logistic_regression")
    if linear:
        checks = {s["check"]: round(s["accuracy"], 3) for s in linear["robustness"]}
        rows.append(
            {
                "model": "tfidf-lr",
                "validation": linear["validation_accuracy"],
                "test": linear["test_accuracy"],
                **checks,
            }
        )
    return rows


if __name__ == "__main__":
    main()
