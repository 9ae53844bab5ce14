"""Teacher fine-tuning with the Hugging Face Trainer, and the teacher's logits computed once.

The Trainer brings mixed precision on GPUs, multi-GPU / multi-node runs (``accelerate launch``,
``torchrun``), gradient accumulation and resumable checkpoints without code of our own; on CPU
it simply runs. The only customisation is the optimizer: two learning rates, a lower one for the
pretrained body and a higher one for the new classifier head.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textdistill.cache import atomic_write_text
from textdistill.config import TeacherConfig
from textdistill.distributed import is_distributed
from textdistill.multilabel import score_logits
from textdistill.tokens import pad_batch

logger = logging.getLogger(__name__)

HEAD_PREFIXES = ("classifier", "score", "pre_classifier")
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class TeacherError(ValueError):
    """A teacher checkpoint or setting that cannot be used, with the reason."""


class SequenceDataset(torch.utils.data.Dataset):
    """Pre-tokenised sequences ([CLS] ... [SEP], int64 arrays) with their label ids, or (multi-label) their
    (K,) 0/1 label sets as floats (the targets of ``BCEWithLogitsLoss``)."""

    def __init__(self, sequences: list[np.ndarray], labels: np.ndarray) -> None:
        self.sequences, self.labels = sequences, labels

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, Any]:
        label = self.labels[index]
        return {"input_ids": self.sequences[index], "labels": label.astype(np.float32) if label.ndim else int(label)}


class PadCollator:
    """Pads a list of examples to the longest one: input_ids/attention_mask (batch, time), labels (batch,)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_batch([e["input_ids"] for e in examples], self.pad_id)
        labels = torch.tensor(np.array([e["labels"] for e in examples]))  # (batch,) int64 or (batch, K) float32
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# ---------------------------------------------------------------------------------------------------
# Loading and checking


def load_classifier(name: str, label_names: list[str], dropout: float, tokenizer=None, multi_label: bool = False):
    """``AutoModelForSequenceClassification`` with a head for ``label_names``; mismatches are TeacherErrors.

    ``multi_label``: ``problem_type="multi_label_classification"`` (one sigmoid per label, BCE loss).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as error:
        raise TeacherError(
            f"could not load the config of teacher {name!r}: {type(error).__name__}: {error}"
        ) from error
    _check_head(config, name, len(label_names))
    config.num_labels = len(label_names)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {label: i for i, label in enumerate(label_names)}
    if multi_label:
        config.problem_type = "multi_label_classification"
    if hasattr(config, "classifier_dropout"):
        config.classifier_dropout = dropout
    try:
        model = AutoModelForSequenceClassification.from_pretrained(name, config=config, dtype=torch.float32)
    except Exception as error:
        raise TeacherError(f"could not load teacher weights from {name!r}: {type(error).__name__}: {error}") from error
    if tokenizer is not None:
        check_vocabulary(model, tokenizer, name)
    return model


def _check_head(config, name: str, num_labels: int) -> None:
    """A checkpoint that already has a classification head must have one output per label."""
    architectures = getattr(config, "architectures", None) or []
    has_head = any(a.endswith("ForSequenceClassification") for a in architectures)
    if has_head and config.num_labels != num_labels:
        raise TeacherError(
            f"teacher {name!r} has a classification head with {config.num_labels} labels "
            f"but the data has {num_labels}; use a base checkpoint or matching data"
        )


def check_vocabulary(model, tokenizer, name: str) -> None:
    """The tokenizer must not produce ids beyond the model's embedding table."""
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise TeacherError(
            f"tokenizer has {len(tokenizer)} tokens but teacher {name!r} embeds only {vocab}; "
            "they do not belong together (set tokens.tokenizer to the teacher's tokenizer)"
        )


