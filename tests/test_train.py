"""The training loop on a tiny separable task: learning, early stopping, exact resume, reuse of a finished run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from textdistill.config import DistillConfig
from textdistill.students import build_student
from textdistill.students.hub import read_weights
from textdistill.train import (
    DistillData,
    TrainingDiverged,
    _Trainer,
    clip_gradients,
    evaluate,
    prediction_metrics,
    train_student,
)

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, PAD, CLS, SEP, POSITIVE, NEGATIVE = 40, 0, 2, 3, 5, 6
ARCH = {"embedding_dim": 16, "hidden_size": 16, "num_layers": 1, "attention_dim": 8, "dropout": 0.2}


def toy_data(n: int, seed: int, unlabelled: float = 0.0, teacher: bool = True, flip: bool = False) -> DistillData:
    """Label 1 iff the sequence holds token POSITIVE (else it holds NEGATIVE), among random filler tokens."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    sequences = []
    for label in labels:
        body = rng.integers(7, VOCAB, size=rng.integers(3, 12))
        body[rng.integers(len(body))] = POSITIVE if label else NEGATIVE
        sequences.append(np.concatenate([[CLS], body, [SEP]]).astype(np.int64))
    logits = np.stack([-2.0 * (2 * labels - 1), 2.0 * (2 * labels - 1)], axis=1) + rng.normal(0, 0.5, size=(n, 2))
    shown = np.where(rng.random(n) < unlabelled, -1, 1 - labels if flip else labels)
    return DistillData(sequences, shown, logits.astype(np.float32) if teacher else None)


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_student("rnn-attention", ARCH, vocab_size=VOCAB, num_labels=2, pad_id=PAD)


def config(**changes) -> DistillConfig:
    values = {"epochs": 4, "batch_size": 16, "lr": 2e-2, "patience": 3, "seed": 7, "warmup_ratio": 0.1}
    return DistillConfig(**(values | changes))


@pytest.fixture(scope="module")
def toy():
    return toy_data(96, seed=1, unlabelled=0.25), toy_data(48, seed=2)


def test_loss_falls_and_run_files_are_written(toy, tmp_path):
    train, validation = toy
    model = make_model()
    result = train_student(model, train, validation, config(epochs=6, patience=6), tmp_path, PAD)
    losses = [record["val_loss"] for record in result.history]
    assert result.completed and result.epochs_run == 6 and not result.stopped_early
    assert min(losses) < 0.5 * losses[0]
    assert result.best_val_accuracy is not None and result.best_val_accuracy >= 0.9
    assert result.train_examples_per_second > 0 and result.wall_seconds > 0
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.history and [line["epoch"] for line in lines] == list(range(1, 7))
    assert {"train_loss", "lr", "val_loss", "val_accuracy", "val_macro_f1", "val_agreement"} <= set(lines[0])
    assert (tmp_path / "done.json").is_file() and not (tmp_path / "checkpoint.pt").exists()
    metrics = evaluate(model, validation, PAD, batch_size=7)  # the best weights are loaded back
    assert metrics["accuracy"] == pytest.approx(result.best_val_accuracy)
    assert metrics["agreement"] == pytest.approx(result.history[result.best_epoch - 1]["val_agreement"])


def test_early_stopping_keeps_the_best_epoch(toy, tmp_path):
    train, _ = toy
    # validation labels are the opposite of the training rule and it has no teacher logits (hard loss only):
    # the better the model learns the task, the worse its validation loss
    flipped = toy_data(48, seed=2, teacher=False, flip=True)
    model = make_model()
    result = train_student(model, train, flipped, config(epochs=12, patience=2), tmp_path, PAD)
    losses = [record["val_loss"] for record in result.history]
    assert result.stopped_early and result.epochs_run < 12
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.epochs_run == result.best_epoch + 2
    best = read_weights(tmp_path / "best.safetensors")
    assert all(torch.equal(best[name], tensor) for name, tensor in model.state_dict().items())


