"""The n-gram teacher on IMDB: NB-weighted logistic regression over binary word 1–3-grams (NBSVM-style).

Fitted on textdistill's 20,000-review train split with C chosen on the 5,000-review validation split, scored
once on the 25,000 test reviews; then 5-fold out-of-fold logits for the train split (the honest targets a
student would learn from) and a save → load round trip. Writes benchmarks/results/ngram_teacher.json.

    OMP_NUM_THREADS=1 python benchmarks/ngram_teacher.py --data ../shared/data/imdb
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, write_result
from sklearn.metrics import f1_score

from textdistill.config import DataConfig
from textdistill.data import load_dataset
from textdistill.teachers.ngram import NgramTeacher, NgramTeacherConfig


def accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == labels))


def timed(function, *args) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def round_trip(teacher: NgramTeacher, texts: list[str], logits: np.ndarray) -> dict[str, Any]:
    """Save, reload and compare logits bit for bit; the artifact's size on disk."""
    with tempfile.TemporaryDirectory() as directory:
        teacher.save(directory)
        size = sum(path.stat().st_size for path in Path(directory).iterdir())
        reloaded = NgramTeacher.load(directory).predict_logits(texts)
    return {"artifact_bytes": size, "reloaded_logits_identical": bool(np.array_equal(reloaded, logits))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data = load_dataset(DataConfig(path=args.data, use_unlabelled=False, seed=args.seed))
    config = NgramTeacherConfig(seed=args.seed, folds=args.folds)
    teacher, fit_seconds = timed(
        NgramTeacher(config).fit,
        data.train.texts,
        data.train.labels,
        data.validation.texts,
        data.validation.labels,
        data.label_names,
    )
    test_logits, test_seconds = timed(teacher.predict_logits, data.test.texts)
    in_sample = teacher.predict_logits(data.train.texts)
    oof_logits, oof_seconds = timed(teacher.out_of_fold_logits, data.train.texts, data.train.labels)
    summary = teacher.summary()
    result = {
        "system": "NB-weighted logistic regression, binary word n-grams (textdistill.teachers.ngram)",
        "config": summary["config"],
        "num_features": summary["num_features"],
        "validation_accuracy_by_C": summary["validation_accuracy_by_c"],
        "chosen_C": teacher.chosen_c,
        "validation_accuracy": teacher.validation_accuracy,
        "test_accuracy": accuracy(data.test.labels, test_logits),
        "test_macro_f1": float(f1_score(data.test.labels, test_logits.argmax(1), average="macro")),
        "train_accuracy_in_sample": accuracy(data.train.labels, in_sample),
        "train_accuracy_out_of_fold": accuracy(data.train.labels, oof_logits),
        "folds": args.folds,
        "fit_seconds": fit_seconds,  # vectorising train + validation, NB ratios, one fit per C
        "test_predict_seconds": test_seconds,
        "out_of_fold_seconds": oof_seconds,
        **round_trip(teacher, data.validation.texts, teacher.predict_logits(data.validation.texts)),
        "sizes": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
        "seed": args.seed,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
    }
    print(write_result("ngram_teacher.json", result))


if __name__ == "__main__":
    main()
