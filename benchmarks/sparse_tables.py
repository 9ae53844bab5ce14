"""Training speed of ``ngram-bag`` with dense AdamW vs sparse gradients (``arch.sparse_gradients``, lazy Adam).

Runs the project's own training loop (``train_student``: hybrid loss, clipping, schedule) for ``--steps`` optimizer
steps of batch 64 on random token ids of one length, once per (bigram_buckets, sparse_gradients), and records the
loop's own training examples per second (checkpoint writing excluded). Random ids are the hard case for a
sparse table (every batch touches ~batch × length distinct rows); real text repeats rows within a batch.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/sparse_tables.py
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import machine, write_result

from textdistill.config import DistillConfig
from textdistill.students import build_student
from textdistill.train import DistillData, train_student

VOCAB, PAD, BATCH = 30522, 0, 64


def random_data(rows: int, length: int, seed: int) -> DistillData:
    """``rows`` sequences of ``length`` random token ids with random teacher logits and labels."""
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(1, VOCAB, size=length).astype(np.int64) for _ in range(rows)]
    logits = rng.normal(size=(rows, 2)).astype(np.float32)
    return DistillData(sequences, rng.integers(0, 2, size=rows), logits)


def examples_per_second(buckets: int, sparse: bool, length: int, steps: int) -> float:
    """Training examples per second of ngram-bag (embedding 100) over its first ``steps`` steps."""
    torch.manual_seed(0)
    arch = {"embedding_dim": 100, "bigram_buckets": buckets, "sparse_gradients": sparse}
    model = build_student("ngram-bag", arch, vocab_size=VOCAB, num_labels=2, pad_id=PAD)
    train = random_data(BATCH * (steps + 1), length, seed=1)  # more than ``steps`` batches: the epoch never ends
    validation = random_data(BATCH, length, seed=2)
    config = DistillConfig(epochs=1, batch_size=BATCH, seed=0)
    with tempfile.TemporaryDirectory() as directory:
        result = train_student(model, train, validation, config, Path(directory), PAD, max_steps=steps)
    return result.train_examples_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buckets", type=int, nargs="+", default=[20_000, 500_000])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 768])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = []
    for buckets in args.buckets:
        for length in args.lengths:
            speeds = {s: examples_per_second(buckets, s, length, args.steps) for s in (False, True)}
            rows.append(
                {
                    "bigram_buckets": buckets,
                    "length": length,
                    "dense_examples_per_second": speeds[False],
                    "sparse_examples_per_second": speeds[True],
                    "speedup": speeds[True] / speeds[False],
                }
            )
            logging.info("%s", rows[-1])
    result = {"machine": machine(), "batch_size": BATCH, "steps": args.steps, "rows": rows}
    logging.info("wrote %s", write_result("sparse_tables.json", result))


if __name__ == "__main__":
    main()