@pytest.fixture
def uninterrupted(toy, tmp_path_factory, single_thread):
    """A whole run; bit-equality needs the same thread count as the resumed run (float reductions)."""
    train, validation = toy  # 96 rows, batch 16: 6 steps per epoch
    model = make_model()
    run_dir = tmp_path_factory.mktemp("whole")
    return model, train_student(model, train, validation, config(), run_dir, PAD, checkpoint_every_steps=4)


def assert_same_run(model, result, uninterrupted) -> None:
    whole_model, whole = uninterrupted
    assert result.completed and result.global_step == whole.global_step
    assert result.history == whole.history  # exact, every epoch's losses and metrics
    for name, tensor in whole_model.state_dict().items():  # tolerance 0: bit-identical on CPU
        assert torch.equal(model.state_dict()[name], tensor), name


def test_resume_after_max_steps_equals_an_uninterrupted_run(toy, tmp_path, uninterrupted):
    train, validation = toy
    cut = train_student(make_model(), train, validation, config(), tmp_path, PAD, max_steps=9)
    assert not cut.completed and cut.global_step == 9 and cut.epochs_run == 1  # stopped mid-epoch 2
    assert not (tmp_path / "done.json").exists()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["state"]["step_in_epoch"] == 3

    resumed_model = make_model(seed=123)  # different initial weights: everything must come from the checkpoint
    resumed = train_student(resumed_model, train, validation, config(), tmp_path, PAD)
    assert_same_run(resumed_model, resumed, uninterrupted)


def test_resume_after_a_crash_uses_the_last_periodic_checkpoint(toy, tmp_path, uninterrupted, monkeypatch):
    train, validation = toy
    real_step = _Trainer.train_step

    def crash_at_step_11(self, *args):
        if self.state.global_step == 10:
            raise KeyboardInterrupt("killed")
        return real_step(self, *args)

    monkeypatch.setattr(_Trainer, "train_step", crash_at_step_11)
    with pytest.raises(KeyboardInterrupt):
        train_student(make_model(), train, validation, config(), tmp_path, PAD, checkpoint_every_steps=4)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state"]["global_step"] == 8
    monkeypatch.setattr(_Trainer, "train_step", real_step)
    resumed_model = make_model(seed=123)
    resumed = train_student(resumed_model, train, validation, config(), tmp_path, PAD, checkpoint_every_steps=4)
    assert_same_run(resumed_model, resumed, uninterrupted)


def test_finished_run_is_reused_without_training(toy, tmp_path, monkeypatch):
    train, validation = toy
    first_model = make_model()
    first = train_student(first_model, train, validation, config(epochs=2), tmp_path, PAD)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr("textdistill.train._Trainer.train_step", no_training)
    second_model = make_model(seed=5)
    second = train_student(second_model, train, validation, config(epochs=2), tmp_path, PAD)
    assert second == first
    for name, tensor in first_model.state_dict().items():
        assert torch.equal(second_model.state_dict()[name], tensor)
    with pytest.raises(ValueError, match=r"different run \(differs in \['distill'\]\)"):
        train_student(make_model(), train, validation, config(epochs=2, lr=1e-3), tmp_path, PAD)


def test_a_run_written_before_a_new_arch_field_is_recognised_at_its_default(toy, tmp_path, monkeypatch):
    train, validation = toy
    first = train_student(make_bag(sparse=False), train, validation, config(epochs=1), tmp_path, PAD)
    done = json.loads((tmp_path / "done.json").read_text())
    del done["signature"]["arch"]["sparse_gradients"]  # as written before the field existed
    (tmp_path / "done.json").write_text(json.dumps(done))
    monkeypatch.setattr("textdistill.train._Trainer.train_step", lambda *a: pytest.fail("must not train again"))
    assert train_student(make_bag(sparse=False), train, validation, config(epochs=1), tmp_path, PAD) == first
    with pytest.raises(ValueError, match=r"differs in \['arch'\]"):
        train_student(make_bag(sparse=True), train, validation, config(epochs=1), tmp_path, PAD)


