"""Scaling the teacher out: two CPU processes (``accelerate launch``, gloo) fine-tune the tiny built-in teacher with
DDP and shard its logit pass; the gathered logits must equal a single-process pass of the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from textdistill.config import load_config
from textdistill.distributed import assemble, predict_logits_sharded, shard_rows
from textdistill.inference import predict_logits
from textdistill.pipeline import logits_stage, prepare_data, teacher_dir, teacher_split_logits
from textdistill.teachers.transformer import load_teacher
from textdistill.tokens import length_bucketed_batches

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 2
# The smoke preset with the per-process batch halved, so 2 processes take the single-process run's 100 steps of 16
# reviews; the logit batch of 32 gives every shard several batches and the last one a partial batch.
OVERRIDES = ["teacher.batch_size=8", "teacher.logit_batch_size=32"]
# bf16 (fine-tune and logit pass under autocast) with windows over the whole text: 32-token windows, stride 16
CHUNKED_BF16 = ["teacher.mixed_precision=bf16", "teacher.inference=chunks", "tokens.teacher_max_length=32"]
CHUNKED_BF16 += ["teacher.chunk_stride=16"]


@pytest.mark.parametrize(("count", "batch_size", "processes"), [(200, 32, 2), (5, 4, 3), (1, 8, 2), (0, 8, 2)])
def test_shard_rows_deal_whole_batches(count, batch_size, processes):
    """Every row in exactly one shard, and each shard re-batches into exactly the single-process batches it was
    dealt (same rows, same padding), which is what makes the sharded logits bit-equal."""
    lengths = np.random.default_rng(0).integers(3, 40, count)
    batches = length_bucketed_batches(lengths, batch_size, shuffle=False)
    shards = [shard_rows(lengths, batch_size, rank, processes) for rank in range(processes)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(count))
    for rank, rows in enumerate(shards):
        rebuilt = [rows[b] for b in length_bucketed_batches(lengths[rows], batch_size, shuffle=False)]
        assert [b.tolist() for b in rebuilt] == [b.tolist() for b in batches[rank::processes]]


def test_assemble_restores_order_and_refuses_gaps():
    logits = np.arange(12, dtype=np.float32).reshape(6, 2)
    shards = [(np.array([4, 0, 2]), logits[[4, 0, 2]]), (np.array([1, 5, 3]), logits[[1, 5, 3]])]
    np.testing.assert_array_equal(assemble(shards, 6), logits)
    assert assemble([(np.zeros(0, dtype=np.int64), np.zeros((0, 0), np.float32)), *shards], 6).shape == (6, 2)
    with pytest.raises(RuntimeError, match="expected each of 6 once"):
        assemble([shards[0], (np.array([1, 5, 5]), logits[[1, 5, 5]])], 6)


def test_sharded_pass_without_a_launcher_is_predict_logits(single_thread):
    torch.manual_seed(0)
    model = _MeanClassifier(torch.nn.Embedding(10, 3))
    sequences = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    expected = predict_logits(model, sequences, 0, 2)
    np.testing.assert_array_equal(predict_logits_sharded(model, sequences, 0, 2), expected)


class _MeanClassifier(torch.nn.Module):
    """(batch, time) ids → the masked mean of their embeddings (batch, 3): enough of a classifier here."""

    def __init__(self, embedding: torch.nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).float()
        return (self.embedding(input_ids) * mask).sum(1) / mask.sum(1)


def _launch(config_path: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 -m textdistill teacher`` with no GPU visible: torch's
    elastic launcher starts 2 processes and they join a gloo group (``accelerate launch --cpu`` would start one
    process unless MPI is configured). Each process gets one thread, as on a real node of N processes."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(PROCESSES)]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    # port 0: a free one, so concurrent test runs do not collide
    command = [*launch, "-m", "textdistill", "teacher", str(config_path)]
    for override in overrides:
        command += ["--set", override]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("settings", [[], CHUNKED_BF16], ids=["fp32-truncate", "bf16-chunks"])
def test_two_process_teacher_and_logits_equal_a_single_process_pass(tmp_path, single_thread, settings):
    """2 processes fine-tune (DDP) and shard the logit pass; the cached logits equal one process's pass bit for bit,
    the teacher loads and learns the toy task, and only one model and one set of logits were written."""
    overrides = [f"cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / 'run'}", *OVERRIDES, *settings]
    result = _launch(ROOT / "configs" / "smoke.yaml", overrides)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("teacher: ") == 1  # the main process reports, the other one does not
    assert "logit shard 0 of 2" in result.stderr

    config = load_config(str(ROOT / "configs" / "smoke.yaml"), overrides)
    prepared = prepare_data(config)
    model_dir = teacher_dir(config, prepared) / "model"
    summary = json.loads((model_dir / "metrics.json").read_text())
    assert summary["validation_metrics"]["accuracy"] >= 0.7  # measured 0.82 (0.80 in one process); chance is 0.5
    steps = max(entry["step"] for entry in summary["log_history"])
    assert steps == 2 * len(prepared.dataset.train) // (8 * PROCESSES)  # DDP: each process took half of each epoch
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["checkpoints", "model"]

    cached = sorted((tmp_path / "cache" / "logits").glob("*.npz"))
    assert len(cached) == len(prepared.dataset.splits())  # every split written once, by one process
    logits = logits_stage(config, prepared, model_dir)  # reads what the 2 processes wrote
    teacher = load_teacher(model_dir, "cpu")
    mode = "bf16" if config.teacher.mixed_precision == "bf16" else "fp32"
    for split, values in logits.items():
        single = teacher_split_logits(config, prepared, teacher, split, mode, sharded=False)
        np.testing.assert_array_equal(values, single, err_msg=split)
