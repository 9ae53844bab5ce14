"""The deploy-time int8 check of a saved student on real data, and what each deployable variant costs.

Exports the student to ONNX, quantizes it with ONNX Runtime (per-channel 7-bit weights; all ops, all but
convolutions, embedding only), measures each int8 model's label agreement with the float student on the
*validation* split and its batch-1 latency (the fastest that passes the bar ships, as `textdistill run` does),
scores the float and int8 models on test once, and times each variant at batch 1 (one thread) and batch 32
(all cores).

    python benchmarks/deploy_check.py --model-dir runs/imdb-cpu-deploy/students/cnn/model \
        --data ../shared/data/imdb --out deploy_check.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import machine, write_result

from textdistill.bench import BenchEntry, bench_models
from textdistill.compress import ONNX_NAME, OnnxModule, export_onnx
from textdistill.config import BenchConfig, DataConfig
from textdistill.data import load_dataset
from textdistill.deploy import ship_int8
from textdistill.inference import predict_logits
from textdistill.metrics import score
from textdistill.students.hub import Student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--data", required=True, help="the dataset directory (the run's data.path)")
    parser.add_argument("--min-agreement", type=float, default=0.995, help="compress.int8_min_agreement")
    parser.add_argument("--out", default="deploy_check.json", help="file name under benchmarks/results")
    args = parser.parse_args()

    student = Student.from_pretrained(args.model_dir)
    dataset = load_dataset(DataConfig(path=args.data, use_unlabelled=False))
    validation = student.sequences(dataset.validation.texts)
    test = student.sequences(dataset.test.texts)
    pad = student.config["pad_id"]
    work = Path(tempfile.mkdtemp(prefix="deploy-check-"))
    onnx_path = export_onnx(student.model, work / ONNX_NAME, 17, student.token_settings.max_length)
    check = ship_int8(student, onnx_path, validation, args.min_agreement)
    models = {"float (PyTorch)": student.model, "ONNX float": OnnxModule(onnx_path)}
    if check["shipped"]:
        models["ONNX int8"] = OnnxModule(onnx_path.with_name("model.int8.onnx"))
    float_test = predict_logits(student.model, test, pad)
    quality = {}
    for name, model in models.items():
        logits = float_test if model is student.model else predict_logits(model, test, pad)
        scores = score(dataset.test.labels, logits.argmax(-1), teacher_logits=float_test).to_dict()
        quality[name] = {"test_accuracy": scores["accuracy"], "agreement_with_float_student": scores["agreement"]}
    paths = {
        "float (PyTorch)": args.model_dir / "model.safetensors",
        "ONNX float": onnx_path,
        "ONNX int8": onnx_path.with_name("model.int8.onnx"),
    }
    entries = [BenchEntry(name, model, path=paths[name], quality=quality[name]) for name, model in models.items()]
    length = student.token_settings.max_length
    rows = bench_models(entries, BenchConfig(), [length], test[:256], pad_id=pad)
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(),
        "model_dir": str(args.model_dir),
        "int8_check_on_validation": check,
        "test": quality,
        "bench": rows,
        "bytes": {name: int(path.stat().st_size) for name, path in paths.items() if path.is_file()},
        "validation_examples": len(validation),
        "test_examples": len(test),
        "mean_tokens_test": float(np.mean([len(s) for s in test])),
    }
    print(write_result(args.out, result))


if __name__ == "__main__":
    main()
