"""The one student training loop: hybrid loss, early stopping, checkpoints and exact resume.

``train_student`` trains any registered student on token ids with (optionally) the teacher's stored logits.
Everything it writes lives in ``run_dir``:

- ``checkpoint.pt``: model, optimizer, scheduler, loop state and RNG states, written atomically after every
  epoch and every ``checkpoint_every_steps`` optimizer steps; plain tensors and dicts, so it loads with
  ``torch.load(..., weights_only=True)``. A new call resumes from it, skipping the batches already done in
  the current epoch (the batch order is a pure function of ``(seed, epoch)``), and reproduces an
  uninterrupted run bit for bit on CPU when both use the same number of torch threads (float reductions
  depend on it; ``num_threads`` is therefore not part of the run's identity but does affect the last bits).
- ``best.safetensors``: the weights with the lowest validation loss so far.
- ``metrics.jsonl``: one JSON line per finished epoch.
- ``done.json``: the result of a finished run; calling again returns it (and loads the best weights) without
  training. The checkpoint is deleted once the run is done.

The learning rate warms up linearly over ``warmup_ratio`` of all steps, then decays linearly to 0 at the end
of ``epochs`` (early stopping may end the run before the decay does).
AdamW applies ``weight_decay`` to weight matrices only (not biases, norms or embeddings); gradients are
clipped to ``grad_clip`` (global L2 norm; ``grad_clip <= 0`` disables clipping). An embedding built with
``sparse=True`` (a student's large hashed tables) gets sparse gradients and its own ``SparseAdam`` ("lazy" Adam:
only the rows a batch touches move), on the same schedule and inside the same global clipping norm.
A checkpoint or done.json written for another config, model or data is an error rather than silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from textdistill.cache import atomic_open, atomic_write_text
from textdistill.config import DistillConfig, distill_identity
from textdistill.inference import layer_inputs, predict_logits
from textdistill.losses import binary_hard_loss, hard_loss, hybrid_loss, representation_loss
from textdistill.multilabel import score_logits
from textdistill.students import count_parameters
from textdistill.students.hub import load_weights, save_weights
from textdistill.tokens import iterate_batches, length_bucketed_batches

logger = logging.getLogger(__name__)

__all__ = [
    "DistillData",
    "TrainResult",
    "evaluate",
    "predict_logits",
    "prediction_metrics",
    "train_student",
]

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.safetensors"
METRICS_NAME = "metrics.jsonl"
DONE_NAME = "done.json"


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: training stops at once instead of running on with NaN weights."""


@dataclass
class DistillData:
    """Training or evaluation examples, aligned row for row.

    ``sequences`` are int64 id arrays already truncated and wrapped by ``tokens.model_inputs``; ``labels`` is
    (n,) int64 with ``-1`` for unlabelled rows, or (n, num_labels) 0/1 label sets for multi-label data (a row of
    ``-1`` unlabelled); ``teacher_logits`` is (n, num_labels) float32 or None; ``teacher_representations`` is (n,
    hidden) float32 (what ``distill.representation_weight`` matches the student's features to) or None.
    """

    sequences: list[np.ndarray]
    labels: np.ndarray
    teacher_logits: np.ndarray | None = None
    teacher_representations: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.array(self.labels, dtype=np.int64)  # a writable copy for torch
        if self.labels.ndim not in (1, 2) or len(self.labels) != len(self.sequences):
            raise ValueError(f"labels have shape {self.labels.shape} for {len(self.sequences)} sequences")
        if self.teacher_logits is not None:
            self.teacher_logits = np.array(self.teacher_logits, dtype=np.float32)  # a writable copy for torch
            if self.teacher_logits.ndim != 2 or len(self.teacher_logits) != len(self.sequences):
                raise ValueError(
                    f"teacher_logits must be (n, num_labels) with n={len(self.sequences)}, "
                    f"got {self.teacher_logits.shape}"
                )
            bad = int((~np.isfinite(self.teacher_logits).all(axis=1)).sum())
            if bad:
                raise ValueError(f"teacher_logits: {bad} rows hold NaN or infinite values")
        if self.teacher_representations is not None:
            self.teacher_representations = np.array(self.teacher_representations, dtype=np.float32)
            if self.teacher_representations.ndim != 2 or len(self.teacher_representations) != len(self.sequences):
                raise ValueError(
                    f"teacher_representations must be (n, hidden) with n={len(self.sequences)}, "
                    f"got {self.teacher_representations.shape}"
                )

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences], dtype=np.int64)

    @classmethod
    def concatenate(cls, parts: list[DistillData]) -> DistillData:
        """Rows of several parts (e.g. the labelled train split and the teacher-labelled transfer set)."""
        for name in ("teacher_logits", "teacher_representations"):
            if len({getattr(part, name) is not None for part in parts}) != 1:
                raise ValueError(f"either every part has {name} or none has")
        teacher = [p.teacher_logits for p in parts if p.teacher_logits is not None]
        representations = [p.teacher_representations for p in parts if p.teacher_representations is not None]
        return cls(
            sequences=[s for part in parts for s in part.sequences],
            labels=np.concatenate([part.labels for part in parts]),
            teacher_logits=np.concatenate(teacher) if teacher else None,
            teacher_representations=np.concatenate(representations) if representations else None,
        )


