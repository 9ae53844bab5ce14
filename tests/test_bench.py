"""Benchmark plumbing on tiny models: every field is there and positive; no timing assertions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_bert_classifier

from textdistill import bench, compress
from textdistill.config import BenchConfig
from textdistill.students import build_student
from textdistill.tokens import pad_batch

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB = 60
ARCH = {"embedding_dim": 12, "hidden_size": 16, "attention_dim": 8, "num_layers": 1}


def reviews(count: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.concatenate([[2], rng.integers(5, VOCAB, n), [3]]) for n in (30, 4, 18, 25, 9, 40)[:count]]


@pytest.fixture(scope="module")
def entries(tmp_path_factory) -> list[bench.BenchEntry]:
    torch.manual_seed(0)
    student = build_student("rnn-attention", ARCH, vocab_size=VOCAB, num_labels=2).eval()
    pruned = compress.structured_prune(student, 0.0)
    compress.l1_unstructured_prune(pruned, 0.5)
    directory = tmp_path_factory.mktemp("bench")
    onnx_path = compress.export_onnx(student, directory / "model.onnx", max_length=64)
    onnx_int8 = compress.quantize_onnx_int8(onnx_path, directory / "model.int8.onnx")
    return [
        bench.BenchEntry("teacher", tiny_bert_classifier(VOCAB), max_length=32, quality={"accuracy": 0.9}),
        bench.BenchEntry("student", student, quality={"accuracy": 0.8, "agreement": 0.85}),
        bench.BenchEntry("pruned-50%", pruned, note="unstructured"),
        bench.BenchEntry("onnx", onnx_path),
        bench.BenchEntry("onnx-int8", onnx_int8),
    ]


def test_bench_models_fields(entries):
    # one thread only: on a busy 2-core test machine, 2 torch threads make tiny models 100x slower
    config = BenchConfig(runs=3, warmup=1, batch_size=4, threads=[1])
    results = bench.bench_models(entries, config, seq_lengths=[8, 48], reviews=reviews(), devices=["cpu"])
    assert len(results) == 2 * len(entries) - 1  # the teacher (max_length 32) skips the 48-token inputs
    for row in results:
        for key in ("parameters", "nonzero_parameters", "non_embedding_parameters", "bytes"):
            assert row[key] > 0, (row["model"], key)
        for key in ("latency_ms_p50", "latency_ms_p90", "throughput_per_s"):
            assert row[key] > 0, (row["model"], key)
        assert row["latency_ms_p90"] >= row["latency_ms_p50"]
        assert row["device"] == "cpu" and row["threads"] == 1 and row["batch_size"] == 4
        assert row["tokens"] == min(row["length"], 42)  # the longest review has 42 ids
    by_model = {row["model"]: row for row in results}
    assert by_model["pruned-50%"]["nonzero_parameters"] < by_model["student"]["nonzero_parameters"]
    assert by_model["pruned-50%"]["parameters"] == by_model["student"]["parameters"]
    assert by_model["onnx-int8"]["parameters"] == by_model["onnx"]["parameters"]  # scales and zero points aside
    assert by_model["onnx-int8"]["bytes"] < by_model["onnx"]["bytes"]
    assert by_model["onnx"]["non_embedding_parameters"] < by_model["onnx"]["parameters"]
    assert by_model["teacher"]["non_embedding_parameters"] < by_model["teacher"]["parameters"]
    table = bench.markdown_table(results, baseline="student")
    assert sum(line.startswith("| ") for line in table.splitlines()) == len(results) + 1  # header + rows
    assert "speed-up vs student" in table and "1.00×" in table and "| 0.8500 |" in table
    assert "Unstructured (L1) pruning only zeroes weights" in table and "structured pruning" in table


def test_fixed_length_batch_uses_real_ids():
    rows = reviews()
    input_ids, attention_mask = bench.fixed_length_batch(rows, 20, 5)
    assert input_ids.shape == (5, 20) and bool(attention_mask.all())
    assert all(any(np.array_equal(ids.numpy(), r[:20]) for r in rows) for ids in input_ids)
    input_ids, attention_mask = bench.fixed_length_batch(rows, 100, 2)  # longer than every review: padded
    assert input_ids.shape == (2, 42) and int(attention_mask.sum()) == 42 + 32
    with pytest.raises(ValueError, match="at least one"):
        bench.fixed_length_batch([], 8, 1)


def test_parameter_counts_and_bytes(entries, tmp_path):
    student = entries[1].model
    counts = bench.parameter_counts(student)
    assert counts["total"] == sum(p.numel() for p in student.parameters())
    assert counts["total"] - counts["non_embedding"] == VOCAB * ARCH["embedding_dim"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "b.bin").write_bytes(b"y" * 5)
    assert bench.bytes_on_disk(tmp_path) == 15 and bench.bytes_on_disk(tmp_path / "a.bin") == 10


def test_profile_table(entries):
    student = entries[1].model
    table = bench.profile_table(student, pad_batch(reviews(2), 0), runs=2, row_limit=5)
    assert "Self CPU" in table and "aten::" in table


def test_markdown_table_empty():
    assert "no benchmark results" in bench.markdown_table([])
