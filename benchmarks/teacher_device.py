"""Fine-tune the reference teacher on a lent GPU and compute its logits for every split, in one run.

The CPU machines here fine-tune the 6-layer BERT at ~7 reviews/s (hours for IMDB); a lent H100 does
the same work in minutes. The device gets a carry folder made by ``benchmarks/make_device_carry.py``
(the 6-layer BERT packed to fit the transfer limit, and every split's token ids truncated to 512
``head+tail``, from which any shorter head / head+tail input is cut exactly). It runs the same
``textdistill.teachers.transformer.fine_tune`` code path as ``textdistill teacher``:

1. one fine-tune per truncation candidate on the 20,000 training reviews, each scored on the
   5,000 validation reviews (the test set plays no part in the choice);
2. the candidate with the best validation accuracy is rounded to float16 (so the checkpoint that
   comes back is exactly the one whose logits are stored), and its fp32 logits are computed for
   train, validation, test and the 50,000 unlabelled reviews.

Run on the device (see benchmarks/README.md):
    PYTHONPATH=src python benchmarks/teacher_device.py --carry .devcarry --out $OUT
Smoke check on CPU:
    PYTHONPATH=src python benchmarks/teacher_device.py --carry .devcarry --out /tmp/out --smoke
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import lzma
import platform
import time
from pathlib import Path

import numpy as np
import torch

from textdistill.config import TeacherConfig
from textdistill.inference import predict_logits
from textdistill.metrics import classification_metrics
from textdistill.teachers.transformer import fine_tune, load_teacher
from textdistill.tokens import load_tokenizer, truncate

CANDIDATES = [(512, "head+tail"), (256, "head+tail"), (128, "head+tail"), (128, "head")]
SPLITS = ("train", "validation", "test", "unlabelled")
CHUNK_BYTES = 15_000_000


def unpack_model(carry: Path, target: Path) -> Path:
    """Rebuild model.safetensors (fp16) from the byte-shuffled xz stream made for transport."""
    from safetensors.numpy import save_file

    target.mkdir(parents=True, exist_ok=True)
    for path in (carry / "minilm").iterdir():
        if path.name not in ("weights.fp16.xz", "weights.json"):
            (target / path.name).write_bytes(path.read_bytes())
    shuffled = np.frombuffer(lzma.decompress((carry / "minilm/weights.fp16.xz").read_bytes()), dtype=np.uint8)
    half = len(shuffled) // 2
    raw = np.stack([shuffled[half:], shuffled[:half]], axis=1).reshape(-1)
    tensors, offset = {}, 0
    for name, shape in json.loads((carry / "minilm/weights.json").read_text()):
        count = int(np.prod(shape)) * 2
        tensors[name] = raw[offset : offset + count].view(np.float16).reshape(shape)
        offset += count
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def load_split(carry: Path, name: str) -> dict:
    """Token ids (content only, 512 head+tail), labels and the data fingerprint of one split."""
    with np.load(io.BytesIO(lzma.decompress((carry / f"{name}.npz.xz").read_bytes()))) as stored:
        flat, lengths = stored["flat"].astype(np.int64), stored["lengths"]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        ids = [flat[offsets[i] : offsets[i + 1]] for i in range(len(lengths))]
        return {"ids": ids, "labels": stored["labels"], "fingerprint": str(stored["fingerprint"])}


def inputs(split: dict, max_length: int, strategy: str, cls_id: int, sep_id: int) -> list[np.ndarray]:
    return [np.concatenate([[cls_id], truncate(x, max_length, strategy), [sep_id]]) for x in split["ids"]]


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = unpack_model(Path(args.carry), Path(args.work) / "minilm")
    tokenizer = load_tokenizer(str(model_dir))
    splits = {name: load_split(Path(args.carry), name) for name in SPLITS}
    if args.smoke:
        splits = {name: {k: (v[:64] if k != "fingerprint" else v) for k, v in s.items()} for name, s in splits.items()}
    label_names = ["0", "1"]
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    results: dict = {"device": device_name(), "torch": torch.__version__, "candidates": []}
    best = None
    for max_length, strategy in CANDIDATES[: 1 if args.smoke else None]:
        if time.perf_counter() - started > args.pilot_budget_s and best is not None:
            results["skipped_for_time"] = results.get("skipped_for_time", []) + [f"{max_length} {strategy}"]
            continue
        length = 32 if args.smoke else max_length
        config = TeacherConfig(
            model=str(model_dir),
            epochs=1 if args.smoke else args.epochs,
            batch_size=32,
            body_lr=args.body_lr,
            head_lr=args.head_lr,
            warmup_ratio=0.1,
            logit_batch_size=256,
        )
        train = (inputs(splits["train"], length, strategy, cls_id, sep_id), splits["train"]["labels"])
        val = (inputs(splits["validation"], length, strategy, cls_id, sep_id), splits["validation"]["labels"])
        run_dir = Path(args.work) / f"teacher-{max_length}-{strategy}"
        summary = fine_tune(train, val, label_names, tokenizer, config, run_dir)
        entry = {"max_length": max_length, "truncation": strategy, **summary}
        results["candidates"].append(entry)
        logging.info("candidate %s %s: validation %s", max_length, strategy, summary["validation"])
        if best is None or summary["validation"]["eval_accuracy"] > best[0]:
            best = (summary["validation"]["eval_accuracy"], max_length, strategy, run_dir / "model")
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    assert best is not None
    _, max_length, strategy, best_dir = best
    results["chosen"] = {"max_length": max_length, "truncation": strategy, "head_fraction": 0.25}
    final_dir = round_to_fp16(best_dir, Path(args.work) / "final")
    results["logits"] = logits_for_all(final_dir, splits, 32 if args.smoke else max_length, strategy, out)
    results["wall_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    ship_checkpoint(final_dir, out)


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"


def round_to_fp16(model_dir: Path, target: Path) -> Path:
    """Save the chosen teacher with float16 weights: the exact checkpoint shipped back and hashed."""
    model = load_teacher(model_dir, "cpu")
    model.half().save_pretrained(str(target))
    load_tokenizer(str(model_dir)).save_pretrained(str(target))
    return target


def logits_for_all(model_dir: Path, splits: dict, max_length: int, strategy: str, out: Path) -> dict:
    """fp32 logits (TF32 off) of the fp16-rounded teacher for every split, with their metrics and speed."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = load_teacher(model_dir)
    tokenizer = load_tokenizer(str(model_dir))
    stored, report = {}, {}
    for name, split in splits.items():
        sequences = inputs(split, max_length, strategy, tokenizer.cls_token_id, tokenizer.sep_token_id)
        started = time.perf_counter()
        logits = predict_logits(model, sequences, tokenizer.pad_token_id, batch_size=256, desc=name)
        seconds = time.perf_counter() - started
        stored[name] = logits.astype(np.float16)
        stored[f"{name}_fingerprint"] = np.array(split["fingerprint"])
        report[name] = {"examples": len(sequences), "seconds": seconds, "reviews_per_second": len(sequences) / seconds}
        if split["labels"].min() >= 0:
            metrics = classification_metrics(split["labels"], logits.argmax(-1), 2)
            report[name].update(metrics)
    np.savez(out / "teacher_logits.npz", **stored)
    return report


def ship_checkpoint(model_dir: Path, out: Path) -> None:
    """Split the weights into chunks under the transfer limit; the small files travel as one JSON."""
    weights = (model_dir / "model.safetensors").read_bytes()
    for index, start in enumerate(range(0, len(weights), CHUNK_BYTES)):
        (out / f"model.safetensors.part{index}").write_bytes(weights[start : start + CHUNK_BYTES])
    small = {p.name: p.read_text() for p in model_dir.iterdir() if p.suffix in (".json", ".txt", ".md")}
    (out / "model_files.json").write_text(json.dumps(small))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carry", default=".devcarry")
    parser.add_argument("--out", required=True)
    parser.add_argument("--work", default="/tmp/teacher-work")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--body-lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--pilot-budget-s", type=float, default=330.0)
    parser.add_argument("--smoke", action="store_true")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
