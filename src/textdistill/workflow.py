"""The whole run: data → embeddings → teacher → logits → students → compression → benchmark → robustness → report.

It sits above ``pipeline`` (data, teacher and student stages) and ``deploy`` (compression and benchmark
stages), so neither of those imports the other upward.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from textdistill.cache import atomic_write_json, atomic_write_text
from textdistill.config import Config, dump_config
from textdistill.deploy import best_student, cached_bench, compress_stage
from textdistill.distributed import is_main_process
from textdistill.pipeline import (
    data_report,
    domain_checks,
    embeddings_for,
    prepare_data,
    resolved_config,
    robustness_stage,
    student_plans,
    student_stage,
    teacher_logits_for,
    teacher_representations_for,
)
from textdistill.report import write_run_report
from textdistill.robustness import applies

logger = logging.getLogger(__name__)


def run(config: Config) -> dict[str, Any] | None:
    """Every stage of ``config``, each cached: a second run of a finished config does no work.

    Under ``accelerate launch`` every process prepares the data and makes the teacher's logits (DDP fine-tune,
    sharded logit pass); the main process then does the rest alone and the others return None.
    """
    started = time.perf_counter()
    plans = student_plans(config)
    prepared = prepare_data(config)
    # Fail before any training: checks "on" for a task they cannot run on, a domain check that cannot be read.
    positive, _ = applies(str(config.report.robustness), prepared.dataset.label_names, config.report.positive_label)
    domain = domain_checks(config.report, prepared.dataset, positive) if positive is not None else None
    teacher_model_dir, logits = (None, None)
    if any(plan.uses_teacher for plan in plans):
        teacher_model_dir, logits = teacher_logits_for(config, prepared)
    representations = teacher_representations_for(config, prepared, teacher_model_dir, plans)
    if not is_main_process():
        return None
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(resolved_config(config, prepared)))
    atomic_write_json(out / "data.json", data_report(config, prepared))
    embedding = embeddings_for(config, prepared) if config.embeddings.enabled else None
    summaries = [student_stage(config, prepared, plan, logits, embedding, representations) for plan in plans]
    best = best_student(summaries)
    compressed = compress_stage(config, prepared, summaries[0], best, logits)
    bench = cached_bench(config, prepared, teacher_model_dir, summaries, compressed)
    robustness = robustness_stage(config, prepared, teacher_model_dir, summaries, domain)
    metrics = {
        "students": summaries,
        "best_student": best["tag"],
        "compress": compressed,
        "bench": bench,
        "teacher": _teacher_summary(teacher_model_dir),
        "robustness": robustness,
        "wall_seconds": time.perf_counter() - started,
    }
    write_run_report(config, prepared.dataset.label_names, metrics)
    logger.info("run finished in %.0f s: %s", metrics["wall_seconds"], out / "results.md")
    return metrics


def _teacher_summary(model_dir: Path | None) -> dict[str, Any] | None:
    if model_dir is None or not (model_dir / "metrics.json").is_file():
        return None
    return json.loads((model_dir / "metrics.json").read_text())
