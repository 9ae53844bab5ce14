"""Do the cached teacher representations belong to the cached teacher logits? Each representation file (written by
``textdistill logits`` / ``distill`` when ``distill.representation_weight > 0``) is put through the teacher's own
output layer and compared with the logits of the same pass (same teacher, rows and token settings): the output layer
is linear, so the mean window representation must give the mean window logits up to float16/bf16 rounding.

    PYTHONPATH=src python benchmarks/representation_check.py \\
        --teacher-dir .cache/textdistill/teachers/2baf8f78e7cc017c/model --cache .cache/textdistill

Writes benchmarks/results/representation_check.json: per file the rows, hidden size, largest absolute logit
difference (and relative to the largest logit), label agreement, and the mean representation norm.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, write_result
from safetensors.numpy import load_file

from textdistill.inference import RepresentationTap
from textdistill.teachers.transformer import checkpoint_hash, load_teacher

logger = logging.getLogger("representation_check")


def stored(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(key, ids, values) of one cached npz."""
    with np.load(path, allow_pickle=False) as arrays:
        return json.loads(str(arrays["key"])), arrays["ids"], arrays["logits"].astype(np.float32)


def logits_by_key(cache: Path) -> dict[str, Path]:
    """Every cached logits file by its key (as sorted JSON)."""
    return {json.dumps(stored(path)[0], sort_keys=True): path for path in sorted((cache / "logits").glob("*.npz"))}


def output_layer(teacher_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The weight (K, hidden) and bias (K,) of the layer ``RepresentationTap`` reads the input of."""
    model = load_teacher(teacher_dir, "cpu")
    head = RepresentationTap(model, model.config.num_labels).head
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    weights = load_file(str(teacher_dir / "model.safetensors"))
    return weights[names[id(head.weight)]], weights[names[id(head.bias)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-dir", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(".cache/textdistill"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    checkpoint = checkpoint_hash(args.teacher_dir)
    weight, bias = output_layer(args.teacher_dir)
    logits_files = logits_by_key(args.cache)
    checks = []
    for path in sorted((args.cache / "representations").glob("*.npz")):
        key, ids, representations = stored(path)
        if key["teacher_checkpoint"] != checkpoint:
            continue
        logits_key = json.dumps({k: v for k, v in key.items() if k != "output"}, sort_keys=True)
        _, logit_ids, logits = stored(logits_files[logits_key])
        if not np.array_equal(ids, logit_ids):
            raise ValueError(f"{path}: rows differ from {logits_files[logits_key]}")
        through_head = representations @ weight.T + bias
        difference = float(np.abs(through_head - logits).max())
        checks.append(
            {
                "representations": str(path),
                "logits": str(logits_files[logits_key]),
                "rows": len(ids),
                "hidden_size": representations.shape[1],
                "max_abs_logit_difference": difference,
                "relative_to_max_logit": difference / float(np.abs(logits).max()),
                "label_agreement": float((through_head.argmax(1) == logits.argmax(1)).mean()),
                "mean_norm": float(np.linalg.norm(representations, axis=1).mean()),
            }
        )
        logger.info("%s: %s", path.name, checks[-1])
    command = "PYTHONPATH=src python benchmarks/representation_check.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
    )
    write_result(
        "representation_check.json",
        {"command": command, "machine": machine(), "teacher_checkpoint": checkpoint, "checks": checks},
    )


if __name__ == "__main__":
    main()
