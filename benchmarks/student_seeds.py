"""One student, several seeds, distilled vs hard labels: mean ± sd of every score and the paired gain.

Runs `textdistill data` once per variant (tokens, transfer texts and Word2Vec, cached: a variant that changes none
of them finds them made), then `textdistill distill` for every (variant, seed) with one torch thread per process,
`--jobs` at a time, each in runs/seeds/<name>/<variant>-<seed>. Every variant gets the same --set overrides plus
its own; the student is chosen on validation by early stopping, and the test set is scored once per trained model.
Then every student (and, with --teacher-dir, the teacher once) is scored on the robustness checks built from
validation (``textdistill.robustness``). Writes benchmarks/results/student_seeds_<name>.json. With
``--logits-threads N`` each variant's teacher logits are made (or reused) once, on N threads, before the seeds
start: new transfer texts are then labelled once, not by every parallel seed.

    PYTHONPATH=src python benchmarks/student_seeds.py --name cnn-v2 \\
        --set teacher.logits_dir=benchmarks/results/teacher_logits_v2 --set student.name=cnn \\
        --variant "distilled=" \\
        --variant "hard-labels=distill.soft_weight=0;distill.hard_weight=1;distill.use_unlabelled=false"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import machine, write_result

SCORES = ("test_accuracy", "test_macro_f1", "test_agreement", "validation_accuracy")
CHECKS = {
    "negation": "flip: negation",
    "verb_negation": "flip: verb negation",
    "never": "flip: never",
    "antonym": "flip: antonym",
    "slice": "slice",
    "invariance": "invariance",
    "emotion_tweets": "domain: emotion tweets",
    "goemotions_comments": "domain: GoEmotions comments",
}


def textdistill(command: str, config: str, overrides: list[str], log: Path, threads: int = 1) -> None:
    """Run one textdistill command in a subprocess (``threads`` torch threads), its output in ``log``."""
    arguments = [sys.executable, "-m", "textdistill", command, config]
    for override in overrides:
        arguments += ["--set", override]
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        subprocess.run(arguments, check=True, stdout=stream, stderr=subprocess.STDOUT, env=env)


def student_summary(run_dir: Path) -> dict[str, Any]:
    """The summary.json of the one student of a finished distill run, its ``model_dir`` the model beside it (the
    run directory may have moved since it was written)."""
    (path,) = sorted(run_dir.glob("students/*/summary.json"))
    return json.loads(path.read_text()) | {"model_dir": str(path.parent / "model")}


def record(run_dir: Path) -> dict[str, Any]:
    """The scores of the one student of a finished distill run."""
    summary = student_summary(run_dir)
    return {
        "test_accuracy": summary["test"]["accuracy"],
        "test_macro_f1": summary["test"]["macro_f1"],
        "test_agreement": summary["test"].get("agreement"),
        "validation_accuracy": summary["training"]["best_val_accuracy"],
        "best_epoch": summary["training"]["best_epoch"],
        "train_wall_seconds": summary["training"]["wall_seconds"],
    }


def robustness_scores(config_path: str, runs: list[tuple[list[str], Path]], teacher_dir: Path | None) -> dict:
    """Each run's student (and the teacher, once) on the robustness checks: {run_dir or "teacher": [check rows]}.

    ``runs`` holds each run's overrides and directory; the checks come from the validation split, the same for all.
    """
    from textdistill.config import load_config
    from textdistill.pipeline import prepare_data, robustness_stage

    scores: dict[str, Any] = {}
    prepared = None
    for index, (overrides, run_dir) in enumerate(runs):
        config = load_config(config_path, overrides + ["report.robustness=on"])
        prepared = prepared or prepare_data(config)
        summary = student_summary(run_dir)
        checks = robustness_stage(config, prepared, teacher_dir if index == 0 else None, [summary])
        scores[str(run_dir)] = checks["models"][summary["tag"]]
        if index == 0 and teacher_dir is not None:
            scores["teacher"] = checks["models"]["teacher"]
    return scores


def check_accuracy(rows: list[dict[str, Any]], prefix: str) -> float | None:
    """The example-weighted accuracy of the checks whose name starts with ``prefix``."""
    chosen = [row for row in rows if row["check"].startswith(prefix) and row.get("accuracy") is not None]
    examples = sum(row["examples"] for row in chosen)
    return sum(row["accuracy"] * row["examples"] for row in chosen) / examples if examples else None


def spread(values: list[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    sd = statistics.stdev(present) if len(present) > 1 else 0.0
    return {"mean": statistics.fmean(present), "sd": sd, "n": len(present)}


def log_beside(run_dir: Path) -> Path:
    """``<run_dir>.log`` (not ``with_suffix``, which would cut a name like ``dropout-0.25-42`` at its dot)."""
    return run_dir.parent / f"{run_dir.name}.log"


def parse_variants(raw: list[str]) -> dict[str, list[str]]:
    variants = {}
    for item in raw:
        name, _, overrides = item.partition("=")
        variants[name] = [o for o in overrides.split(";") if o]
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--config", default="configs/imdb-cpu.yaml")
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--teacher", default="../shared/models/all-minilm-l6-v2")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--variant", action="append", default=[], help="NAME=k=v;k=v (the first is the reference)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--teacher-dir", type=Path, help="the teacher's model directory, scored on the checks once")
    parser.add_argument(
        "--logits-threads",
        type=int,
        default=0,
        help="first compute (or reuse) each variant's teacher logits once with this many torch threads, so that "
        "parallel seeds do not all label the same new texts (0: off; the teacher is fine-tuned if not cached)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    common = [f"data.path={args.data}", f"teacher.model={args.teacher}", "students=[]", *args.overrides]
    root = Path("runs/seeds") / args.name
    started = time.perf_counter()
    variants = parse_variants(args.variant or ["distilled="])
    for variant in variants:  # before the parallel seeds, which would otherwise each train the same Word2Vec
        data_dir = root / f"data-{variant}"
        textdistill("data", args.config, common + variants[variant] + [f"out_dir={data_dir}"], log_beside(data_dir))
    jobs = [(variant, seed) for variant in variants for seed in args.seeds]

    def overrides_of(variant: str, seed: int) -> tuple[list[str], Path]:
        run_dir = root / f"{variant}-{seed}"
        return common + variants[variant] + [f"distill.seed={seed}", f"out_dir={run_dir}"], run_dir

    def run(job: tuple[str, int]) -> dict[str, Any]:
        variant, seed = job
        overrides, run_dir = overrides_of(*job)
        logging.info("start %s seed %d", variant, seed)
        textdistill("distill", args.config, overrides, log_beside(run_dir))
        return {"variant": variant, "seed": seed, **record(run_dir)}

    if args.logits_threads:
        for variant in variants:
            overrides = common + variants[variant] + [f"out_dir={root}/logits-{variant}"]
            textdistill("logits", args.config, overrides, root / f"logits-{variant}.log", args.logits_threads)
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(run, jobs))
    checks = robustness_scores(args.config, [overrides_of(*job) for job in jobs], args.teacher_dir)
    for entry, job in zip(runs, jobs, strict=True):
        entry["robustness"] = checks[str(overrides_of(*job)[1])]
        for family, prefix in CHECKS.items():
            entry[f"{family}_accuracy"] = check_accuracy(entry["robustness"], prefix)
    scored = SCORES + tuple(f"{family}_accuracy" for family in CHECKS)
    summary = {v: {s: spread([r[s] for r in runs if r["variant"] == v]) for s in scored} for v in variants}
    reference = next(iter(variants))
    gains = {
        v: spread(
            [
                a["test_accuracy"] - b["test_accuracy"]
                for a in runs
                for b in runs
                if a["variant"] == reference and b["variant"] == v and a["seed"] == b["seed"]
            ]
        )
        for v in list(variants)[1:]
    }
    result = {
        "command": "PYTHONPATH=src python " + " ".join(sys.argv),
        "machine": machine(),
        "threads_per_run": 1,
        "parallel_runs": args.jobs,
        "seeds": args.seeds,
        "variants": variants,
        "summary": summary,
        "teacher_robustness": checks.get("teacher"),
        f"test_accuracy_gain_of_{reference}_over": gains,
        "runs": runs,
        "wall_seconds": time.perf_counter() - started,
    }
    logging.info("wrote %s", write_result(f"student_seeds_{args.name}.json", result))


if __name__ == "__main__":
    main()
