"""Pure distillation loss functions.

Every function takes logits as ``(batch, num_labels)`` float tensors and returns a scalar tensor.
Labels are ``(batch,)`` int64 with ``-1`` marking an unlabelled row (a transfer-set example that only
the teacher has labelled). A term with no row to average over returns a zero that stays attached to
the graph, so ``backward()`` always works.

Multi-label data (labels not exclusive) uses per-label sigmoids instead of one softmax: labels are ``(batch,
num_labels)`` 0/1 with a row of ``-1`` marking an unlabelled row, and ``hybrid_loss`` switches to the binary
terms (``binary_soft_loss``, ``binary_hard_loss``, ``binary_sequence_loss``) when it is given such labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from textdistill.config import DistillConfig

UNLABELLED = -1


def _zero(student_logits: torch.Tensor) -> torch.Tensor:
    """A scalar zero connected to the student's graph (its gradient is zero)."""
    return student_logits.sum() * 0.0


def _check_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must both be (batch, num_labels); got {tuple(student_logits.shape)} "
            f"and {tuple(teacher_logits.shape)}"
        )


def soft_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-target distillation loss (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network").

    ``L = T² · (1/B) Σ_b KL(p_b ‖ q_b)`` with ``p = softmax(teacher / T)``, ``q = softmax(student / T)`` and
    ``KL(p ‖ q) = Σ_c p_c (log p_c − log q_c)``. The ``T²`` factor keeps the gradient scale independent of ``T``.

    Args:
        student_logits: (B, C) float, the student's logits.
        teacher_logits: (B, C) float, the teacher's logits (treated as constants by the caller).
        temperature: T > 0.

    Returns:
        scalar tensor, the batch mean.
    """
    _check_pair(student_logits, teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student_logits.shape[0] == 0:
        return _zero(student_logits)
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return kl * temperature**2


def hard_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the true labels, averaged over labelled rows only.

    ``L = −(1/|S|) Σ_{b ∈ S} log softmax(student_b)[y_b]`` with ``S = {b : y_b ≠ −1}``; zero when ``S`` is empty.

    Args:
        student_logits: (B, C) float.
        labels: (B,) int64, ``-1`` for unlabelled rows.

    Returns:
        scalar tensor.
    """
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(
            f"labels must be (batch,); got {tuple(labels.shape)} for logits {tuple(student_logits.shape)}"
        )
    labelled = labels != UNLABELLED
    if not bool(labelled.any()):
        return _zero(student_logits)
    return F.cross_entropy(student_logits[labelled], labels[labelled])


def sequence_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Cross-entropy toward the teacher's argmax on confident rows (hard pseudo-labels; Kim and Rush 2016).

    ``L = −(1/|S|) Σ_{b ∈ S} log softmax(student_b)[argmax_c teacher_bc]`` with
    ``S = {b : max_c softmax(teacher_b)_c ≥ threshold}``; zero when ``S`` is empty.

    Args:
        student_logits: (B, C) float.
        teacher_logits: (B, C) float.
        threshold: minimum teacher confidence in [0, 1); 0 keeps every row.

    Returns:
        scalar tensor.
    """
    _check_pair(student_logits, teacher_logits)
    confidence, targets = F.softmax(teacher_logits.float(), dim=-1).max(dim=-1)
    keep = confidence >= threshold
    if not bool(keep.any()):
        return _zero(student_logits)
    return F.cross_entropy(student_logits[keep], targets[keep])


def logit_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Squared distance between logits (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into
    Simple Neural Networks").

    ``L = (1/B) Σ_b ‖teacher_b − student_b‖²₂`` (summed over classes, as in the paper, then batch-mean).

    Args:
        student_logits: (B, C) float.
        teacher_logits: (B, C) float.

    Returns:
        scalar tensor.
    """
    _check_pair(student_logits, teacher_logits)
    if student_logits.shape[0] == 0:
        return _zero(student_logits)
    return (student_logits - teacher_logits).pow(2).sum(dim=-1).mean()


# ---------------------------------------------------------------------------------------------------
# Multi-label: one independent sigmoid per label


def _binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """(B, K) binary KL(Bernoulli(σ(t)) ‖ Bernoulli(σ(s))) per label, computed from logits in log space."""
    p = torch.sigmoid(teacher_logits)
    log_p, log_not_p = F.logsigmoid(teacher_logits), F.logsigmoid(-teacher_logits)
    log_q, log_not_q = F.logsigmoid(student_logits), F.logsigmoid(-student_logits)
    return p * (log_p - log_q) + (1 - p) * (log_not_p - log_not_q)


def binary_soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-label soft-target loss: per-label binary KL at a temperature, summed over labels.

    ``L = T² · (1/B) Σ_b Σ_k KL(Bern(p_bk) ‖ Bern(q_bk))`` with ``p = σ(teacher / T)``, ``q = σ(student / T)`` and
    ``KL(Bern(p) ‖ Bern(q)) = p log(p/q) + (1−p) log((1−p)/(1−q))``: the teacher's sigmoid of each label is a soft
    target, as in Hinton et al. 2015 with each label a two-way softmax over (label, not label) logits (t, 0).
    It equals the binary cross-entropy with soft targets minus the teacher's entropy, so it has the same gradient
    as soft BCE and is zero when the logits agree. Summed over labels as the softmax KL sums over classes; ``T²``
    keeps the gradient scale independent of ``T``.

    Args:
        student_logits: (B, K) float, one logit per label.
        teacher_logits: (B, K) float (constants).
        temperature: T > 0.

    Returns:
        scalar tensor, the batch mean.
    """
    _check_pair(student_logits, teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student_logits.shape[0] == 0:
        return _zero(student_logits)
    kl = _binary_kl(student_logits / temperature, teacher_logits / temperature)
    return kl.sum(dim=-1).mean() * temperature**2


def _labelled_sets(labels: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """(B,) bool: rows of a (B, K) label-set matrix that are labelled (no ``-1``)."""
    if labels.shape != student_logits.shape:
        raise ValueError(
            f"multi-label labels must be (batch, num_labels); got {tuple(labels.shape)} for logits "
            f"{tuple(student_logits.shape)}"
        )
    return (labels != UNLABELLED).all(dim=-1)


def binary_hard_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with the true label sets, summed over labels, averaged over labelled rows.

    ``L = −(1/|S|) Σ_{b ∈ S} Σ_k [y_bk log σ(s_bk) + (1−y_bk) log(1−σ(s_bk))]`` with ``S`` the rows without
    ``−1``; zero when ``S`` is empty.

    Args:
        student_logits: (B, K) float.
        labels: (B, K) 0/1 (any dtype); a row of ``-1`` is unlabelled.

    Returns:
        scalar tensor.
    """
    labelled = _labelled_sets(labels, student_logits)
    if not bool(labelled.any()):
        return _zero(student_logits)
    logits, targets = student_logits[labelled], labels[labelled].to(student_logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=-1).mean()


def binary_sequence_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy toward the teacher's label set ``σ(teacher) ≥ 0.5`` (hard pseudo-labels), summed over
    labels, batch mean.

    Args:
        student_logits: (B, K) float.
        teacher_logits: (B, K) float.

    Returns:
        scalar tensor.
    """
    _check_pair(student_logits, teacher_logits)
    if student_logits.shape[0] == 0:
        return _zero(student_logits)
    targets = (teacher_logits >= 0).to(student_logits.dtype)
    return F.binary_cross_entropy_with_logits(student_logits, targets, reduction="none").sum(dim=-1).mean()


def representation_loss(student_features: torch.Tensor, teacher_representations: torch.Tensor) -> torch.Tensor:
    """Squared distance between length-normalised representations (the "patient" loss of Sun et al. 2019,
    "Patient Knowledge Distillation for BERT Model Compression", on one layer's pooled output).

    ``L = (1/B) Σ_b ‖ s_b / ‖s_b‖ − t_b / ‖t_b‖ ‖²  = (1/B) Σ_b (2 − 2 cos(s_b, t_b))``, in [0, 4]; normalising
    makes it blind to the scale of either side, so it neither grows with the hidden size nor rewards a student that
    shrinks its features.

    Args:
        student_features: (B, H) float, the student's features already projected to the teacher's size H.
        teacher_representations: (B, H) float, the teacher's (constants).

    Returns:
        scalar tensor, the batch mean.
    """
    if student_features.dim() != 2 or student_features.shape != teacher_representations.shape:
        raise ValueError(
            f"student features and teacher representations must both be (batch, hidden); got "
            f"{tuple(student_features.shape)} and {tuple(teacher_representations.shape)}"
        )
    if student_features.shape[0] == 0:
        return _zero(student_features)
    student = F.normalize(student_features, dim=-1)
    teacher = F.normalize(teacher_representations.to(student.dtype), dim=-1)
    return (student - teacher).pow(2).sum(dim=-1).mean()


def _teacher_terms(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, config: DistillConfig, multi_label: bool = False
) -> dict[str, tuple[float, torch.Tensor]]:
    """The teacher-based terms with a positive weight, as name -> (weight, loss); every row counts.

    ``multi_label``: the binary (per-label sigmoid) versions of the soft and sequence terms.
    """
    terms: dict[str, tuple[float, torch.Tensor]] = {}
    if config.soft_weight > 0:
        soft = binary_soft_loss if multi_label else soft_kl_loss
        terms["soft"] = (config.soft_weight, soft(student_logits, teacher_logits, config.temperature))
    if config.sequence_weight > 0:
        if multi_label:
            sequence = binary_sequence_loss(student_logits, teacher_logits)
        else:
            sequence = sequence_loss(student_logits, teacher_logits, config.confidence_threshold)
        terms["sequence"] = (config.sequence_weight, sequence)
    if config.mse_weight > 0:
        terms["mse"] = (config.mse_weight, logit_mse_loss(student_logits, teacher_logits))
    return terms


def hybrid_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    config: DistillConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the distillation terms used by the training loop.

    ``L = w_soft · soft_kl(T) + w_hard · hard + w_seq · sequence(threshold) + w_mse · mse``; a term with
    weight 0 is not computed. Teacher terms average over every row; the hard term averages over the
    labelled rows only (rows with label ``-1`` contribute only teacher terms).

    With ``teacher_logits=None`` (the hard-labels-only baseline) the loss is the unweighted hard loss; that
    needs ``config.hard_weight > 0`` so a distillation config is never silently trained without its teacher.

    Multi-label ``labels`` (B, C) select the binary terms: ``binary_soft_loss`` for soft, ``binary_hard_loss`` for
    hard and ``binary_sequence_loss`` for sequence (the confidence threshold does not apply); mse is the same.

    Args:
        student_logits: (B, C) float.
        teacher_logits: (B, C) float or None.
        labels: (B,) int64, ``-1`` for unlabelled rows; or (B, C) 0/1 label sets, a row of ``-1`` unlabelled.
        config: weights, temperature and confidence threshold.

    Returns:
        (total scalar tensor, parts) where parts maps each computed term and ``"total"`` to a float.
    """
    multi_label = labels.dim() == 2
    hard_term = binary_hard_loss if multi_label else hard_loss
    if teacher_logits is None:
        if config.hard_weight <= 0:
            raise ValueError(
                "no teacher logits were given and distill.hard_weight is 0: there is nothing to learn from"
            )
        hard = hard_term(student_logits, labels)
        return hard, {"hard": float(hard.detach()), "total": float(hard.detach())}
    terms = _teacher_terms(student_logits, teacher_logits, config, multi_label)
    if config.hard_weight > 0:
        terms["hard"] = (config.hard_weight, hard_term(student_logits, labels))
    total = sum((weight * loss for weight, loss in terms.values()), _zero(student_logits))
    parts = {name: float(loss.detach()) for name, (_, loss) in terms.items()}
    parts["total"] = float(total.detach())
    return total, parts
