"""Pilot: which truncation should the CPU reference teacher use at 128 tokens?

Fine-tunes the 6-layer BERT for one epoch on a stratified subset of the *training* split for each
candidate and scores it on a subset of the *validation* split (never the test set). Writes
benchmarks/results/teacher_pilot.json.

    PYTHONPATH=src python benchmarks/teacher_pilot.py --data ../shared/data/imdb \
        --model ../shared/models/all-minilm-l6-v2 --train 800 --validation 1000
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from textdistill.cache import ArtifactCache
from textdistill.config import DataConfig, TeacherConfig
from textdistill.data import load_dataset, stratified_sample
from textdistill.inference import predict_logits
from textdistill.metrics import classification_metrics
from textdistill.teachers.transformer import fine_tune, load_teacher
from textdistill.tokens import SpecialIds, encode_cached, load_tokenizer, model_inputs

CANDIDATES = [(128, "head+tail"), (128, "head")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/imdb")
    parser.add_argument("--model", default="../shared/models/all-minilm-l6-v2")
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/teacher_pilot.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(DataConfig(path=args.data, use_unlabelled=False, seed=args.seed))
    tokenizer = load_tokenizer(args.model)
    cache = ArtifactCache(".cache/textdistill")
    train = dataset.train.subset(stratified_sample(dataset.train.labels, args.train, args.seed))
    val = dataset.validation.subset(stratified_sample(dataset.validation.labels, args.validation, args.seed))
    encoded = {
        name: encode_cached(s.texts, s.fingerprint, tokenizer, cache, name) for name, s in [("t", train), ("v", val)]
    }
    special = SpecialIds.of(tokenizer)
    results = []
    for max_length, strategy in CANDIDATES:
        train_in = model_inputs(encoded["t"], max_length, strategy, special)
        val_in = model_inputs(encoded["v"], max_length, strategy, special)
        config = TeacherConfig(model=args.model, epochs=1.0, batch_size=16, body_lr=5e-5, head_lr=1e-3, seed=args.seed)
        work = Path(f"/tmp/teacher-pilot-{max_length}-{strategy}")
        summary = fine_tune(
            (train_in, train.labels), (val_in, val.labels), dataset.label_names, tokenizer, config, work
        )
        model = load_teacher(work / "model", "cpu")
        started = time.perf_counter()
        logits = predict_logits(model, val_in, tokenizer.pad_token_id, batch_size=64)
        infer_seconds = time.perf_counter() - started
        metrics = classification_metrics(val.labels, logits.argmax(-1), 2)
        results.append(
            {
                "max_length": max_length,
                "truncation": strategy,
                "validation_accuracy": metrics["accuracy"],
                "validation_macro_f1": metrics["macro_f1"],
                "train_seconds": summary["train_seconds"],
                "train_reviews_per_second": summary["train_reviews_per_second"],
                "inference_reviews_per_second": len(val_in) / infer_seconds,
            }
        )
        logging.info("pilot %s", results[-1])
    record = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads (2-core CPU)",
        "command": "PYTHONPATH=src python benchmarks/teacher_pilot.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "train_examples": args.train,
        "validation_examples": args.validation,
        "seed": args.seed,
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
