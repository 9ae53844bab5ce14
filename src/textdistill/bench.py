"""Efficiency measurement: parameters, bytes on disk, latency and throughput of several models side by side.

``bench_models`` measures every entry (the teacher, the float student, pruned, ONNX, ONNX int8 …) in one
run under the same conditions: fixed thread counts (``torch.set_num_threads`` / ONNX Runtime
``intra_op_num_threads``), the same real review token ids cut to each input length, and on CUDA too when
available. ``markdown_table`` renders the rows with notes on where speed-ups come from; ``profile_table`` shows
which operators take the time.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textdistill.compress import ONNX_INT8_NAME, ONNX_NAME, OnnxModule, onnx_initializers
from textdistill.config import BenchConfig
from textdistill.students.hub import Student, read_student_config
from textdistill.teachers.transformer import load_teacher
from textdistill.tokens import load_tokenizer, normalise_text, pad_batch

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class BenchEntry:
    """One model to measure.

    ``model`` is a torch module with the student contract or a Hugging Face sequence classifier (called with
    ``input_ids=``/``attention_mask=``; ``.logits`` is used when present), or the path of an ONNX file.
    ``path`` is what the model occupies on disk (a saved directory or a file; default: the ONNX file, or the
    in-memory serialized size of the state dict). Input lengths above ``max_length`` are skipped. ``quality``
    (e.g. accuracy, agreement with the teacher) is copied into the result rows for the table.
    """

    name: str
    model: nn.Module | str | Path
    path: str | Path | None = None
    max_length: int | None = None
    quality: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def is_onnx(self) -> bool:
        return isinstance(self.model, str | Path)


# ---------------------------------------------------------------------------------------------------
# Size


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``total``, ``nonzero`` and ``non_embedding`` weight counts of a torch model (int8 models are ONNX files:
    ``onnx_parameter_counts``)."""
    counts = {"total": 0, "nonzero": 0, "non_embedding": 0}
    for module in model.modules():
        embedding = isinstance(module, nn.Embedding)
        for tensor in module.parameters(recurse=False):
            values = tensor.detach()
            counts["total"] += values.numel()
            counts["nonzero"] += int(torch.count_nonzero(values))
            counts["non_embedding"] += 0 if embedding else values.numel()
    return counts


def onnx_parameter_counts(path: str | Path) -> dict[str, int]:
    """Weight counts of an ONNX file: its float/int8 initializers, without scalars, quantization scales and zero
    points (per channel in int8 files) and integer shape constants; initializers whose name mentions
    ``embedding`` count as the embedding."""
    counts = {"total": 0, "nonzero": 0, "non_embedding": 0}
    for name, array in onnx_initializers(path):
        if array.size <= 1 or array.dtype.kind not in "fiu" or array.dtype in (np.int64, np.int32):
            continue
        if name.endswith(("_scale", "_zero_point")):
            continue
        counts["total"] += array.size
        counts["nonzero"] += int(np.count_nonzero(array))
        counts["non_embedding"] += 0 if "embedding" in name else array.size
    return counts


def bytes_on_disk(path: str | Path) -> int:
    """Size of a file, or of all files under a directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def serialized_bytes(model: nn.Module) -> int:
    """Size of ``model.state_dict()`` serialized in memory (nothing is written)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def footprint(entry: BenchEntry) -> dict[str, Any]:
    """Parameters (total, non-zero, non-embedding) and bytes of one entry."""
    if entry.is_onnx:
        counts, size = onnx_parameter_counts(entry.model), bytes_on_disk(entry.path or entry.model)  # type: ignore[arg-type]
    else:
        assert isinstance(entry.model, nn.Module)
        counts = parameter_counts(entry.model)
        size = bytes_on_disk(entry.path) if entry.path else serialized_bytes(entry.model)
    return {
        "parameters": counts["total"],
        "nonzero_parameters": counts["nonzero"],
        "non_embedding_parameters": counts["non_embedding"],
        "bytes": size,
    }


# ---------------------------------------------------------------------------------------------------
# Inputs and runners


