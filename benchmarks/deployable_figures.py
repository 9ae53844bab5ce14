"""Honest figures for one deployable student beside its teacher (issue 14, item 4), measured in one run.

For a saved student directory (e.g. the `chosen/` model of `textdistill search`) and the teacher's model directory:
batch-1 latency p50/p90 on one thread and batch-32 throughput on all cores for every file the directory ships
(PyTorch float, ONNX float, ONNX int8) and for the teacher at 128 tokens (one window); the teacher at its own
settings too (every 128-token window of a real review, stride 96, one batch per review, mean logits; bf16 autocast
as the preset runs it, and fp32); bytes of the int8 file, of what serving it needs (int8 file,
tokenizer, config) and of the whole directory; test accuracy and agreement with the teacher's committed test
logits; and a loopback `serve` load test of the int8 file at concurrency 1 and 16 (`load_test.py`). With
`--float-student` (the best float student of the benchmark, e.g. a run of the preset) that student is scored on test
and timed in the same run, and the deployable's gap to it is reported. Quiet machine assumed: run nothing else
meanwhile. Writes benchmarks/results/deployable_figures.json.

    PYTHONPATH=src python benchmarks/deployable_figures.py --student runs/search-budget-24/search/chosen \\
        --teacher .cache/textdistill/teachers/2baf8f78e7cc017c/model
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine, write_result

from textdistill.bench import bench_directories, bytes_on_disk, markdown_table, torch_threads
from textdistill.compress import ONNX_INT8_NAME, load_onnx_student
from textdistill.config import BenchConfig, load_config
from textdistill.inference import aggregate_windows
from textdistill.pipeline import prepare_data
from textdistill.students.hub import Student
from textdistill.teachers.logits import read_logits_dir
from textdistill.teachers.transformer import load_teacher
from textdistill.tokens import chunk_windows, pad_batch

SERVING_FILES = (ONNX_INT8_NAME, "config.json", "tokenizer.json", "tokenizer_config.json")


def test_scores(student_dir: Path, prepared, logits_dir: Path) -> dict[str, Any]:
    """Test accuracy of the int8 file and its agreement with the whole-review teacher's committed test logits."""
    test = prepared.dataset.test
    teacher = read_logits_dir(logits_dir, {"test": test.ids}, len(prepared.dataset.label_names))["test"]
    student = load_onnx_student(student_dir, ONNX_INT8_NAME, num_threads=1)
    predicted = student.predict_logits(prepared.dataset.test.texts).argmax(-1)
    labels = prepared.dataset.test.labels
    return {
        "test_accuracy": float((predicted == labels).mean()),
        "test_agreement_with_teacher": float((predicted == teacher.argmax(-1)).mean()),
        "teacher_test_accuracy": float((teacher.argmax(-1) == labels).mean()),
        "examples": len(labels),
    }


def float_student_scores(student_dir: Path, prepared) -> dict[str, Any]:
    """Test accuracy of a saved student's float (PyTorch) weights."""
    student = Student.from_pretrained(student_dir)
    predicted = student.predict_logits(prepared.dataset.test.texts).argmax(-1)
    return {"directory": str(student_dir), "test_accuracy": float((predicted == prepared.dataset.test.labels).mean())}


def whole_review_teacher_latency(teacher_dir: Path, config, prepared, reviews: int = 60) -> dict[str, Any]:
    """Batch-1 latency of the teacher as the preset runs it: all windows of one review in one batch, on one thread.

    ``reviews`` real test reviews (each timed once after a warm-up pass); p50/p90 in ms, fp32 and bf16 autocast.
    """
    model, encoded = load_teacher(teacher_dir, "cpu"), prepared.encoded["test"].subset(list(range(reviews)))
    windows, owners = chunk_windows(
        encoded, config.tokens.teacher_max_length, config.teacher.chunk_stride, prepared.special
    )
    batches = [
        pad_batch([w for w, o in zip(windows, owners, strict=True) if o == row], prepared.special.pad)
        for row in range(reviews)
    ]
    result: dict[str, Any] = {"reviews": reviews, "windows_per_review": len(windows) / reviews}
    for mode in ("fp32", "bf16"):
        seconds = []
        bf16 = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")
        with torch_threads(1), torch.inference_mode(), bf16:
            for timed in (False, True):
                for input_ids, attention_mask in batches:
                    start = time.perf_counter()
                    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float().numpy()
                    aggregate_windows(logits, np.zeros(len(logits), dtype=np.int64), 1, config.teacher.chunk_aggregate)
                    if timed:
                        seconds.append(time.perf_counter() - start)
        result[mode] = {"p50_ms": 1000 * float(np.median(seconds)), "p90_ms": 1000 * float(np.quantile(seconds, 0.9))}
    return result