@dataclass
class TrainResult:
    """What a training run achieved; ``best_epoch`` is 1-based (0 when no epoch finished)."""

    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float | None
    epochs_run: int
    global_step: int
    history: list[dict[str, Any]]
    wall_seconds: float
    train_examples_per_second: float
    stopped_early: bool
    completed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _LoopState:
    """Everything about the loop's progress that a checkpoint must restore (plain Python values)."""

    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0  # batches finished in the current epoch
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    best_val_loss: float = math.inf
    best_val_accuracy: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    examples_seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# Metrics


def prediction_metrics(
    logits: np.ndarray, labels: np.ndarray, teacher_logits: np.ndarray | None = None
) -> dict[str, float]:
    """Accuracy and macro F1 on the labelled rows (label != -1), and agreement with the teacher's argmax.

    Multi-label ``labels`` (n, C): subset accuracy, micro and macro F1 and set agreement at thresholds 0.5 (the
    thresholds chosen on validation are applied after training).

    Args:
        logits: (n, C) student logits; labels: (n,) int64 or (n, C) 0/1; teacher_logits: (n, C) or None.

    Returns:
        ``examples`` always; ``accuracy`` and ``macro_f1`` when a row is labelled; ``agreement`` with a teacher.
    """
    return score_logits(logits, labels, teacher_logits).to_dict()


def evaluate(model: nn.Module, data: DistillData, pad_id: int, batch_size: int = 256) -> dict[str, float]:
    """Loss-free metrics of ``model`` on ``data`` (see ``prediction_metrics``)."""
    logits = predict_logits(model, data.sequences, pad_id, batch_size)
    return prediction_metrics(logits, data.labels, data.teacher_logits)


def validation_metrics(model: nn.Module, data: DistillData, config: DistillConfig, pad_id: int) -> dict[str, float]:
    """``val_loss`` (hybrid with the teacher's logits when present, else the hard loss) and ``val_*`` metrics."""
    logits = predict_logits(model, data.sequences, pad_id, config.batch_size)
    student, labels = torch.from_numpy(logits), torch.from_numpy(data.labels)
    if data.teacher_logits is not None:
        loss, _ = hybrid_loss(student, torch.from_numpy(data.teacher_logits), labels, config)
    else:
        loss = binary_hard_loss(student, labels) if labels.dim() == 2 else hard_loss(student, labels)
    metrics = prediction_metrics(logits, data.labels, data.teacher_logits)
    return {"val_loss": float(loss)} | {f"val_{name}": value for name, value in metrics.items()}


# ---------------------------------------------------------------------------------------------------
# Optimisation pieces