def fixed_length_batch(reviews: Sequence[np.ndarray], length: int, count: int, pad_id: int = 0) -> Batch:
    """``count`` rows of real review ids cut to ``length`` tokens: (count, length) input_ids and attention_mask.

    Reviews with at least ``length`` ids are used first (cycled), so rows have exactly ``length`` real tokens;
    when too few are that long the longest ones are used and the batch is right-padded.
    """
    if not reviews:
        raise ValueError("bench needs at least one review's token ids")
    long = [r for r in reviews if len(r) >= length] or sorted(reviews, key=len, reverse=True)
    rows = [np.asarray(long[i % len(long)][:length], dtype=np.int64) for i in range(count)]
    return pad_batch(rows, pad_id)


def _torch_call(model: nn.Module, batch: Batch) -> torch.Tensor:
    output = model(input_ids=batch[0], attention_mask=batch[1])
    return getattr(output, "logits", output)


def all_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op torch threads, restoring the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _devices(entry: BenchEntry, requested: Sequence[str] | None) -> list[str]:
    """Devices to measure ``entry`` on: CPU, plus CUDA when available (for ONNX files: when ONNX Runtime has it)."""
    devices = list(requested) if requested else ["cpu", "cuda"]
    if not torch.cuda.is_available():
        return [d for d in devices if d == "cpu"]
    if entry.is_onnx:
        import onnxruntime

        cuda_ok = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        return [d for d in devices if d == "cpu" or cuda_ok]
    return devices


def _runner(entry: BenchEntry, device: str, threads: int) -> Callable[[Batch], Any]:
    """A function that runs the entry on a batch (CPU tensors), synchronised so wall time is the full call."""
    if entry.is_onnx:
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        module = OnnxModule(entry.model, num_threads=threads, providers=providers)  # type: ignore[arg-type]
        return lambda batch: module(*batch)
    assert isinstance(entry.model, nn.Module)
    model = entry.model.eval() if device == "cpu" else copy.deepcopy(entry.model).eval().to(device)
    if device == "cpu":
        return lambda batch: _torch_call(model, batch)

    def on_cuda(batch: Batch) -> Any:
        output = _torch_call(model, (batch[0].to(device), batch[1].to(device)))
        torch.cuda.synchronize()
        return output

    return on_cuda


def _timings(run: Callable[[Batch], Any], batch: Batch, runs: int, warmup: int) -> np.ndarray:
    """Seconds of each of ``runs`` calls after ``warmup`` untimed calls, under ``torch.inference_mode``."""
    times = np.empty(runs)
    with torch.inference_mode():
        for _ in range(warmup):
            run(batch)
        for index in range(runs):
            start = time.perf_counter()
            run(batch)
            times[index] = time.perf_counter() - start
    return times


