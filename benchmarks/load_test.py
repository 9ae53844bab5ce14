"""Loopback load test of the textdistill HTTP service.

Starts ``python -m textdistill serve`` in a subprocess on 127.0.0.1 (a free port), waits for ``/health``, then
for each concurrency level sends ``POST /predict`` requests of one review each from that many threads, bounded
both by a request count and by wall time, and reports requests/s and p50/p99 latency as JSON (printed, and
written to ``--out``). The server is stopped at the end. Traffic never leaves 127.0.0.1.

    python benchmarks/load_test.py --model-dir runs/default/student --out benchmarks/results/load.json

Without ``--model-dir`` a tiny random student is built in a temporary directory: that measures the service's
own overhead (HTTP, JSON, tokenisation), not a real model.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

HOST = "127.0.0.1"  # loopback only
ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("load_test")

SAMPLE_REVIEWS = [
    "A wonderful, moving film with great acting and a story that stays with you.",
    "Boring, predictable and far too long; the worst film I have seen this year.",
    "The music was excellent but the plot made no sense and the ending was dull.",
    "I really loved it. The actors are great and the scenes are beautifully shot.",
    "Not good. Not terrible either, just a waste of an evening.",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def tiny_student(directory: Path) -> Path:
    """Save a tiny random rnn-attention student with a small WordPiece vocabulary into ``directory``."""
    import torch
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    from textdistill.students import build_student
    from textdistill.students.hub import save_student
    from textdistill.tokens import TokenSettings

    words = sorted({w.strip(".,;").lower() for text in SAMPLE_REVIEWS for w in text.split()})
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    arch = {"embedding_dim": 32, "hidden_size": 32, "attention_dim": 16}
    model = build_student("rnn-attention", arch, vocab_size=len(tokenizer), num_labels=2).eval()
    return save_student(
        model,
        directory / "student",
        name="rnn-attention",
        arch=arch,
        tokenizer=tokenizer,
        label_names=["negative", "positive"],
        tokens=TokenSettings(400, "head+tail", 0.25),
    )


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _wait_healthy(process: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode} before becoming healthy")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url + "/health").status_code == 200:
                    return
            time.sleep(0.2)
    raise TimeoutError(f"the server was not healthy within {timeout:.0f} s")


@contextlib.contextmanager
def server(model_dir: Path, onnx_file: str | None, threads: int | None, startup_timeout: float) -> Iterator[str]:
    """Run the service in a subprocess on 127.0.0.1; yields its base URL and always stops it."""
    port = free_port()
    command = [sys.executable, "-m", "textdistill", "serve", str(model_dir), "--host", HOST]
    command += ["--port", str(port), "--log-level", "warning"]
    command += ["--onnx-file", onnx_file] if onnx_file else []
    command += ["--num-threads", str(threads)] if threads else []
    process = subprocess.Popen(command, env=_environment(), cwd=ROOT)
    url = f"http://{HOST}:{port}"
    try:
        _wait_healthy(process, url, startup_timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def run_level(url: str, texts: list[str], concurrency: int, max_requests: int, max_seconds: float) -> dict:
    """Send up to ``max_requests`` requests from ``concurrency`` threads, stopping after ``max_seconds``."""
    tickets = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=max(5.0, max_seconds), trust_env=False) as client:
            while time.monotonic() < deadline:
                with lock:
                    ticket = next(tickets)
                if ticket >= max_requests:
                    return
                start = time.perf_counter()
                try:
                    ok = client.post("/predict", json={"texts": [texts[ticket % len(texts)]]}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - start
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - start
    return _summary(concurrency, latencies, errors[0], wall)


def _summary(concurrency: int, latencies: list[float], errors: int, wall: float) -> dict:
    milliseconds = np.array(latencies) * 1000.0 if latencies else np.array([np.nan])
    return {
        "concurrency": concurrency,
        "ok": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": float(np.percentile(milliseconds, 50)),
        "p99_ms": float(np.percentile(milliseconds, 99)),
        "mean_ms": float(np.mean(milliseconds)),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="a saved student (default: a tiny random one)")
    parser.add_argument("--onnx-file", help="serve this ONNX file of the student directory instead")
    parser.add_argument("--texts-file", type=Path, help="reviews to send, one per line (default: built-in)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=500, help="at most this many requests per level")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="at most this long per level")
    parser.add_argument("--num-threads", type=int, help="torch threads in the server")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    texts = SAMPLE_REVIEWS
    if args.texts_file:
        texts = [line for line in args.texts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir or tiny_student(Path(scratch))
        with server(model_dir, args.onnx_file, args.num_threads, args.startup_timeout) as url:
            levels = []
            for concurrency in args.concurrency:
                levels.append(run_level(url, texts, concurrency, args.requests, args.max_seconds))
                logger.info("concurrency %d: %s", concurrency, json.dumps(levels[-1]))
    results = {
        "model_dir": str(args.model_dir or "tiny random student"),
        "onnx_file": args.onnx_file,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "levels": levels,
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