def sparse_tables(model: nn.Module) -> list[torch.Tensor]:
    """The trainable weights of the embeddings built with ``sparse=True`` (their gradients are sparse)."""
    return [
        module.weight
        for module in model.modules()
        if isinstance(module, nn.Embedding) and module.sparse and module.weight.requires_grad
    ]


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices, none on biases, norms and embeddings; frozen and sparse left out."""
    embeddings = {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}
    sparse = {id(weight) for weight in sparse_tables(model)}
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if parameter.requires_grad and id(parameter) not in sparse:
            plain = parameter.ndim < 2 or id(parameter) in embeddings
            (no_decay if plain else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def clip_gradients(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Scale all gradients, sparse ones included, so that their global L2 norm is at most ``max_norm``."""
    if not any(p.grad is not None and p.grad.is_sparse for p in parameters):
        nn.utils.clip_grad_norm_(parameters, max_norm)  # the dense path, bit for bit as before
        return
    grads = []
    for parameter in parameters:
        if parameter.grad is not None:
            if parameter.grad.is_sparse:
                parameter.grad = parameter.grad.coalesce()  # repeated rows summed, so values hold each row once
            grads.append(parameter.grad._values() if parameter.grad.is_sparse else parameter.grad)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale)


def linear_schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR factor: linear warmup over ``warmup_ratio · total_steps`` steps, then linear decay to 0."""
    warmup = int(round(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The shuffled length-bucketed batches of one epoch: a pure function of (seed, epoch)."""
    epoch_seed = int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1)[0])
    return length_bucketed_batches(lengths, batch_size, shuffle=True, seed=epoch_seed)


def _rng_state() -> dict[str, Any]:
    _, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_position": int(position),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, state["numpy_position"], state["numpy_has_gauss"], state["numpy_cached_gaussian"])
    )


def _data_digest(data: DistillData) -> str:
    digest = hashlib.sha256(data.labels.tobytes())
    digest.update(data.lengths.tobytes())
    if data.sequences:
        digest.update(np.concatenate(data.sequences).astype(np.int64).tobytes())
    if data.teacher_logits is not None:
        digest.update(data.teacher_logits.tobytes())
    if data.teacher_representations is not None:
        digest.update(data.teacher_representations.tobytes())
    return digest.hexdigest()[:16]


def _arch_config(model: nn.Module) -> Any:
    """The model's arch config dataclass instance, or None when it has none."""
    arch = getattr(model, "config", None)
    return arch if dataclasses.is_dataclass(arch) and not isinstance(arch, type) else None


def _signature(model: nn.Module, train: DistillData, validation: DistillData, config: DistillConfig) -> dict:
    """What must match for a checkpoint or done.json in ``run_dir`` to belong to this run."""
    distill = {k: v for k, v in distill_identity(config).items() if k != "num_threads"}
    arch = _arch_config(model)
    return {
        "distill": distill,
        "model": type(model).__name__,
        "arch": dataclasses.asdict(arch) if arch is not None else None,
        "parameters": count_parameters(model),
        "train": _data_digest(train),
        "validation": _data_digest(validation),
    }


# ---------------------------------------------------------------------------------------------------
# The loop


