"""Training losses."""

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["aggregated_positive_contrastive_loss", "hierarchical_contrastive_loss", "supervised_contrastive_loss"]


def supervised_contrastive_loss(
    features: Tensor, labels: Tensor, temperature: float = 0.07
) -> Tensor:
    """Supervised contrastive loss ``L_out`` (Khosla et al., 2020; RescaleCL Eq. 4).

    Features ``[N, D]`` are L2-normalised here. For an anchor ``i`` with positives
    ``P(i)`` (same label, not ``i``) the loss is the mean over ``p`` in ``P(i)`` of
    ``-log(exp(z_i.z_p / T) / sum_{j != i} exp(z_i.z_j / T))``; the result is the
    mean over anchors that have at least one positive. Anchors without a positive
    are left out (the reference implementation divides by zero there). If no
    anchor has a positive the result is a zero that still depends on
    ``features``, so ``backward`` works.

    Unlike the reference implementation there is no ``temperature / base_temperature``
    factor: with its defaults (both 0.07) that factor is 1, and leaving it out keeps
    the value equal to the paper's formula whatever ``temperature`` is.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if labels.shape != features.shape[:1]:
        raise ValueError(
            f"labels must be [N] with N={features.shape[0]}, got shape {tuple(labels.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")

    sample_count = features.shape[0]
    labels = labels.to(features.device)
    not_self = ~torch.eye(sample_count, dtype=torch.bool, device=features.device)
    positives = (labels[:, None] == labels[None, :]) & not_self
    positive_counts = positives.sum(dim=1)
    has_positive = positive_counts > 0
    if not bool(has_positive.any()):
        return features.sum() * 0.0

    embeddings = F.normalize(features, dim=1)
    logits = embeddings @ embeddings.T / temperature
    log_denominators = logits.masked_fill(~not_self, float("-inf")).logsumexp(dim=1, keepdim=True)
    log_probabilities = logits - log_denominators
    positive_log_probability_sums = torch.where(positives, log_probabilities, 0.0).sum(dim=1)
    anchor_losses = -positive_log_probability_sums[has_positive] / positive_counts[has_positive]
    return anchor_losses.mean()


def aggregated_positive_contrastive_loss(
    anchors: Tensor, bank: Tensor, positives: Tensor, negatives: Tensor, temperature: float
) -> Tensor:
    """FiSeR's contrastive term (its Eq. 5 as the reference code computes it), one averaged positive logit per anchor.

    With cosine similarities ``S = norm(anchors) @ norm(bank).T``, ``p_i = mean_{j in P(i)} S_ij / T`` (0 when
    ``P(i)`` is empty) and ``L_i = logsumexp({p_i} U {S_ij / T : j in N(i)}) - p_i``; the result is the mean over
    anchors with at least one negative. Unlike SupCon, other positives are not in the denominator. An anchor
    without positive keeps ``p_i = 0``, which still pushes its negatives below cosine 0 (as in the reference). When
    no anchor has a negative the result is a zero that still depends on ``anchors``.
    """
    if anchors.ndim != 2 or bank.ndim != 2:
        raise ValueError("anchors and bank must be [N, D] and [M, D]")
    expected = (anchors.shape[0], bank.shape[0])
    if positives.shape != expected or negatives.shape != expected:
        raise ValueError(f"positives and negatives must be {expected} masks")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    has_negative = negatives.any(dim=1)
    if not bool(has_negative.any()):
        return anchors.sum() * 0.0
    similarities = F.normalize(anchors.float(), dim=1) @ F.normalize(bank.float(), dim=1).T
    positive_counts = positives.sum(dim=1)
    positive_logits = torch.where(positives, similarities, 0.0).sum(dim=1) / positive_counts.clamp(min=1) / temperature
    negative_logits = (similarities / temperature).masked_fill(~negatives, float("-inf"))
    log_denominators = torch.cat([positive_logits[:, None], negative_logits], dim=1).logsumexp(dim=1)
    return (log_denominators - positive_logits)[has_negative].mean()


def hierarchical_contrastive_loss(
    anchors: Tensor,
    labels: Tensor,
    generators: Tensor,
    *,
    bank: Tensor | None = None,
    bank_labels: Tensor | None = None,
    bank_generators: Tensor | None = None,
    anchor_bank_indices: Tensor | None = None,
    temperature: float = 0.07,
    coarse_weight: float = 1.0,
    fine_weight: float = 1.0,
) -> dict[str, Tensor]:
    """FiSeR's hierarchical loss: ``coarse_weight * coarse + fine_weight * fine`` (reference defaults 1.0 / 1.0).

    - coarse, every anchor: positives are bank items with the same real/fake label, negatives the other label;
    - fine, fake anchors only: positives are fake bank items of the same generator, negatives fake items of
      another generator (real items are left out).

    The bank defaults to the anchors themselves, detached. Under data parallelism pass the features, labels and
    generator ids gathered from every process (the reference gathers without gradient, so only the anchor rows
    carry one) and ``anchor_bank_indices``, the bank row of each anchor; an anchor is never its own positive.
    Returns ``{"coarse", "fine", "loss"}``.
    """
    if bank is None:
        bank, bank_labels, bank_generators = anchors.detach(), labels, generators
        anchor_bank_indices = torch.arange(anchors.shape[0], device=anchors.device)
    elif bank_labels is None or bank_generators is None or anchor_bank_indices is None:
        raise ValueError("a bank needs bank_labels, bank_generators and anchor_bank_indices")
    labels, generators = labels.to(anchors.device), generators.to(anchors.device)
    bank_labels, bank_generators = bank_labels.to(anchors.device), bank_generators.to(anchors.device)
    not_self = torch.ones(anchors.shape[0], bank.shape[0], dtype=torch.bool, device=anchors.device)
    not_self[torch.arange(anchors.shape[0], device=anchors.device), anchor_bank_indices.to(anchors.device)] = False

    same_label = labels[:, None] == bank_labels[None, :]
    coarse = aggregated_positive_contrastive_loss(
        anchors, bank, same_label & not_self, ~same_label & not_self, temperature
    )
    fake_anchors = labels == 1
    fake_bank = (bank_labels == 1)[None, :] & not_self
    same_generator = generators[:, None] == bank_generators[None, :]
    fine = aggregated_positive_contrastive_loss(
        anchors[fake_anchors], bank,
        (same_generator & fake_bank)[fake_anchors], (~same_generator & fake_bank)[fake_anchors], temperature,
    ) if bool(fake_anchors.any()) else anchors.sum() * 0.0
    return {"coarse": coarse, "fine": fine, "loss": coarse_weight * coarse + fine_weight * fine}
