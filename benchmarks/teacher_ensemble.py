"""Two teachers on IMDB, one honest target: the n-gram teacher and the shipped MiniLM logits, calibrated and combined.

1. The n-gram teacher (NB-weighted logistic regression, binary word 1–3-grams) is fitted on the 20,000 train
   reviews with C chosen on validation; its train logits are 5-fold out-of-fold, its validation/test/unlabelled
   logits come from the full model.
2. The MiniLM logits are read from benchmarks/results/teacher_logits (aligned by example id, data fingerprints
   checked against its manifest). The MiniLM was fine-tuned on a stratified 10,000-row subset of train, so its
   train logits are in-sample for those rows (reported separately below), unlike the n-gram's.
3. Each teacher's temperature is fitted on validation; weight search and stacking are compared by 5-fold held-out
   validation NLL and the winner makes the ensemble target. Test is only scored, never used for a choice.

Writes benchmarks/results/teacher_ensemble.json and the logits of the n-gram teacher and of the ensemble (float16)
to benchmarks/results/teacher_logits_ngram/ and benchmarks/results/teacher_logits_ensemble/.

    OMP_NUM_THREADS=1 python benchmarks/teacher_ensemble.py --data ../shared/data/imdb
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, machine, write_result

from textdistill.config import DataConfig
from textdistill.data import Dataset, load_dataset, stratified_sample
from textdistill.teachers.ensemble import (
    EnsembleChoice,
    calibrate,
    choose_combiner,
    combine,
    fit_temperature,
    model_report,
    nll,
    teacher_report,
)
from textdistill.teachers.logits import read_logits_dir, write_logits_dir
from textdistill.teachers.ngram import NgramTeacher, NgramTeacherConfig

logger = logging.getLogger("teacher_ensemble")
MINILM_TRAIN_ROWS = 10000  # the shipped MiniLM's teacher.max_train (benchmarks/results/imdb-cpu-run/config.yaml)


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, function, *args, **kwargs):
        started = time.perf_counter()
        value = function(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - started
        logger.info("%s: %.0f s", name, self.seconds[name])
        return value


def ngram_logits(data: Dataset, seed: int, folds: int, timer: Timer) -> tuple[dict[str, np.ndarray], NgramTeacher]:
    """Out-of-fold train logits and full-model validation/test/unlabelled logits of the n-gram teacher."""
    config = NgramTeacherConfig(seed=seed, folds=folds)
    teacher = timer.run(
        "ngram_fit",
        NgramTeacher(config).fit,
        data.train.texts,
        data.train.labels,
        data.validation.texts,
        data.validation.labels,
        data.label_names,
    )
    logits = {"train": timer.run("ngram_out_of_fold", teacher.out_of_fold_logits, data.train.texts, data.train.labels)}
    for split, values in data.splits().items():
        if split != "train":
            logits[split] = timer.run(f"ngram_predict_{split}", teacher.predict_logits, values.texts)
    return logits, teacher


def minilm_logits(data: Dataset, directory: Path) -> dict[str, np.ndarray]:
    """The shipped logits, after checking that its manifest was made from exactly these splits."""
    manifest = json.loads((directory / "manifest.json").read_text())
    for split, values in data.splits().items():
        shipped = manifest["splits"][split]["key"]["data"]
        if shipped != values.fingerprint:
            raise ValueError(f"{directory}: {split} logits were made from data {shipped}, not {values.fingerprint}")
    split_ids = {split: values.ids for split, values in data.splits().items()}
    return read_logits_dir(directory, split_ids, len(data.label_names))


def in_sample_rows(data: Dataset, seed: int, rows: int = MINILM_TRAIN_ROWS) -> np.ndarray:
    """Boolean (n_train,): the rows the MiniLM was fine-tuned on (pipeline: stratified_sample with teacher.seed)."""
    if rows >= len(data.train):
        return np.ones(len(data.train), dtype=bool)
    mask = np.zeros(len(data.train), dtype=bool)
    mask[stratified_sample(data.train.labels, rows, seed)] = True
    return mask


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float | None:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else None


def train_honesty(
    data: Dataset, logits: dict[str, dict[str, np.ndarray]], seed: int, rows: int = MINILM_TRAIN_ROWS
) -> dict[str, Any]:
    """Train accuracy of each teacher on the MiniLM's fine-tuning rows and on the other train rows (if any)."""
    mask = in_sample_rows(data, seed, rows)
    labels = data.train.labels
    return {
        "minilm_fine_tuning_rows": int(mask.sum()),
        "note": "MiniLM train logits are in-sample on its fine-tuning rows; the n-gram's train logits are 5-fold "
        "out-of-fold everywhere. Accuracy on each part:",
        **{
            name: {
                "accuracy_minilm_fine_tuning_rows": _accuracy(values["train"][mask], labels[mask]),
                "accuracy_other_rows": _accuracy(values["train"][~mask], labels[~mask]),
            }
            for name, values in logits.items()
        },
    }


