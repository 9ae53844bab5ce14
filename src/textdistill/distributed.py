"""Running under several processes (``accelerate launch``, ``torchrun``): who does what, and the sharded logit pass.

A launcher starts N copies of the same command with ``WORLD_SIZE``/``RANK`` in their environment. Then:

- data preparation, tokenisation and every cache write run on the main process first; the others wait at a
  barrier and read what it wrote (``main_process_first``);
- the teacher is fine-tuned by all of them together: the Hugging Face Trainer runs DDP by itself when launched;
- the logit pass is sharded (``predict_logits_sharded``): each process predicts whole length-sorted batches dealt
  to it round-robin, the shards are gathered and put back in the original order on every process;
- only the main process writes models, metrics and logits (``is_main_process``).

Every process computes the same paths: they are hashes of the config and the data, never of the process.
In a single process (no launcher) every helper here is a no-op and ``accelerate`` is not imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import numpy as np
from torch import nn

from textdistill.inference import predict_logits
from textdistill.tokens import length_bucketed_batches

logger = logging.getLogger(__name__)


def world_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 without a launcher)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True under ``accelerate launch`` / ``torchrun`` with more than one process."""
    return world_size() > 1


def _state():
    """accelerate's ``PartialState``: on first use it joins the process group the launcher set up (NCCL and one GPU
    per process on GPUs, gloo on CPUs); the Trainer reuses this state, so it runs DDP too.

    Without a GPU it is made with ``cpu=True``: otherwise accelerate (and so the Trainer) treats a ``torchrun`` on
    CPUs as one process and every process would fine-tune alone.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def process_index() -> int:
    """This process's rank among all processes (0 without a launcher)."""
    return _state().process_index if is_distributed() else 0


def is_main_process() -> bool:
    """True on the one process that writes artifacts (always true without a launcher)."""
    return not is_distributed() or _state().is_main_process


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for without a launcher)."""
    if is_distributed():
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on the main process, then on the others: they find what it cached instead of redoing it."""
    if not is_distributed():
        yield
        return
    with _state().main_process_first():
        yield


def shard_rows(lengths: np.ndarray, batch_size: int, rank: int, processes: int) -> np.ndarray:
    """The rows process ``rank`` of ``processes`` predicts: whole batches of ``length_bucketed_batches`` (the
    ones a single-process pass makes), dealt round-robin, concatenated in length order.

    ``predict_logits`` on these rows rebuilds exactly those batches (same rows, same padding), so the sharded
    pass gives the single-process logits bit for bit. Returns int64 row indices (possibly none).
    """
    batches = length_bucketed_batches(lengths, batch_size, shuffle=False)[rank::processes]
    return np.concatenate(batches).astype(np.int64) if batches else np.zeros(0, dtype=np.int64)


def assemble(shards: list[tuple[np.ndarray, np.ndarray]], count: int) -> np.ndarray:
    """Put gathered (rows (m,), logits (m, num_labels)) shards back in row order → (count, num_labels) float32.

    Every row must be covered exactly once: a missing or repeated row is an error, never a silent zero.
    """
    rows = np.concatenate([r for r, _ in shards])
    if len(rows) != count or not np.array_equal(np.sort(rows), np.arange(count)):
        raise RuntimeError(f"sharded logit pass: gathered {len(rows)} rows, expected each of {count} once")
    width = max(values.shape[1] for _, values in shards)
    out = np.empty((count, width), dtype=np.float32)
    for part_rows, values in shards:
        if len(part_rows):
            out[part_rows] = values
    return out


def predict_logits_sharded(
    model: nn.Module, sequences: list[np.ndarray], pad_id: int, batch_size: int = 256, desc: str | None = None
) -> np.ndarray:
    """``predict_logits`` (same arguments, same result (n, num_labels) float32 in the order of ``sequences``),
    sharded over the launched processes; every process gets the whole result. Without a launcher it is
    ``predict_logits``.

    Each process moves ``model`` to its own device (its GPU, or the CPU), predicts its ``shard_rows`` and the
    shards are gathered with ``accelerate.utils.gather_object``. Every process must call it with the same
    ``sequences`` (it is collective).
    """
    if not is_distributed() or not sequences:
        return predict_logits(model, sequences, pad_id, batch_size, desc)
    from accelerate.utils import gather_object

    state = _state()
    if isinstance(model, nn.Module) and next(model.parameters(), None) is not None:
        model = model.to(state.device)
    rows = shard_rows(np.array([len(s) for s in sequences]), batch_size, state.process_index, state.num_processes)
    shard = [sequences[i] for i in rows]
    local = predict_logits(model, shard, pad_id, batch_size, desc if state.is_main_process else None)
    logger.info(
        "logit shard %d of %d: %d of %d rows", state.process_index, state.num_processes, len(rows), len(sequences)
    )
    return assemble(gather_object([(rows, local)]), len(sequences))
