"""One table from several student_seeds_<name>.json files: every variant's mean ± sd, and paired gains across files.

`student_seeds.py` pairs variants within one invocation; this pairs a variant of one file with a variant of another
by seed (e.g. distilled vs hard labels run as separate invocations). Writes benchmarks/results/student_summary.json
and prints a markdown table.

    python benchmarks/student_summary.py --runs cnn-v2-teacher cnn-v2-hard-labels cnn-v2-long cnn-v2-transfer \\
        --gain cnn-v2-teacher/teacher-embeddings cnn-v2-hard-labels/hard-labels
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from _common import RESULTS, write_result
from student_seeds import CHECKS, check_accuracy, spread

COLUMNS = (
    "validation_accuracy",
    "test_accuracy",
    "test_agreement",
    "negation_accuracy",
    "verb_negation_accuracy",
    "never_accuracy",
    "antonym_accuracy",
    "slice_accuracy",
    "invariance_accuracy",
    "emotion_tweets_accuracy",
    "goemotions_comments_accuracy",
)


def load_runs(names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """{"<file name>/<variant>": that variant's runs (one per seed)}; a check family a run did not record is taken
    from checks_rescored.json (``rescore_checks.py``) when that file scored the run's saved student."""
    rescored = _rescored()
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        for run in json.loads((RESULTS / f"student_seeds_{name}.json").read_text())["runs"]:
            _fill_missing(run, rescored["runs"].get((name, run["variant"], run["seed"])))
            runs.setdefault(f"{name}/{run['variant']}", []).append(run)
    return runs


def _rescored() -> dict[str, Any]:
    """checks_rescored.json as {"runs": {(name, variant, seed): check rows}, "teacher": check rows}."""
    path = RESULTS / "checks_rescored.json"
    if not path.is_file():
        return {"runs": {}, "teacher": None}
    recorded = json.loads(path.read_text())
    rows = {(r["run"], r["variant"], r["seed"]): r["robustness"] for r in recorded["runs"]}
    return {"runs": rows, "teacher": recorded.get("teacher_robustness")}


def check_families(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Accuracy per check family (``<family>_accuracy``) of one model's check rows."""
    return {f"{family}_accuracy": check_accuracy(rows, prefix) for family, prefix in CHECKS.items()}


def teacher_checks(names: list[str]) -> dict[str, float | None]:
    """The teacher's accuracy per check family, from the first file that scored it; families it did not score from
    checks_rescored.json."""
    found: dict[str, float | None] = {}
    for name in names:
        rows = json.loads((RESULTS / f"student_seeds_{name}.json").read_text()).get("teacher_robustness")
        if rows:
            found = check_families(rows)
            break
    _fill_missing(found, _rescored()["teacher"])
    return found


def _fill_missing(record: dict[str, Any], rows: list[dict[str, Any]] | None) -> None:
    """Set each check family ``record`` lacks (absent or None) from the check ``rows`` (rescored), if any."""
    for family, accuracy in (check_families(rows) if rows else {}).items():
        if record.get(family) is None:
            record[family] = accuracy


def cell(values: list[float | None]) -> str:
    stats = spread(values)
    if stats is None:
        return "–"
    return f"{stats['mean']:.4f}" + (f" ± {stats['sd']:.4f}" if stats["n"] > 1 else "")


def paired_gain(first: list[dict[str, Any]], second: list[dict[str, Any]], score: str) -> dict[str, Any]:
    """``score`` of ``first`` minus ``second``, seed by seed."""
    by_seed = {run["seed"]: run[score] for run in second}
    gains = [run[score] - by_seed[run["seed"]] for run in first if run["seed"] in by_seed]
    return (spread(gains) or {}) | {"seeds": sorted(run["seed"] for run in first if run["seed"] in by_seed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="names of student_seeds_<name>.json files")
    parser.add_argument("--gain", nargs=2, action="append", default=[], metavar=("VARIANT", "BASELINE"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = load_runs(args.runs)
    teacher = teacher_checks(args.runs)
    header = "| variant | seeds | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 2)]
    for variant, entries in runs.items():
        cells = [cell([run.get(column) for run in entries]) for column in COLUMNS]
        lines.append(f"| {variant} | {len(entries)} | " + " | ".join(cells) + " |")
    if teacher:
        checks = " | ".join(cell([teacher.get(column)]) for column in COLUMNS[3:])
        lines.append(f"| teacher (checks only) | – | – | – | – | {checks} |")
    gains = {f"{a} over {b}": paired_gain(runs[a], runs[b], "test_accuracy") for a, b in args.gain}
    validation_gains = {f"{a} over {b}": paired_gain(runs[a], runs[b], "validation_accuracy") for a, b in args.gain}
    table = "\n".join(lines)
    logging.info(
        "%s\ntest: %s\nvalidation: %s", table, json.dumps(gains, indent=2), json.dumps(validation_gains, indent=2)
    )
    summary = {
        variant: {c: spread([r.get(c) for r in entries]) for c in COLUMNS if entries[0].get(c)}
        for variant, entries in runs.items()
    }
    result = {
        "sources": args.runs,
        "summary": summary,
        "teacher_checks": teacher,
        "test_accuracy_gains": gains,
        "validation_accuracy_gains": validation_gains,
    }
    result["markdown"] = table
    logging.info("wrote %s", write_result("student_summary.json", result))


if __name__ == "__main__":
    main()