def test_hard_label_baseline_and_its_guard(tmp_path):
    train, validation = toy_data(32, seed=3, teacher=False), toy_data(16, seed=4, teacher=False)
    result = train_student(make_model(), train, validation, config(epochs=1), tmp_path, PAD)
    assert result.completed and "val_agreement" not in result.history[0]
    with pytest.raises(ValueError, match="hard_weight is 0"):
        train_student(make_model(), train, validation, config(hard_weight=0.0), tmp_path / "soft", PAD)


def test_prediction_metrics_score_labelled_rows_and_agreement_on_all():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 2.0]])
    teacher = np.array([[1.0, 0], [1, 0], [1, 0], [0, 1]])
    metrics = prediction_metrics(logits, np.array([0, -1, 1, 1]), teacher_logits=teacher)
    # labelled rows: predictions 0, 0, 1 for labels 0, 1, 1 → accuracy 2/3, F1 (class 0: 2/3, class 1: 2/3)
    assert metrics == pytest.approx({"examples": 4, "accuracy": 2 / 3, "macro_f1": 2 / 3, "agreement": 3 / 4})
    assert set(prediction_metrics(logits, np.full(4, -1))) == {"examples"}


def test_distill_data_validates_alignment():
    with pytest.raises(ValueError, match="labels have shape"):
        DistillData([np.array([2, 3])], np.array([0, 1]))
    with pytest.raises(ValueError, match="teacher_logits must be"):
        DistillData([np.array([2, 3])], np.array([0]), np.zeros((2, 2)))
    both = DistillData.concatenate([toy_data(3, seed=0), toy_data(2, seed=1)])
    assert len(both) == 5 and both.teacher_logits is not None and both.teacher_logits.shape == (5, 2)


def test_a_diverged_run_stops_at_once_and_says_so(toy, tmp_path):
    train, validation = toy
    with pytest.raises(TrainingDiverged, match=r"diverged.*lower distill\.lr"):
        train_student(make_model(), train, validation, config(lr=1e9, warmup_ratio=0.0, grad_clip=0.0), tmp_path, PAD)
    # stopped in the first epoch: no epoch was validated, no NaN weights were kept as "best"
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "best.safetensors").exists()


def test_non_finite_teacher_logits_are_rejected():
    data = toy_data(8, seed=3)
    logits = data.teacher_logits.copy()
    logits[2, 1] = np.nan
    with pytest.raises(ValueError, match="1 rows hold NaN"):
        DistillData(data.sequences, data.labels, logits)


def make_bag(seed: int = 0, sparse: bool = True) -> torch.nn.Module:
    torch.manual_seed(seed)
    arch = {"embedding_dim": 8, "bigram_buckets": 64, "dropout": 0.0, "sparse_gradients": sparse}
    return build_student("ngram-bag", arch, vocab_size=VOCAB, num_labels=2, pad_id=PAD)


def test_sparse_tables_learn_with_lazy_adam_and_leave_unread_rows_alone(toy, tmp_path):
    train, validation = toy
    model = make_bag()
    before = model.embedding.weight.detach().clone()
    result = train_student(model, train, validation, config(epochs=12, patience=12, lr=5e-2), tmp_path, PAD)
    losses = [record["val_loss"] for record in result.history]
    assert min(losses) < 0.5 * losses[0]  # as its dense twin: 1.59 -> 0.51, accuracy 0.94 both
    assert result.best_val_accuracy is not None and result.best_val_accuracy >= 0.9
    read = torch.from_numpy(np.unique(np.concatenate(train.sequences)))
    unread = torch.ones(VOCAB, dtype=torch.bool)
    unread[read] = False
    assert unread.any() and torch.equal(model.embedding.weight[unread], before[unread])  # lazy: never touched
    assert not torch.equal(model.embedding.weight[read], before[read])