def checkpoint_hash(model_dir: Path) -> str:
    """sha256 of the teacher's weights file(s): keys the logit cache."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise TeacherError(f"{model_dir}: no *.safetensors weights")
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Fine-tuning


def _supported(cls, **kwargs: Any) -> dict[str, Any]:
    """Keep only the keyword arguments this transformers version accepts."""
    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}


def precision_flags(mode: str) -> dict[str, bool]:
    """bf16/fp16 flags for the Trainer: ``auto`` uses bf16 (or fp16) on a GPU and fp32 on CPU; ``bf16`` also runs
    on a CPU (autocast; about 2x faster on CPUs with native bf16 such as AVX512-BF16)."""
    if mode == "auto":
        if not torch.cuda.is_available():
            return {}
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    flags = {"bf16": mode == "bf16", "fp16": mode == "fp16"}
    if mode == "bf16" and not torch.cuda.is_available():
        flags["use_cpu"] = True  # the Trainer refuses bf16 without a GPU unless told to train on the CPU
    return flags


def training_arguments(config: TeacherConfig, output_dir: Path, steps_per_epoch: int, best_metric: str = "accuracy"):
    """TrainingArguments for this transformers version (argument names moved between releases)."""
    from transformers import TrainingArguments

    strategy = "steps" if config.eval_steps else "epoch"
    eval_steps = config.eval_steps or steps_per_epoch
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.logit_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.body_lr,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=eval_steps,
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        greater_is_better=True,
        logging_steps=max(1, min(50, steps_per_epoch // 4)),
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        group_by_length=True,
        warmup_ratio=config.warmup_ratio,
        # A classifier's loss is a mean over its batch (it ignores num_items_in_batch), and DDP averages gradients:
        # with True the Trainer multiplies the loss by the process count (doubled loss and gradients with 2).
        average_tokens_across_devices=False,
        **precision_flags(config.mixed_precision),
    )
    if is_distributed() and not torch.cuda.is_available():
        kwargs["use_cpu"] = True  # launched on CPUs: without it the Trainer runs DDP on GPUs only
    accepted = inspect.signature(TrainingArguments.__init__).parameters
    if "warmup_ratio" not in accepted:
        kwargs["warmup_steps"] = config.warmup_ratio  # newer releases take a ratio here
    return TrainingArguments(**_supported(TrainingArguments, **kwargs))


def two_rate_trainer_class():
    """A Trainer whose optimizer gives the classifier head its own (higher) learning rate."""
    from transformers import Trainer

    class TwoRateTrainer(Trainer):
        head_lr: float = 1e-3

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                self.optimizer = torch.optim.AdamW(
                    parameter_groups(self.model, self.args.learning_rate, self.head_lr, self.args.weight_decay)
                )
            return self.optimizer

    return TwoRateTrainer


def parameter_groups(model, body_lr: float, head_lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: (body|head) x (decay|no decay); biases and norms are not decayed."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            key = (name.startswith(HEAD_PREFIXES), not any(n in name for n in NO_DECAY))
            groups.setdefault(key, []).append(parameter)
    return [
        {"params": params, "lr": head_lr if is_head else body_lr, "weight_decay": weight_decay if decay else 0.0}
        for (is_head, decay), params in groups.items()
    ]


def best_evaluation(log_history: list[dict[str, Any]], metric: str = "accuracy") -> dict[str, Any]:
    """The validation metrics of the best checkpoint (the one ``load_best_model_at_end`` restores), read from the
    Trainer's log rather than paying for another pass over the validation split."""
    evaluations = [entry for entry in log_history if f"eval_{metric}" in entry]
    return max(evaluations, key=lambda entry: entry[f"eval_{metric}"])


def _accuracy_metrics(prediction) -> dict[str, float]:
    """``score_logits``'s metrics of an evaluation pass; the Trainer logs them as ``eval_accuracy``,
    ``eval_macro_f1``... (multi-label: label sets at thresholds 0.5, ``eval_macro_f1``, ``eval_micro_f1``...)."""
    logits, labels = np.asarray(prediction[0]), np.asarray(prediction[1])
    return score_logits(logits, labels.astype(np.int64)).to_dict()


