"""The CPU reference run on IMDB: teacher, students, compression and efficiency, recorded as JSON.

Runs (or, with every stage cached, re-reads) `textdistill run configs/imdb-cpu.yaml` and writes
benchmarks/results/imdb_cpu_reference.json with, per model: test accuracy and F1, agreement with the
teacher, parameters, training wall time and examples/s, seeds; plus the teacher's fine-tuning and
logit-pass speed, the int8 logit-pass check, the pruning sweep and the efficiency table. The run
directory (results.md, plots) is runs/imdb-cpu.

    python benchmarks/imdb_cpu_reference.py --data ../shared/data/imdb \
        --teacher ../shared/models/all-minilm-l6-v2
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, write_result

from textdistill.config import load_config
from textdistill.pipeline import prepare_data, teacher_dir
from textdistill.workflow import run


def teacher_record(config, prepared) -> dict[str, Any]:
    """Fine-tuning and logit-pass figures of the cached reference teacher."""
    model_dir = teacher_dir(config, prepared) / "model"
    summary = json.loads((model_dir / "metrics.json").read_text())
    record: dict[str, Any] = {
        "model_dir": str(model_dir),
        "base_model": config.teacher.model,
        "train_examples": config.teacher.max_train or len(prepared.dataset.train),
        "train_seconds": summary["train_seconds"],
        "train_reviews_per_second": summary["train_reviews_per_second"],
        "validation": {k: summary["validation_metrics"][k] for k in ("accuracy", "macro_f1")},
        "test": {k: summary["test_metrics"][k] for k in ("accuracy", "macro_f1", "confusion_matrix")},
        "tokens": summary["tokens"],
        "hyperparameters": summary["hyperparameters"],
    }
    check = model_dir / "int8_logit_check.json"
    if check.is_file():
        record["int8_logit_pass_check"] = json.loads(check.read_text())
    timings = Path(config.cache_dir) / "logits" / "timings.jsonl"
    if timings.is_file():
        record["logit_pass_log"] = [json.loads(line) for line in timings.read_text().splitlines()]
    record["inference_measured_now"] = teacher_inference_speed(config, prepared, model_dir)
    return record


def teacher_inference_speed(config, prepared, model_dir: Path, count: int = 512) -> dict[str, Any]:
    """fp32 logit-pass throughput on ``count`` validation reviews, as the pipeline runs it (all cores)."""
    import torch

    from textdistill.inference import predict_logits
    from textdistill.pipeline import teacher_inputs
    from textdistill.teachers.transformer import load_teacher

    model = load_teacher(model_dir, "cpu")
    inputs = teacher_inputs(config, prepared, "validation")[:count]
    predict_logits(model, inputs[:64], prepared.tokenizer.pad_token_id, config.teacher.logit_batch_size)  # warm-up
    started = time.perf_counter()
    predict_logits(model, inputs, prepared.tokenizer.pad_token_id, config.teacher.logit_batch_size)
    seconds = time.perf_counter() - started
    return {
        "reviews": len(inputs),
        "seconds": seconds,
        "reviews_per_second": len(inputs) / seconds,
        "threads": torch.get_num_threads(),
        "batch_size": config.teacher.logit_batch_size,
    }


def student_record(summary: dict[str, Any]) -> dict[str, Any]:
    training = summary["training"]
    return {
        "tag": summary["tag"],
        "student": summary["student"],
        "arch": summary["student_config"]["arch"],
        "max_length": summary["student_config"]["max_length"],
        "distilled": summary["uses_teacher"],
        "train_examples": summary["train_examples"],
        "parameters": summary["parameters"],
        "test_accuracy": summary["test"]["accuracy"],
        "test_macro_f1": summary["test"]["macro_f1"],
        "test_agreement_with_teacher": summary["test"].get("agreement"),
        "best_validation_accuracy": training["best_val_accuracy"],
        "best_epoch": training["best_epoch"],
        "epochs_run": training["epochs_run"],
        "train_wall_seconds": training["wall_seconds"],
        "train_examples_per_second": training["train_examples_per_second"],
        "seed": summary["distill_config"]["seed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/imdb-cpu.yaml")
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--teacher", default="../shared/models/all-minilm-l6-v2")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = [f"data.path={args.data}", f"teacher.model={args.teacher}", *args.overrides]
    config = load_config(args.config, overrides)
    started = time.perf_counter()
    metrics = run(config)
    prepared = prepare_data(config)
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(),
        "wall_seconds_of_this_invocation": time.perf_counter() - started,
        "data_seed": config.data.seed,
        "teacher": teacher_record(config, prepared) if not config.teacher.logits_dir else None,
        "students": [student_record(s) for s in metrics["students"]],
        "best_student_by_validation": metrics["best_student"],
        "compress": metrics["compress"],
        "bench": metrics["bench"],
        "run_dir": config.out_dir,
    }
    print(write_result("imdb_cpu_reference.json", result))


if __name__ == "__main__":
    main()
