"""Training losses."""

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["supervised_contrastive_loss"]


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
