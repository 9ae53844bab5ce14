"""Golden-value tests of the pure loss functions against hand calculations and an independent numpy version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from textdistill.config import DistillConfig
from textdistill.losses import (
    binary_hard_loss,
    binary_sequence_loss,
    binary_soft_loss,
    hard_loss,
    hybrid_loss,
    logit_mse_loss,
    representation_loss,
    sequence_loss,
    soft_kl_loss,
)

pytestmark = pytest.mark.usefixtures("single_thread")

STUDENT = [[0.0, 0.0], [1.0, -1.0]]
TEACHER = [[2.0, 0.0], [0.0, 1.0]]


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kl(student: np.ndarray, teacher: np.ndarray, temperature: float) -> float:
    p, q = np_softmax(teacher / temperature), np_softmax(student / temperature)
    return float((p * np.log(p / q)).sum(axis=-1).mean())


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_soft_kl_single_row_by_hand():
    # T=2: p = softmax([1, 0]) = [e/(e+1), 1/(e+1)] = [0.731059, 0.268941], q = softmax([0, 0]) = [0.5, 0.5]
    # KL = 0.731059·ln(1.462117) + 0.268941·ln(0.537883) = 0.110944; times T² = 4 → 0.443776
    loss = soft_kl_loss(t([[0.0, 0.0]]), t([[2.0, 0.0]]), temperature=2.0)
    assert loss.item() == pytest.approx(0.4437762867, abs=1e-9)


def test_soft_kl_two_rows_matches_numpy_with_t_squared():
    loss = soft_kl_loss(t(STUDENT), t(TEACHER), temperature=2.0)
    assert loss.item() == pytest.approx(0.7676355436, abs=1e-9)  # batch mean of [0.110944, 0.272874] · 4
    assert loss.item() == pytest.approx(4 * np_kl(np.array(STUDENT), np.array(TEACHER), 2.0), abs=1e-12)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_soft_kl_t_squared_factor(temperature):
    student, teacher = np.random.default_rng(0).normal(size=(2, 4, 3))
    expected = temperature**2 * np_kl(student, teacher, temperature)
    assert soft_kl_loss(t(student), t(teacher), temperature).item() == pytest.approx(expected, rel=1e-9)


def test_soft_kl_is_zero_for_identical_logits_and_rejects_bad_input():
    assert soft_kl_loss(t(TEACHER), t(TEACHER), 2.0).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="temperature"):
        soft_kl_loss(t(STUDENT), t(TEACHER), 0.0)
    with pytest.raises(ValueError, match="batch, num_labels"):
        soft_kl_loss(t(STUDENT), t([[1.0, 2.0, 3.0]]), 1.0)


def test_hard_loss_ignores_unlabelled_rows():
    student = t([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, -1, 2])
    log_probs = np.log(np_softmax(student.numpy()))
    expected = -(log_probs[0, 0] + log_probs[2, 2]) / 2
    assert hard_loss(student, labels).item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.1609272020, abs=1e-9)


def test_hard_loss_all_unlabelled_is_a_zero_with_a_graph():
    student = t(STUDENT).requires_grad_()
    loss = hard_loss(student, torch.tensor([-1, -1]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_sequence_loss_uses_teacher_argmax_and_threshold():
    student = t([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    teacher = t([[3.0, 0.0], [0.0, 0.1], [0.0, 5.0]])  # argmax 0, 1, 1; confidence 0.953, 0.525, 0.993
    log_probs = np.log(np_softmax(student.numpy()))
    everyone = -(log_probs[0, 0] + log_probs[1, 1] + log_probs[2, 1]) / 3
    confident = -(log_probs[0, 0] + log_probs[2, 1]) / 2
    assert sequence_loss(student, teacher).item() == pytest.approx(everyone, abs=1e-12)
    assert sequence_loss(student, teacher, threshold=0.9).item() == pytest.approx(confident, abs=1e-12)
    assert sequence_loss(student, teacher, threshold=0.999).item() == 0.0


def test_logit_mse_is_squared_l2_per_row_then_batch_mean():
    # rows: (0-2)² + (0-0)² = 4 and (1-0)² + (-1-1)² = 5 → mean 4.5
    assert logit_mse_loss(t(STUDENT), t(TEACHER)).item() == pytest.approx(4.5)


def test_hybrid_combines_weighted_terms():
    config = DistillConfig(
        temperature=2.0,
        soft_weight=0.7,
        hard_weight=0.3,
        sequence_weight=0.2,
        mse_weight=0.1,
        confidence_threshold=0.6,
    )
    student, teacher, labels = t(STUDENT), t(TEACHER), torch.tensor([1, -1])
    total, parts = hybrid_loss(student, teacher, labels, config)
    expected = {
        "soft": soft_kl_loss(student, teacher, 2.0).item(),
        "hard": hard_loss(student, labels).item(),
        "sequence": sequence_loss(student, teacher, 0.6).item(),
        "mse": logit_mse_loss(student, teacher).item(),
    }
    weighted = 0.7 * expected["soft"] + 0.3 * expected["hard"] + 0.2 * expected["sequence"] + 0.1 * expected["mse"]
    assert total.item() == pytest.approx(weighted, abs=1e-12)
    assert parts == pytest.approx(expected | {"total": weighted}, abs=1e-12)


def test_hybrid_skips_zero_weights_and_unlabelled_rows_use_teacher_terms_only():
    config = DistillConfig(soft_weight=1.0, hard_weight=0.5)
    student = t(STUDENT).requires_grad_()
    total, parts = hybrid_loss(student, t(TEACHER), torch.tensor([-1, -1]), config)
    assert set(parts) == {"soft", "hard", "total"}
    assert parts["hard"] == 0.0
    assert total.item() == pytest.approx(soft_kl_loss(t(STUDENT), t(TEACHER), 2.0).item(), abs=1e-12)
    total.backward()
    assert student.grad is not None and math.isfinite(student.grad.abs().sum().item())


def test_hybrid_without_teacher_is_the_hard_loss():
    student, labels = t(STUDENT), torch.tensor([0, 1])
    total, parts = hybrid_loss(student, None, labels, DistillConfig(hard_weight=0.5))
    assert total.item() == pytest.approx(hard_loss(student, labels).item(), abs=1e-12)
    assert set(parts) == {"hard", "total"}
    with pytest.raises(ValueError, match="hard_weight is 0"):
        hybrid_loss(student, None, labels, DistillConfig(hard_weight=0.0))


# ---------------------------------------------------------------------------------------------------
# Multi-label (per-label sigmoid) terms


def np_binary_kl(student: np.ndarray, teacher: np.ndarray, temperature: float) -> float:
    """T² · batch mean of Σ_k KL(Bern(σ(t/T)) ‖ Bern(σ(s/T))), written independently in numpy."""
    p, q = 1 / (1 + np.exp(-teacher / temperature)), 1 / (1 + np.exp(-student / temperature))
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    return float(temperature**2 * kl.sum(axis=-1).mean())


def test_binary_soft_single_label_by_hand():
    # T=2: p = σ(2/2) = 0.731059, q = σ(0) = 0.5: KL = 0.731059·ln(1.462117) + 0.268941·ln(0.537883) = 0.110944,
    # times T² = 4 → 0.443776 (the same number as the two-class softmax case above: σ(t) = softmax([t, 0])[0])
    loss = binary_soft_loss(t([[0.0]]), t([[2.0]]), temperature=2.0)
    assert loss.item() == pytest.approx(0.4437762867, abs=1e-9)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_binary_soft_matches_numpy_and_sums_two_way_softmax_kl_over_labels(temperature):
    student, teacher = np.random.default_rng(1).normal(scale=2.0, size=(2, 5, 4))
    loss = binary_soft_loss(t(student), t(teacher), temperature).item()
    assert loss == pytest.approx(np_binary_kl(student, teacher, temperature), rel=1e-9)
    # each label is a two-way softmax over (logit, 0): the per-label softmax KL, summed over the 4 labels
    pairs = [
        soft_kl_loss(t(np.stack([s, 0 * s], 1)), t(np.stack([c, 0 * c], 1)), temperature)
        for s, c in zip(student.T, teacher.T, strict=True)
    ]
    assert loss == pytest.approx(sum(p.item() for p in pairs), rel=1e-9)


def test_binary_soft_is_zero_for_identical_logits_and_rejects_bad_input():
    assert binary_soft_loss(t(TEACHER), t(TEACHER), 2.0).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="temperature"):
        binary_soft_loss(t(STUDENT), t(TEACHER), 0.0)


def test_binary_hard_by_hand_and_skips_unlabelled_rows():
    # row 1: labels [1, 0], logits [0, 2]: −ln σ(0) − ln(1 − σ(2)) = ln 2 + ln(1 + e²) = 0.693147 + 2.126928
    logits = t([[0.0, 2.0], [5.0, 5.0]])
    labels = torch.tensor([[1, 0], [-1, -1]])
    assert binary_hard_loss(logits, labels).item() == pytest.approx(2.8200752, abs=1e-6)
    assert binary_hard_loss(logits, torch.full((2, 2), -1)).item() == 0.0
    with pytest.raises(ValueError, match="batch, num_labels"):
        binary_hard_loss(logits, torch.tensor([1, 0]))


def test_binary_sequence_targets_the_teacher_label_set():
    # teacher [3, −1] → set {0}: −ln σ(0) − ln(1 − σ(0)) = 2 ln 2
    assert binary_sequence_loss(t([[0.0, 0.0]]), t([[3.0, -1.0]])).item() == pytest.approx(2 * math.log(2), abs=1e-9)


def test_hybrid_uses_binary_terms_for_label_sets():
    student, teacher = t([[0.0, 2.0]]), t([[2.0, -1.0]])
    labels = torch.tensor([[1, 0]])
    config = DistillConfig(temperature=2.0, soft_weight=1.0, hard_weight=0.5, sequence_weight=0.25, mse_weight=0.0)
    total, parts = hybrid_loss(student, teacher, labels, config)
    expected = (
        binary_soft_loss(student, teacher, 2.0)
        + 0.5 * binary_hard_loss(student, labels)
        + 0.25 * binary_sequence_loss(student, teacher)
    )
    assert total.item() == pytest.approx(expected.item(), abs=1e-12)
    assert set(parts) == {"soft", "hard", "sequence", "total"}
    hard_only, _ = hybrid_loss(student, None, labels, config)
    assert hard_only.item() == pytest.approx(2.8200752, abs=1e-6)


def test_representation_loss_is_two_minus_twice_the_cosine_and_blind_to_scale():
    teacher = t([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    student = t([[5.0, 0.0], [1.0, 0.0], [-0.3, -0.4]])  # same direction, orthogonal, opposite
    assert float(representation_loss(student, teacher)) == pytest.approx((0.0 + 2.0 + 4.0) / 3)
    assert float(representation_loss(10 * student, 0.1 * teacher)) == pytest.approx(2.0)


def test_representation_loss_rejects_mismatched_shapes_and_handles_an_empty_batch():
    with pytest.raises(ValueError, match="batch, hidden"):
        representation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = representation_loss(empty, torch.zeros(0, 3))
    loss.backward()
    assert float(loss.detach()) == 0.0
