"""Vocabulary pruning and int8 chosen by measurement, on a trained IMDB student (issue 14, items 1-2).

For the saved student of a finished `textdistill distill` run and each vocabulary ``min_count`` (none, 1, 2, 5,
20, 50, 100, 200: tokens seen that often in the training and unlabelled inputs keep their embedding row, the
rest read [UNK]), this saves the deployable, exports it to ONNX and runs the deploy stage's int8 choice
(``deploy.ship_int8``: PyTorch float, ONNX float and ONNX int8 of all ops / all but Conv / embedding only,
each measured here for label agreement with that deployable's float model on validation and batch-1 latency
on one thread). It records bytes (weights, ONNX files, whole directory), rows kept, the pruned student's
validation agreement with the unpruned one, and test accuracy of the pruned float student and of the shipped
int8 file (test is scored once per variant, never used to choose). PyTorch dynamic int8 (torch.ao, Linear
layers only: the project ships int8 through ONNX Runtime) is measured once for reference.

    textdistill distill configs/imdb-cpu.yaml --set data.path=../shared/data/imdb \
        --set teacher.model=../shared/models/all-minilm-l6-v2 \
        --set teacher.logits_dir=benchmarks/results/teacher_logits --set out_dir=runs/vocab-cnn \
        --set distill.epochs=2 --only cnn
    OMP_NUM_THREADS=1 python benchmarks/vocab_pruning.py configs/imdb-cpu.yaml --tag cnn \
        --set data.path=../shared/data/imdb --set teacher.model=../shared/models/all-minilm-l6-v2 \
        --set teacher.logits_dir=benchmarks/results/teacher_logits --set out_dir=runs/vocab-cnn
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine, write_result

from textdistill.bench import bytes_on_disk, fixed_length_batch, serialized_bytes
from textdistill.compress import ONNX_INT8_NAME, ONNX_NAME, export_onnx, onnx_parity, prune_vocabulary_by_counts
from textdistill.compress.onnx import OnnxModule
from textdistill.config import load_config
from textdistill.deploy import batch1_latencies, ship_int8, training_inputs
from textdistill.inference import predict_logits
from textdistill.metrics import agreement
from textdistill.pipeline import prepare_data, student_inputs
from textdistill.students.hub import WEIGHTS_NAME, Student

logger = logging.getLogger("vocab_pruning")
MIN_COUNTS = (None, 1, 2, 5, 20, 50, 100, 200)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean())


def variant_record(
    student: Student, directory: Path, splits: dict[str, Any], reference: dict[str, np.ndarray], bar: float, runs: int
) -> dict[str, Any]:
    """Save, export and measure one deployable (pruned or not) in ``directory``."""
    pad = student.config["pad_id"]
    student.save_pretrained(directory)
    onnx_path = export_onnx(student.model, directory / ONNX_NAME, 17, student.token_settings.max_length)
    parity = onnx_parity(student.model, onnx_path, splits["validation"][:64], pad)
    int8 = ship_int8(student, onnx_path, splits["validation"], bar, runs=runs)
    validation = predict_logits(student.model, splits["validation"], pad)
    test = predict_logits(student.model, splits["test"], pad)
    record: dict[str, Any] = {
        "bytes": {
            "model.safetensors": bytes_on_disk(directory / WEIGHTS_NAME),
            ONNX_NAME: bytes_on_disk(onnx_path),
            "directory": bytes_on_disk(directory),
        },
        "onnx_parity_max_abs_diff": parity,
        "validation_agreement_with_unpruned": agreement(validation, reference["validation"]),
        "validation_accuracy": accuracy(validation, splits["validation_labels"]),
        "test_accuracy": accuracy(test, splits["test_labels"]),
        "test_agreement_with_unpruned": agreement(test, reference["test"]),
        "int8": int8,
    }
    if int8["shipped"]:
        shipped = OnnxModule(directory / ONNX_INT8_NAME, num_threads=1)
        int8_test = predict_logits(shipped, splits["test"], pad)
        record["bytes"][ONNX_INT8_NAME] = bytes_on_disk(directory / ONNX_INT8_NAME)
        record["int8_test_accuracy"] = accuracy(int8_test, splits["test_labels"])
        record["int8_test_agreement_with_unpruned"] = agreement(int8_test, reference["test"])
    return record


def torch_int8_reference(student: Student, splits: dict[str, Any], reference, runs: int) -> dict[str, Any]:
    """PyTorch dynamic int8 (torch.ao.quantization, Linear layers only) of the unpruned student, for comparison."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(student.model), {torch.nn.Linear}, dtype=torch.qint8
        )
    pad = student.config["pad_id"]
    validation = predict_logits(quantized, splits["validation"], pad)
    single = fixed_length_batch(splits["validation"], student.token_settings.max_length, 1, pad)
    latency = batch1_latencies({"pytorch int8": quantized, "pytorch float": student.model}, single, runs)
    return {
        "note": "torch.ao dynamic quantization: only nn.Linear becomes int8 (Conv1d and the embedding stay float)",
        "validation_agreement_with_float": agreement(validation, reference["validation"]),
        "latency_ms_p50": latency["pytorch int8"],
        "float_latency_ms_p50_same_round": latency["pytorch float"],
        "serialized_bytes": serialized_bytes(quantized),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--tag", default="cnn", help="the student tag under <out_dir>/students")
    parser.add_argument("--min-agreement", type=float, default=0.995)
    parser.add_argument("--runs", type=int, default=100, help="timed batch-1 calls per round (3 rounds)")
    parser.add_argument("--out", default="vocab_pruning.json", help="file name under benchmarks/results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)

    config = load_config(args.config, args.overrides)
    prepared = prepare_data(config)
    run_dir = Path(config.out_dir) / "students" / args.tag
    summary = json.loads((run_dir / "summary.json").read_text())
    student = Student.from_pretrained(summary["model_dir"])
    length = student.token_settings.max_length
    splits = {
        "validation": student_inputs(config, prepared, "validation", length),
        "test": student_inputs(config, prepared, "test", length),
        "validation_labels": prepared.dataset.validation.labels,
        "test_labels": prepared.dataset.test.labels,
    }
    training = training_inputs(config, prepared, length)
    pad = student.config["pad_id"]
    reference = {split: predict_logits(student.model, splits[split], pad) for split in ("validation", "test")}
    tokenizer = student.tokenizer
    out = Path(config.out_dir) / "vocab_pruning"
    rows = []
    for min_count in MIN_COUNTS:
        deployable, pruning = student, None
        if min_count is not None:
            model, pruning = prune_vocabulary_by_counts(
                student.model, training, min_count, tokenizer.all_special_ids, tokenizer.unk_token_id
            )
            deployable = Student(model, tokenizer, student.config)
        directory = out / f"min_count_{min_count or 'none'}"
        logger.info("min_count %s: measuring %s", min_count, directory)
        record = variant_record(deployable, directory, splits, reference, args.min_agreement, args.runs)
        rows.append({"min_count": min_count, "pruning": pruning} | record)
        logger.info("min_count %s: %s", min_count, json.dumps(rows[-1]["bytes"]))
    result = {
        "command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv),
        "machine": machine(),
        "model_dir": summary["model_dir"],
        "student": {"tag": args.tag, "arch": student.config["arch"], "max_length": length},
        "training_texts_counted": len(training),
        "validation_examples": len(splits["validation"]),
        "test_examples": len(splits["test"]),
        "min_agreement": args.min_agreement,
        "variants": rows,
        "pytorch_int8_reference": torch_int8_reference(student, splits, reference, args.runs),
    }
    print(write_result(args.out, result))


if __name__ == "__main__":
    main()