def load_test(student_dir: Path) -> dict[str, Any]:
    """``load_test.py`` on the int8 file at concurrency 1 and 16."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "load.json"
        command = [sys.executable, str(Path(__file__).with_name("load_test.py")), "--model-dir", str(student_dir)]
        command += ["--onnx-file", ONNX_INT8_NAME, "--concurrency", "1", "16", "--out", str(out)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", type=Path, required=True, help="a saved student directory with model.int8.onnx")
    parser.add_argument("--teacher", type=Path, required=True, help="the fine-tuned teacher's model directory")
    parser.add_argument("--teacher-base", default="../shared/models/all-minilm-l6-v2")
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--logits", default="benchmarks/results/teacher_logits_v2")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--float-student", type=Path, help="the best float student, scored and timed beside it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # the preset's teacher settings; only the labelled splits are read (no unlabelled pool, no transfer texts)
    overrides = [f"data.path={args.data}", f"teacher.model={args.teacher_base}", "data.use_unlabelled=false"]
    config = load_config("configs/imdb-cpu-whole-review.yaml", [*overrides, "transfer.sources=[]"])
    prepared = prepare_data(config)
    scores = test_scores(args.student, prepared, Path(args.logits))
    texts = prepared.dataset.test.texts[:512]  # real reviews as benchmark inputs
    students = [args.student] + ([args.float_student] if args.float_student else [])
    lengths = {json.loads((d / "config.json").read_text())["tokenization"]["max_length"] for d in students}
    settings = BenchConfig(runs=args.runs)
    bench = bench_directories(students, settings, texts, lengths=sorted({128} | lengths))
    teacher_bench = bench_directories([args.teacher], settings, texts, lengths=[128])  # one window: 512 positions
    bench["rows"] += teacher_bench["rows"]
    bench["markdown"], bench["profiles"] = markdown_table(bench["rows"]), bench["profiles"] | teacher_bench["profiles"]
    if args.float_student:
        best = float_student_scores(args.float_student, prepared)
        scores["best_float_student"] = best
        scores["points_below_best_float_student"] = 100 * (best["test_accuracy"] - scores["test_accuracy"])
    sizes = {
        "int8_file_bytes": bytes_on_disk(args.student / ONNX_INT8_NAME),
        "serving_files_bytes": sum(bytes_on_disk(args.student / name) for name in SERVING_FILES),
        "directory_bytes": sum(bytes_on_disk(path) for path in args.student.iterdir() if path.is_file()),
        "teacher_directory_bytes": sum(bytes_on_disk(p) for p in args.teacher.iterdir() if p.is_file()),
    }
    result = {
        "command": "PYTHONPATH=src python " + " ".join(sys.argv),
        "machine": machine(),
        "student": str(args.student),
        "teacher": str(args.teacher),
        "scores": scores,
        "sizes": sizes,
        "bench_rows": bench["rows"],
        "bench_markdown": bench["markdown"],
        "teacher_whole_review": whole_review_teacher_latency(args.teacher, config, prepared),
        "load_test": load_test(args.student),
        "profiles": bench["profiles"],
    }
    logging.info("%s", bench["markdown"])
    logging.info("wrote %s", write_result("deployable_figures.json", result))


if __name__ == "__main__":
    main()