class _Trainer:
    """One call of ``train_student``: owns the optimizer, scheduler and loop state."""

    def __init__(
        self,
        model: nn.Module,
        train: DistillData,
        validation: DistillData,
        config: DistillConfig,
        run_dir: Path,
        pad_id: int,
        checkpoint_every_steps: int | None,
    ) -> None:
        self.model, self.train, self.validation, self.config = model, train, validation, config
        self.run_dir, self.pad_id, self.checkpoint_every = run_dir, pad_id, checkpoint_every_steps
        self.lengths = train.lengths
        self.steps_per_epoch = math.ceil(len(train) / config.batch_size)
        self.projection = _projection(model, train, config)
        dense = parameter_groups(model, config.weight_decay)
        if self.projection is not None:
            dense += parameter_groups(self.projection, config.weight_decay)
        tables = sparse_tables(model)
        # {checkpoint key: optimizer}: AdamW for the dense parameters, SparseAdam for sparse tables (if any)
        self.optimizers: dict[str, torch.optim.Optimizer] = {"optimizer": torch.optim.AdamW(dense, lr=config.lr)} | (
            {"sparse_optimizer": torch.optim.SparseAdam(tables, lr=config.lr)} if tables else {}
        )
        schedule = linear_schedule(self.steps_per_epoch * config.epochs, config.warmup_ratio)
        self.schedulers = {
            key.replace("optimizer", "scheduler"): torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            for key, optimizer in self.optimizers.items()
        }
        self.signature = _signature(model, train, validation, config)
        self.state = _LoopState()
        self.clock = time.perf_counter()  # start of time not yet added to state.wall_seconds
        self.step_clock = self.clock

    # -- checkpoints -------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def _advance_clock(self) -> None:
        now = time.perf_counter()
        self.state.wall_seconds += now - self.clock
        self.clock = now

    def save_checkpoint(self) -> None:
        self._advance_clock()
        payload = {
            "model": self.model.state_dict(),
            **({"projection": self.projection.state_dict()} if self.projection is not None else {}),
            **{key: optimizer.state_dict() for key, optimizer in self.optimizers.items()},
            **{key: scheduler.state_dict() for key, scheduler in self.schedulers.items()},
            "state": dataclasses.asdict(self.state),
            "rng": _rng_state(),
            "signature": self.signature,
        }
        with atomic_open(self.checkpoint_path) as handle:
            torch.save(payload, handle)

    def start(self) -> None:
        """Resume from ``checkpoint.pt`` when present, else seed a fresh run."""
        if not self.checkpoint_path.is_file():
            torch.manual_seed(self.config.seed)
            np.random.seed(self.config.seed % 2**32)
            return
        payload = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        _check_signature(payload["signature"], self.signature, self.checkpoint_path, _arch_defaults(self.model))
        self.model.load_state_dict(payload["model"])
        if self.projection is not None:
            self.projection.load_state_dict(payload["projection"])
        for key, stateful in (self.optimizers | self.schedulers).items():
            stateful.load_state_dict(payload[key])
        self.state = _LoopState(**payload["state"])
        _set_rng_state(payload["rng"])
        logger.info("resuming %s at epoch %d, batch %d", self.run_dir, self.state.epoch + 1, self.state.step_in_epoch)

    # -- training ----------------------------------------------------------------------------------

    def train_step(self, indices: np.ndarray, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> float:
        """One optimizer step on one batch; returns the batch's total loss."""
        self.model.train()
        labels = torch.from_numpy(self.train.labels[indices])
        teacher = None if self.train.teacher_logits is None else torch.from_numpy(self.train.teacher_logits[indices])
        if self.projection is None:
            loss, parts = hybrid_loss(self.model(input_ids, attention_mask), teacher, labels, self.config)
        else:
            loss, parts = self._loss_with_representations(indices, input_ids, attention_mask, teacher, labels)
        self._stop_if_diverged(parts["total"], "training loss")
        optimizers = list(self.optimizers.values())
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            clip_gradients([p for o in optimizers for g in o.param_groups for p in g["params"]], self.config.grad_clip)
        for optimizer in optimizers:
            optimizer.step()
        for scheduler in self.schedulers.values():
            scheduler.step()
        return parts["total"]

    def _loss_with_representations(
        self,
        indices: np.ndarray,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        teacher: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The hybrid loss plus ``representation_weight`` × the distance between the projected input of the
        student's classifier (B, F) → (B, H) and the teacher's representations (B, H)."""
        assert self.projection is not None and self.train.teacher_representations is not None
        classifier = self.model.get_submodule("classifier")
        with layer_inputs(classifier) as features:
            logits = self.model(input_ids, attention_mask)
        loss, parts = hybrid_loss(logits, teacher, labels, self.config)
        target = torch.from_numpy(self.train.teacher_representations[indices])
        term = representation_loss(self.projection(features[-1]), target)
        loss = loss + self.config.representation_weight * term
        parts |= {"representation": float(term.detach()), "total": float(loss.detach())}
        return loss, parts

    def _stop_if_diverged(self, loss: float, what: str) -> None:
        """Raise ``TrainingDiverged`` when ``loss`` is not finite (checked before the step that would spread NaN)."""
        if math.isfinite(loss):
            return
        state = self.state
        raise TrainingDiverged(
            f"training diverged in {self.run_dir}: the {what} is {loss} at epoch {state.epoch + 1}, "
            f"step {state.step_in_epoch + 1} (distill.lr={self.config.lr:g}); lower distill.lr "
            f"(e.g. --set distill.lr={self.config.lr / 10:g}) or distill.grad_clip and run again"
        )

    def _record_step(self, loss: float, batch_examples: int) -> None:
        state = self.state
        state.train_seconds += time.perf_counter() - self.step_clock
        state.step_in_epoch += 1
        state.global_step += 1
        state.examples_seen += batch_examples
        state.epoch_loss_sum += loss
        if self.checkpoint_every and state.global_step % self.checkpoint_every == 0:
            self.save_checkpoint()
        self.step_clock = time.perf_counter()  # checkpoint writing is not training time

    def train_epoch(self, max_steps: int | None) -> bool:
        """Train the rest of the current epoch; False when ``max_steps`` interrupted it."""
        batches = epoch_batches(self.lengths, self.config.batch_size, self.config.seed, self.state.epoch)
        start = self.state.step_in_epoch
        description = f"epoch {self.state.epoch + 1}/{self.config.epochs}"
        progress = tqdm(total=len(batches), initial=start, desc=description, unit="batch", leave=False)
        self.step_clock = time.perf_counter()
        with progress:
            for indices, input_ids, attention_mask in iterate_batches(
                self.train.sequences, batches[start:], self.pad_id
            ):
                if max_steps is not None and self.state.global_step >= max_steps:
                    return False
                loss = self.train_step(indices, input_ids, attention_mask)
                self._record_step(loss, len(indices))
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
        return True

    def end_epoch(self) -> None:
        """Validate, update early stopping and the best weights, log, write metrics and a checkpoint."""
        state = self.state
        metrics = validation_metrics(self.model, self.validation, self.config, self.pad_id)
        self._stop_if_diverged(metrics["val_loss"], "validation loss")
        state.epoch += 1
        record = {
            "epoch": state.epoch,
            "global_step": state.global_step,
            "lr": self.schedulers["scheduler"].get_last_lr()[0],
            "train_loss": state.epoch_loss_sum / max(1, state.step_in_epoch),
            **metrics,
        }
        state.step_in_epoch, state.epoch_loss_sum = 0, 0.0
        if metrics["val_loss"] < state.best_val_loss:
            state.best_val_loss, state.best_epoch, state.bad_epochs = metrics["val_loss"], state.epoch, 0
            state.best_val_accuracy = metrics.get("val_accuracy")
            save_weights(self.model, self.run_dir / BEST_NAME)
        else:
            state.bad_epochs += 1
        state.stopped_early = state.bad_epochs >= self.config.patience and state.epoch < self.config.epochs
        state.history.append(record)
        logger.info("%s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        atomic_write_text(self.run_dir / METRICS_NAME, "".join(json.dumps(r) + "\n" for r in state.history))
        self.save_checkpoint()

    def run(self, max_steps: int | None) -> bool:
        """Train until the last epoch, early stopping or ``max_steps``; True when the run finished."""
        while self.state.epoch < self.config.epochs and not self.state.stopped_early:
            if not self.train_epoch(max_steps):
                self.save_checkpoint()
                return False
            self.end_epoch()
        return True

    def result(self, completed: bool) -> TrainResult:
        self._advance_clock()
        state = self.state
        return TrainResult(
            best_epoch=state.best_epoch,
            best_val_loss=state.best_val_loss,
            best_val_accuracy=state.best_val_accuracy,
            epochs_run=state.epoch,
            global_step=state.global_step,
            history=list(state.history),
            wall_seconds=state.wall_seconds,
            train_examples_per_second=state.examples_seen / state.train_seconds if state.train_seconds else 0.0,
            stopped_early=state.stopped_early,
            completed=completed,
        )


def _projection(model: nn.Module, train: DistillData, config: DistillConfig) -> nn.Linear | None:
    """With ``representation_weight > 0``: the linear map (F → H) from the input of the student's classifier to the
    teacher's representation size, trained with the student and thrown away after (the student does not change);
    initialised from ``config.seed`` without touching the global random state. None otherwise."""
    if config.representation_weight <= 0:
        return None
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no nn.Linear .classifier whose input could match the teacher's")
    if train.teacher_representations is None:
        raise ValueError("distill.representation_weight > 0 but the training data has no teacher representations")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return nn.Linear(classifier.in_features, train.teacher_representations.shape[1])


def _arch_defaults(model: nn.Module) -> dict[str, Any]:
    """The default value of every field of the model's arch config (empty when it has none)."""
    arch = _arch_config(model)
    if arch is None:
        return {}
    defaults = {}
    for spec in dataclasses.fields(arch):
        if spec.default is not dataclasses.MISSING:
            defaults[spec.name] = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            defaults[spec.name] = spec.default_factory()
    return defaults


def _check_signature(stored: dict, expected: dict, path: Path, arch_defaults: dict[str, Any]) -> None:
    """Raise unless ``stored`` matches ``expected``; an arch field added since ``stored`` was written matches
    when this run has it at its default (so the runs written before a new option keep being recognised)."""
    if isinstance(stored.get("arch"), dict):
        added = {k: v for k, v in arch_defaults.items() if k not in stored["arch"]}
        stored = stored | {"arch": added | stored["arch"]}
    if stored != expected:
        differing = sorted(k for k in expected if stored.get(k) != expected[k])
        raise ValueError(
            f"{path} belongs to a different run (differs in {differing}); use a new run_dir or delete the old one"
        )


def _finished_result(model: nn.Module, run_dir: Path, signature: dict) -> TrainResult:
    """The stored result of a finished run, with its best weights loaded into ``model``."""
    done = json.loads((run_dir / DONE_NAME).read_text(encoding="utf-8"))
    _check_signature(done["signature"], signature, run_dir / DONE_NAME, _arch_defaults(model))
    load_weights(model, run_dir / BEST_NAME)
    logger.info("%s is already trained; reusing its result", run_dir)
    return TrainResult(**done["result"])


def train_student(
    model: nn.Module,
    train: DistillData,
    validation: DistillData,
    config: DistillConfig,
    run_dir: Path,
    pad_id: int,
    *,
    max_steps: int | None = None,
    checkpoint_every_steps: int | None = 200,
) -> TrainResult:
    """Train ``model`` on ``train`` with the hybrid loss, validating and checkpointing into ``run_dir``.

    Resumes from ``run_dir/checkpoint.pt`` when present; returns the stored result of a finished run
    (``done.json``). ``max_steps`` caps the total number of optimizer steps (counted across resumes): the run
    stops there with a checkpoint and ``completed=False``, as if killed, and a later call continues it. On
    completion the best validation weights are loaded into ``model``.
    """
    if train.teacher_logits is None and config.hard_weight <= 0:
        raise ValueError("the training data has no teacher logits and distill.hard_weight is 0")
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(f"need training and validation examples, got {len(train)} and {len(validation)}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    trainer = _Trainer(model, train, validation, config, run_dir, pad_id, checkpoint_every_steps)
    if (run_dir / DONE_NAME).is_file():
        return _finished_result(model, run_dir, trainer.signature)
    trainer.start()
    if not trainer.run(max_steps):
        logger.info("stopped at step %d (max_steps); call again to resume", trainer.state.global_step)
        return trainer.result(completed=False)
    result = trainer.result(completed=True)
    load_weights(model, run_dir / BEST_NAME)
    atomic_write_text(run_dir / DONE_NAME, json.dumps({"result": result.to_dict(), "signature": trainer.signature}))
    trainer.checkpoint_path.unlink(missing_ok=True)
    logger.info("best epoch %d: val_loss %.4f", result.best_epoch, result.best_val_loss)
    return result