def measure(run: Callable[[Batch], Any], single: Batch, batch: Batch, config: BenchConfig) -> dict[str, float]:
    """Batch-1 latency (median and p90 of ``config.runs`` calls) and throughput at ``batch`` (reviews/s).

    Throughput is the batch size over the median of ``max(3, runs // 10)`` batch calls (after
    ``min(warmup, 3)`` warm-up calls): large batches are slow, and their time varies little.
    """
    latency = _timings(run, single, config.runs, config.warmup) * 1000.0
    batch_runs = max(3, config.runs // 10)
    batch_seconds = float(np.median(_timings(run, batch, batch_runs, min(config.warmup, 3))))
    return {
        "latency_ms_p50": float(np.median(latency)),
        "latency_ms_p90": float(np.percentile(latency, 90)),
        "throughput_per_s": len(batch[0]) / batch_seconds,
        "latency_runs": config.runs,
        "throughput_runs": batch_runs,
    }


# ---------------------------------------------------------------------------------------------------
# The benchmark


def _measure_device(
    entry: BenchEntry, device: str, config: BenchConfig, inputs: dict[int, tuple[Batch, Batch]]
) -> list[dict[str, Any]]:
    """Rows for one entry on one device: every thread count (CPU) × every input length."""
    rows = []
    thread_counts = [count or all_cores() for count in config.threads] if device == "cpu" else [0]
    for threads in dict.fromkeys(thread_counts):
        with torch_threads(threads or all_cores()):
            run = _runner(entry, device, threads)
            for length, (single, batch) in inputs.items():
                if entry.max_length is not None and length > entry.max_length:
                    continue
                logger.info("bench %s on %s, %s threads, %d tokens", entry.name, device, threads or "-", length)
                tokens = float(single[1].sum())
                row: dict[str, Any] = {
                    "device": device,
                    "threads": threads or None,
                    "tokens": tokens,
                    "length": length,
                }
                rows.append(row | measure(run, single, batch, config))
    return rows


def bench_models(
    entries: list[BenchEntry],
    config: BenchConfig,
    seq_lengths: Sequence[int],
    reviews: Sequence[np.ndarray],
    *,
    pad_id: int = 0,
    devices: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Measure every entry side by side; one result dict per (entry, device, threads, input length).

    ``reviews`` are real review token ids (e.g. ``tokens.model_inputs`` at a long ``max_length``); each input
    length in ``seq_lengths`` (say the student's and the teacher's) cuts them to that many tokens
    (``fixed_length_batch``). On CPU every ``config.threads`` count is measured (0: all cores); CUDA is added
    when available unless ``devices`` says otherwise. Each row has the footprint (``parameters``,
    ``nonzero_parameters``, ``non_embedding_parameters``, ``bytes``), ``latency_ms_p50``/``latency_ms_p90`` at
    batch 1, ``throughput_per_s`` at ``config.batch_size``, and the entry's ``quality`` and ``note``.
    """
    inputs = {
        length: (
            fixed_length_batch(reviews, length, 1, pad_id),
            fixed_length_batch(reviews, length, config.batch_size, pad_id),
        )
        for length in seq_lengths
    }
    results = []
    for entry in entries:
        static = {"model": entry.name, "note": entry.note, "batch_size": config.batch_size} | footprint(entry)
        for device in _devices(entry, devices):
            rows = _measure_device(entry, device, config, inputs)
            results += [static | row | {"quality": dict(entry.quality)} for row in rows]
    return results


def profile_table(model: nn.Module, batch: Batch, runs: int = 5, row_limit: int = 10) -> str:
    """``torch.profiler`` tables of ``runs`` forward calls on ``batch``: the top ``row_limit`` ops by CPU self time,
    and by CUDA self time when ``batch`` is on a GPU. ``batch`` is (input_ids, attention_mask) on the model's
    device."""
    from torch.profiler import ProfilerActivity, profile

    on_cuda = batch[0].is_cuda
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    model.eval()
    with torch.inference_mode():
        _torch_call(model, batch)  # warm-up outside the profile
        with profile(activities=activities) as profiler:
            for _ in range(runs):
                _torch_call(model, batch)
            if on_cuda:
                torch.cuda.synchronize()
    averages = profiler.key_averages()
    tables = [averages.table(sort_by="self_cpu_time_total", row_limit=row_limit)]
    if on_cuda:
        tables.append(averages.table(sort_by="self_cuda_time_total", row_limit=row_limit))
    return "\n".join(tables)


# ---------------------------------------------------------------------------------------------------
# Report


def _format_count(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def _speedups(results: list[dict[str, Any]], baseline: str) -> list[str]:
    """Batch-1 median latency of ``baseline`` over each row's, at the same device, threads and length."""
    reference = {
        (r["device"], r["threads"], r["length"]): r["latency_ms_p50"] for r in results if r["model"] == baseline
    }
    cells = []
    for row in results:
        base = reference.get((row["device"], row["threads"], row["length"]))
        cells.append(f"{base / row['latency_ms_p50']:.2f}×" if base else "–")
    return cells


def _quality_names(results: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for row in results for name in row.get("quality", {})))


def markdown_table(results: list[dict[str, Any]], baseline: str | None = None) -> str:
    """A Markdown table of ``bench_models`` rows, a speed-up column against ``baseline`` (default: the first
    model) at the same device, threads and length, the quality columns, and notes on reading it."""
    if not results:
        return "_no benchmark results_\n"
    baseline = baseline or results[0]["model"]
    qualities = _quality_names(results)
    header = ["model", "device", "threads", "tokens", "params", "non-zero", "non-emb.", "MB", "b=1 p50 ms"]
    header += ["b=1 p90 ms", f"b={results[0]['batch_size']} reviews/s", f"speed-up vs {baseline}", *qualities]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, speedup in zip(results, _speedups(results, baseline), strict=True):
        cells = [row["model"], row["device"], str(row["threads"] or "–"), f"{row['tokens']:.0f}"]
        cells += [_format_count(row[k]) for k in ("parameters", "nonzero_parameters", "non_embedding_parameters")]
        cells += [f"{row['bytes'] / 1e6:.2f}", f"{row['latency_ms_p50']:.2f}", f"{row['latency_ms_p90']:.2f}"]
        cells += [f"{row['throughput_per_s']:.1f}", speedup]
        cells += [f"{row['quality'][q]:.4f}" if q in row.get("quality", {}) else "–" for q in qualities]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _notes(results) + "\n"


def _notes(results: list[dict[str, Any]]) -> str:
    first = results[0]
    notes = [
        f"- Latency: median and p90 of {first['latency_runs']} single-review calls after warm-up; throughput: "
        f"reviews/s at batch {first['batch_size']} (median of {first['throughput_runs']} batches). Inputs are real "
        "reviews cut to the given number of tokens; threads are fixed per row (torch and ONNX Runtime intra-op).",
        "- Unstructured (L1) pruning only zeroes weights: the tensors stay dense, so a pruned model has the same "
        "size on disk and, within noise, the same latency as the float model (compare its rows; only `non-zero` "
        "drops). It would need sparse kernels or a sparse format to pay off.",
        "- Speed-ups come from fewer or cheaper dense operations: structured pruning (smaller matrices), int8 "
        "kernels (ONNX Runtime dynamic or static quantization: integer MatMul/Conv/LSTM), ONNX Runtime's "
        "graph optimisations, and shorter inputs. `MB` is the saved directory or file (ONNX: the .onnx file).",
    ]
    return "\n".join(notes)


# ---------------------------------------------------------------------------------------------------
# Saved model directories (the `textdistill bench` command)


def entries_for_directory(directory: Path) -> tuple[list[BenchEntry], int, Any]:
    """Bench entries for a saved student (float, and its ONNX and ONNX int8 files) or a Hugging Face teacher directory.

    Returns (entries, the model's input length, its tokenizer).
    """

    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{directory}: not a saved model (no config.json)")
    if '"textdistill_student"' not in config_path.read_text(encoding="utf-8"):
        return (
            [BenchEntry(f"teacher {directory.name}", load_teacher(directory, "cpu"), path=directory)],
            0,
            (load_tokenizer(str(directory))),
        )
    student = Student.from_pretrained(directory)
    name = read_student_config(directory)["student"]
    entries = [BenchEntry(name, student.model, path=directory / "model.safetensors")]
    for suffix, file in (("onnx", ONNX_NAME), ("onnx int8", ONNX_INT8_NAME)):
        if (directory / file).is_file():
            entries.append(BenchEntry(f"{name} {suffix}", directory / file))
    return entries, int(student.config["tokenization"]["max_length"]), student.tokenizer


def bench_directories(
    directories: list[Path], config: BenchConfig, texts: list[str], lengths: list[int] | None = None
) -> dict[str, Any]:
    """Measure saved models side by side on ``texts`` (real reviews) at every model's own input length.

    Returns {"rows": bench rows, "markdown": table, "profiles": {model: torch.profiler table of one batch}}.
    """

    planned, own_lengths, tokenizer = [], [], None
    for directory in directories:
        entries, length, tokenizer = entries_for_directory(Path(directory))
        planned += entries
        own_lengths += [length] if length else [512]
    seq_lengths = lengths or sorted(set(own_lengths))
    assert tokenizer is not None
    encoded = tokenizer([normalise_text(t) for t in texts], truncation=True, max_length=max(seq_lengths))
    reviews = [np.array(ids, dtype=np.int64) for ids in encoded["input_ids"]]
    rows = bench_models(planned, config, seq_lengths, reviews, pad_id=tokenizer.pad_token_id)
    batch = fixed_length_batch(reviews, min(seq_lengths), config.batch_size, tokenizer.pad_token_id)
    profiles = {e.name: profile_table(e.model, batch) for e in planned if isinstance(e.model, nn.Module)}
    return {"rows": rows, "markdown": markdown_table(rows), "profiles": profiles}