def test_sparse_gradients_are_clipped_like_their_dense_equal(toy):
    train, _ = toy
    ids = torch.from_numpy(np.stack([np.pad(s, (0, 14 - len(s))) for s in train.sequences[:16]]))
    grads = {}
    for sparse in (False, True):
        model = make_bag(sparse=sparse)
        model(ids, (ids != PAD).long()).logsumexp(-1).sum().backward()
        parameters = list(model.parameters())
        clip_gradients(parameters, max_norm=0.01)
        grads[sparse] = [p.grad.to_dense() for p in parameters]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads[True]]))
    assert total == pytest.approx(0.01, rel=1e-4)
    for dense, sparse in zip(grads[False], grads[True], strict=True):
        torch.testing.assert_close(sparse, dense)


def test_sparse_run_resumes_exactly(toy, tmp_path):
    train, validation = toy
    whole_model = make_bag()
    whole = train_student(whole_model, train, validation, config(), tmp_path / "whole", PAD)
    cut = train_student(make_bag(), train, validation, config(), tmp_path / "cut", PAD, max_steps=9)
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert not cut.completed and {"sparse_optimizer", "sparse_scheduler"} <= set(checkpoint)
    resumed_model = make_bag(seed=123)
    resumed = train_student(resumed_model, train, validation, config(), tmp_path / "cut", PAD)
    assert_same_run(resumed_model, resumed, (whole_model, whole))


def with_representations(data: DistillData, hidden: int = 6) -> DistillData:
    """The teacher's "representation" of a row: a fixed direction per label, so a student can match it."""
    directions = np.random.default_rng(3).normal(size=(2, hidden))
    rule = np.array([int(POSITIVE in sequence) for sequence in data.sequences])
    return DistillData(data.sequences, data.labels, data.teacher_logits, directions[rule].astype(np.float32))


def test_representation_matching_trains_a_projection_and_leaves_the_student_as_it_is(toy, tmp_path, monkeypatch):
    train, validation = with_representations(toy[0]), toy[1]
    terms = []
    real = _Trainer._loss_with_representations

    def recording(self, *args):
        loss, parts = real(self, *args)
        terms.append(parts["representation"])
        return loss, parts

    monkeypatch.setattr(_Trainer, "_loss_with_representations", recording)
    model = make_model()
    result = train_student(model, train, validation, config(epochs=6, representation_weight=1.0), tmp_path, PAD)
    assert result.completed and len(terms) == result.global_step
    assert np.mean(terms[-6:]) < 0.5 * np.mean(terms[:6])  # the projected features come to point the teacher's way
    assert set(read_weights(tmp_path / "best.safetensors")) == set(make_model().state_dict())  # no projection


def test_representation_run_resumes_exactly(toy, tmp_path):
    train, validation = with_representations(toy[0]), toy[1]
    settings = config(representation_weight=0.5)
    whole_model = make_model()
    whole = train_student(whole_model, train, validation, settings, tmp_path / "whole", PAD)
    train_student(make_model(), train, validation, settings, tmp_path / "cut", PAD, max_steps=9)
    assert "projection" in torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    resumed_model = make_model(seed=123)
    resumed = train_student(resumed_model, train, validation, settings, tmp_path / "cut", PAD)
    assert_same_run(resumed_model, resumed, (whole_model, whole))


def test_representation_weight_needs_representations_in_every_training_part(toy, tmp_path):
    train, validation = toy
    with pytest.raises(ValueError, match="no teacher representations"):
        train_student(make_model(), train, validation, config(representation_weight=1.0), tmp_path, PAD)
    with pytest.raises(ValueError, match="every part has teacher_representations or none"):
        DistillData.concatenate([with_representations(train), train])