def evaluate(data: Dataset, calibrated: dict[str, dict[str, np.ndarray]], target: dict[str, np.ndarray]) -> dict:
    """Per teacher (calibrated) and ensemble on validation and test; agreement also on train and unlabelled."""
    result = {}
    for split, values in data.splits().items():
        models = {name: logits[split] for name, logits in calibrated.items()} | {"ensemble": target[split]}
        labels = values.labels if split in ("validation", "test") else None
        result[split] = teacher_report(models, labels)
    return result


def both_combiners(choice: EnsembleChoice, calibrated: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """{"weights" | "stacking": {split: (n, K) log-probabilities}} for validation and test."""
    by_split = {s: {name: c[s] for name, c in calibrated.items()} for s in ("validation", "test")}
    return {
        "weights": {s: combine(teachers, choice.weights) for s, teachers in by_split.items()},
        "stacking": {s: choice.stacker.log_probabilities(teachers) for s, teachers in by_split.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--minilm-logits", default=str(RESULTS / "teacher_logits"))
    parser.add_argument("--max-unlabelled", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--ngram-logits", help="reuse n-gram logits from this directory instead of fitting")
    parser.add_argument("--minilm-train-rows", type=int, default=MINILM_TRAIN_ROWS, help="rows it was fine-tuned on")
    parser.add_argument("--tag", default="", help="suffix of the result file and logits directory (e.g. _v2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    timer = Timer()
    data = timer.run("load_data", load_dataset, DataConfig(path=args.data, max_unlabelled=args.max_unlabelled))
    split_ids = {split: values.ids for split, values in data.splits().items()}
    if args.ngram_logits:  # reuse the logits written by an earlier run (teacher_logits_ngram/)
        ngram = read_logits_dir(args.ngram_logits, split_ids, len(data.label_names))
        ngram_info = json.loads((Path(args.ngram_logits) / "manifest.json").read_text())
    else:
        ngram, teacher = ngram_logits(data, args.seed, args.folds, timer)
        ngram_info = {"teacher": "ngram", "chosen_C": teacher.chosen_c, "train": f"{args.folds}-fold out-of-fold"}
        ngram_info |= {"validation_accuracy_by_C": teacher.validation_accuracy_by_c}
        ngram_info |= {"data_fingerprints": data.fingerprints(), "command": "python " + " ".join(sys.argv)}
        write_logits_dir(RESULTS / "teacher_logits_ngram", ngram, split_ids, ngram_info)
    raw = {"ngram": ngram, "minilm": minilm_logits(data, Path(args.minilm_logits))}

    val_labels = data.validation.labels
    temperatures = {name: fit_temperature(logits["validation"], val_labels) for name, logits in raw.items()}
    by_split = {
        split: calibrate({name: logits[split] for name, logits in raw.items()}, temperatures) for split in split_ids
    }
    calibrated = {name: {split: by_split[split][name] for split in split_ids} for name in raw}
    choice: EnsembleChoice = timer.run(
        "choose_combiner",
        choose_combiner,
        {name: logits["validation"] for name, logits in calibrated.items()},
        val_labels,
        step=args.step,
        folds=args.folds,
        seed=args.seed,
    )
    target = {split: choice.combine({name: c[split] for name, c in calibrated.items()}) for split in split_ids}

    result = {
        "system": "n-gram teacher + shipped MiniLM logits, temperature-calibrated on validation, combined by "
        "the winner of weight search vs stacking (held-out validation NLL)",
        "sizes": {split: len(ids) for split, ids in split_ids.items()},
        "ngram_teacher": {k: ngram_info.get(k) for k in ("chosen_C", "validation_accuracy_by_C", "train")},
        "temperatures": temperatures,
        "uncalibrated_nll": {
            name: {s: nll(logits[s], data.splits()[s].labels) for s in ("validation", "test")}
            for name, logits in raw.items()
        },
        "combiner": choice.to_dict(),
        "weight_search_vs_stacking": {
            "held_out_validation_nll": {"weights": choice.weight_search_nll, "stacking": choice.stacking_nll},
            "winner": choice.method,
        },
        "combiners_scored": {  # both combiners (fitted on all validation) on validation and test, for reference
            method: {s: model_report(values[s], data.splits()[s].labels) for s in ("validation", "test")}
            for method, values in both_combiners(choice, calibrated).items()
        },
        "reports": evaluate(data, calibrated, target),
        "train_targets": train_honesty(
            data, raw | {"ensemble": {"train": target["train"]}}, args.seed, args.minilm_train_rows
        ),
        "seconds": timer.seconds,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
    }
    common = {"data_fingerprints": data.fingerprints(), "command": result["command"]}
    write_logits_dir(
        RESULTS / f"teacher_logits_ensemble{args.tag}",
        target,
        split_ids,
        {
            "teacher": "ensemble of ngram + minilm",
            "values": "log-probabilities of the combined target (softmax gives the mixture)",
            "temperatures": temperatures,
            "combiner": choice.method,
            "weights" if choice.method == "weights" else "stacker": (
                choice.weights if choice.method == "weights" else choice.stacker.to_dict()
            ),
            **common,
        },
    )
    print(write_result(f"teacher_ensemble{args.tag}.json", result))


if __name__ == "__main__":
    main()
