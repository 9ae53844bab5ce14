"""Record the students of a finished `textdistill distill` run (their summary.json files) as benchmark JSON.

    textdistill distill configs/imdb-cpu-flagship.yaml --set data.path=../shared/data/imdb \
        --set teacher.model=../shared/models/all-minilm-l6-v2
    python benchmarks/record_students.py --run-dir runs/imdb-cpu-flagship --out flagship_transfer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import machine, write_result
from imdb_cpu_reference import student_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, help="file name under benchmarks/results")
    args = parser.parse_args()
    summaries = sorted((args.run_dir / "students").glob("*/summary.json"))
    if not summaries:
        raise SystemExit(f"{args.run_dir}: no students/*/summary.json (has the distill run finished?)")
    students = [student_record(json.loads(path.read_text())) for path in summaries]
    config = (args.run_dir / "students").parent
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(),
        "run_dir": str(config),
        "students": students,
    }
    print(write_result(args.out, result))


if __name__ == "__main__":
    main()