def fine_tune(
    train: tuple[list[np.ndarray], np.ndarray],
    validation: tuple[list[np.ndarray], np.ndarray],
    label_names: list[str],
    tokenizer,
    config: TeacherConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Fine-tune ``config.model`` on (sequences, labels) pairs; the best checkpoint by validation accuracy
    is saved with ``save_pretrained`` (safetensors) and the tokenizer in ``out_dir / "model"``.

    Resumes from the last Trainer checkpoint in ``out_dir / "checkpoints"`` after an interruption.
    Returns the training summary (validation metrics, wall time, reviews/s).
    """
    multi_label = np.asarray(train[1]).ndim == 2
    best_metric = "macro_f1" if multi_label else "accuracy"
    model = load_classifier(config.model, label_names, config.classifier_dropout, tokenizer, multi_label)
    train_set, val_set = SequenceDataset(*train), SequenceDataset(*validation)
    steps_per_epoch = max(1, len(train_set) // (config.batch_size * config.gradient_accumulation))
    checkpoints = out_dir / "checkpoints"
    trainer_class = two_rate_trainer_class()
    trainer_class.head_lr = config.head_lr
    trainer = trainer_class(
        model=model,
        args=training_arguments(config, checkpoints, steps_per_epoch, best_metric),
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=PadCollator(tokenizer.pad_token_id),
        compute_metrics=_accuracy_metrics,
    )
    resume = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - started
    validation_metrics = best_evaluation(trainer.state.log_history, best_metric)
    if trainer.is_world_process_zero():
        model_dir = out_dir / "model"
        trainer.save_model(str(model_dir))
        (model_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle: the card and metrics.json hold the args
        tokenizer.save_pretrained(str(model_dir))
    summary = {
        "train_seconds": seconds,
        "train_reviews_per_second": len(train_set) * config.epochs / seconds if not resume else None,
        "train_loss": result.training_loss,
        "validation": validation_metrics,
        "resumed": resume,
        "log_history": trainer.state.log_history,
        "hyperparameters": asdict(config),
    }
    logger.info("teacher fine-tuned in %.0f s; validation %s", seconds, validation_metrics)
    return summary


# ---------------------------------------------------------------------------------------------------
# Logits


def load_teacher(model_dir: Path, device: str | None = None):
    """Load a fine-tuned teacher in fp32 for inference; missing or corrupt weights are TeacherErrors."""
    from transformers import AutoModelForSequenceClassification

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise TeacherError(f"{model_dir}: not a teacher checkpoint (no config.json)")
    if not any(model_dir.glob("*.safetensors")):
        raise TeacherError(f"{model_dir}: no model.safetensors weights")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    except Exception as error:
        raise TeacherError(f"{model_dir}: weights could not be loaded: {type(error).__name__}: {error}") from error
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()


def write_model_card(model_dir: Path, summary: dict[str, Any], fingerprints: dict[str, str]) -> None:
    """A README.md model card: data fingerprint, hyper-parameters, validation and test metrics."""
    lines = [
        "---",
        "library_name: transformers",
        "tags: [text-classification, textdistill, teacher]",
        "---",
        "# textdistill teacher",
        "",
        f"Fine-tuned from `{summary['hyperparameters']['model']}` by `textdistill teacher`.",
        "",
        "## Data fingerprints",
        "",
        *[f"- {name}: `{value}`" for name, value in fingerprints.items()],
        "",
        "## Metrics",
        "",
        "| split | accuracy | macro F1 |",
        "| --- | --- | --- |",
    ]
    for split in ("validation", "test"):
        metrics = summary.get(f"{split}_metrics")
        if metrics:
            accuracy = metrics.get("accuracy", metrics.get("subset_accuracy"))  # multi-label: the whole set right
            lines.append(f"| {split} | {accuracy:.4f} | {metrics['macro_f1']:.4f} |")
    lines += ["", "## Hyper-parameters", "", "```json", json.dumps(summary["hyperparameters"], indent=2), "```", ""]
    atomic_write_text(model_dir / "README.md", "\n".join(lines))
