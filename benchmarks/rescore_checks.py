"""Score the saved students of earlier ``student_seeds.py`` runs (and the teacher) on today's robustness checks.

A check added after a run was recorded (e.g. ``flip: verb negation``) is then measured for that run's students
without training them again. Reads benchmarks/results/student_seeds_<name>.json for each ``--runs`` name (which
variants and seeds exist) and the students under runs/seeds/<name>/<variant>-<seed>; ``--set`` must repeat the
teacher's reading settings of those runs (``teacher.inference`` ...) so the teacher is scored as it was. Writes
benchmarks/results/checks_rescored.json: every run's check rows, and per variant the mean ± sd of each check's
accuracy.

    PYTHONPATH=src python benchmarks/rescore_checks.py --runs cnn-v2-sentences cnn-v2-negation \\
        --teacher-dir .cache/textdistill/teachers/<key>/model --set teacher.inference=chunks
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

from _common import RESULTS, machine, write_result
from student_seeds import robustness_scores, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="student_seeds.py --name values")
    parser.add_argument("--config", default="configs/imdb-cpu.yaml")
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--teacher", default="../shared/models/all-minilm-l6-v2")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--teacher-dir", type=Path, help="the teacher's model directory, scored once")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    common = [f"data.path={args.data}", f"teacher.model={args.teacher}", "students=[]", *args.overrides]
    jobs = []  # (name, variant, seed, run_dir)
    for name in args.runs:
        recorded = json.loads((RESULTS / f"student_seeds_{name}.json").read_text(encoding="utf-8"))
        for run in recorded["runs"]:
            variant, seed = run["variant"], run["seed"]
            jobs.append((name, variant, seed, Path("runs/seeds") / name / f"{variant}-{seed}"))
    scores = robustness_scores(args.config, [(common + [f"out_dir={d}"], d) for *_, d in jobs], args.teacher_dir)
    runs = [
        {"run": name, "variant": variant, "seed": seed, "robustness": scores[str(run_dir)]}
        for name, variant, seed, run_dir in jobs
    ]
    accuracies: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))  # variant → check → seeds
    for run in runs:
        for row in run["robustness"]:
            accuracies[f"{run['run']}/{run['variant']}"][row["check"]].append(row["accuracy"])
    result = {
        "command": "PYTHONPATH=src python " + " ".join(sys.argv),
        "machine": machine(),
        "summary": {key: {check: spread(by_seed) for check, by_seed in c.items()} for key, c in accuracies.items()},
        "teacher_robustness": scores.get("teacher"),
        "runs": runs,
        "wall_seconds": time.perf_counter() - started,
    }
    logging.info("wrote %s", write_result("checks_rescored.json", result))


if __name__ == "__main__":
    main()
