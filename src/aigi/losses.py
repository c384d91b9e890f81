"""Training losses."""

import math
from dataclasses import dataclass

import ot
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "aggregated_positive_contrastive_loss", "hierarchical_contrastive_loss", "supervised_contrastive_loss",
    "GaussianMixture", "bures_wasserstein_cost", "discriminative_contrastive_loss", "fit_gaussian_mixture",
    "prototype_optimal_transport_loss", "prototype_transport_plan", "synerdetect_losses",
]


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


# SynerDetect: CMID reconstruction, OT-DCL (GMM prototypes, Bures-Wasserstein cost, entropic OT, InfoNCE).


@dataclass
class GaussianMixture:
    """A mixture of Gaussians with diagonal covariances: weights ``[K]``, means ``[K, D]``, variances ``[K, D]``."""

    weights: Tensor
    means: Tensor
    variances: Tensor


def gaussian_mixture_log_joint(features: Tensor, mixture: GaussianMixture) -> Tensor:
    """``log pi_k + log N(x_n | mu_k, diag(var_k))`` for every sample and component, ``[N, K]``."""
    squared = (features[:, None, :] - mixture.means[None]) ** 2 / mixture.variances[None]
    log_normaliser = mixture.variances.log().sum(dim=-1) + features.shape[1] * math.log(2 * math.pi)
    return mixture.weights.log()[None] - 0.5 * (squared.sum(dim=-1) + log_normaliser[None])


def gaussian_mixture_responsibilities(features: Tensor, mixture: GaussianMixture) -> Tensor:
    """Posterior of each component given each sample, ``[N, K]`` (rows sum to 1)."""
    return gaussian_mixture_log_joint(features, mixture).softmax(dim=1)


def fit_gaussian_mixture(
    features: Tensor, num_components: int, iterations: int = 10, variance_floor: float = 1e-4
) -> GaussianMixture:
    """Soft-EM fit of a diagonal-covariance GMM to ``[N, D]`` features, differentiable (the iterations are unrolled).

    Means start at ``num_components`` samples chosen by farthest-point sampling from the sample nearest the batch
    mean (deterministic); variances start at the batch variance, weights uniform. ``variance_floor`` is added to every
    variance, so one-sample or collapsed components stay proper. A component that loses all its mass keeps its mean
    and variances instead of dividing by zero.
    """
    sample_count = features.shape[0]
    if features.ndim != 2 or sample_count < num_components:
        raise ValueError(f"need [N, D] features with N >= {num_components} components, got {tuple(features.shape)}")
    with torch.no_grad():
        chosen = [int(((features - features.mean(dim=0)) ** 2).sum(dim=1).argmin())]
        nearest = ((features - features[chosen[0]]) ** 2).sum(dim=1)
        for _ in range(num_components - 1):
            chosen.append(int(nearest.argmax()))
            nearest = torch.minimum(nearest, ((features - features[chosen[-1]]) ** 2).sum(dim=1))
    means = features[chosen]
    variances = features.var(dim=0, unbiased=False).expand(num_components, -1) + variance_floor
    weights = features.new_full((num_components,), 1.0 / num_components)
    for _ in range(iterations):
        responsibilities = gaussian_mixture_responsibilities(features, GaussianMixture(weights, means, variances))
        counts = responsibilities.sum(dim=0)
        occupied = counts > 1e-6
        safe_counts = counts.clamp_min(1e-6)[:, None]
        new_means = responsibilities.T @ features / safe_counts
        deviations = (features[:, None, :] - new_means[None]) ** 2
        new_variances = (responsibilities[..., None] * deviations).sum(dim=0) / safe_counts + variance_floor
        means = torch.where(occupied[:, None], new_means, means)
        variances = torch.where(occupied[:, None], new_variances, variances)
        weights = counts.clamp_min(1e-6) / counts.clamp_min(1e-6).sum()
    return GaussianMixture(weights, means, variances)


def bures_wasserstein_cost(first: GaussianMixture, second: GaussianMixture) -> Tensor:
    """Squared 2-Wasserstein distances between the components, ``[K1, K2]`` (SynerDetect Eq. 4):
    ``||mu_i - mu_j||^2 + Tr(S_i + S_j - 2 (S_i^1/2 S_j S_i^1/2)^1/2)``.

    For diagonal covariances the trace term is ``sum_d (sqrt(s_id) - sqrt(s_jd))^2``, the closed form of what
    ``ot.gmm.dist_bures_squared`` computes with matrix square roots.
    """
    mean_term = ((first.means[:, None] - second.means[None]) ** 2).sum(dim=-1)
    covariance_term = ((first.variances.sqrt()[:, None] - second.variances.sqrt()[None]) ** 2).sum(dim=-1)
    return mean_term + covariance_term


def prototype_transport_plan(noise: GaussianMixture, visual: GaussianMixture, entropy: float) -> tuple[Tensor, Tensor]:
    """(plan ``T*`` of Eq. 5, cost ``C``): entropic OT between the prototypes, marginals the mixing weights.

    Solved by POT's log-domain Sinkhorn on the torch tensors, so the plan is differentiable through its iterations,
    in float64: POT's tolerance (1e-9 marginal error) is below float32's precision once costs are many times eta, and
    a float32 solve would run all 1000 iterations (into the autograd graph) and warn. K x K is tiny either way. The
    weights are renormalised in float64 so that both marginals have exactly the same mass.
    """
    cost = bures_wasserstein_cost(noise, visual)
    noise_weights, visual_weights = noise.weights.double(), visual.weights.double()
    plan = ot.sinkhorn(noise_weights / noise_weights.sum(), visual_weights / visual_weights.sum(), cost.double(),
                       reg=entropy, method="sinkhorn_log")
    return plan.to(cost.dtype), cost


def prototype_optimal_transport_loss(
    image_embeds: Tensor, noise_embeds: Tensor, num_components: int, entropy: float, iterations: int = 10,
    variance_floor: float = 1e-4,
) -> Tensor:
    """L_POT (Eq. 6) on L2-normalised z_v and z_n: ``<T*, C> + mean_i sum_k w_i(k) ||z_n_i - mu_v_k||^2``.

    GMMs are fitted on the batch for each modality. ``w_i(k)`` is the responsibility of the visual prototype ``k``
    for the noise sample ``i`` (its posterior under the visual GMM): Eq. 6 pairs ``w_i(k)`` with ``mu_k^v``, and
    only under the visual GMM does index ``k`` name the same prototype on both sides.
    """
    visual_features = F.normalize(image_embeds.float(), dim=-1)
    noise_features = F.normalize(noise_embeds.float(), dim=-1)
    visual = fit_gaussian_mixture(visual_features, num_components, iterations, variance_floor)
    noise = fit_gaussian_mixture(noise_features, num_components, iterations, variance_floor)
    plan, cost = prototype_transport_plan(noise, visual, entropy)
    responsibilities = gaussian_mixture_responsibilities(noise_features, visual)
    distances = ((noise_features[:, None] - visual.means[None]) ** 2).sum(dim=-1)
    return (plan * cost).sum() + (responsibilities * distances).sum(dim=1).mean()


def discriminative_contrastive_loss(
    prompt_embeds: Tensor, image_embeds: Tensor, noise_embeds: Tensor, labels: Tensor, temperature: float
) -> Tensor:
    """L_DCL (Eq. 7), text-anchored InfoNCE with cosine similarity.

    The anchor of sample ``i`` is its own prompt of its label, ``z_t^i``; the positive is ``z_v^i`` (and, as a second
    term, ``z_n^i``); the negatives are the z_v and z_n of every sample of the other label. The result averages the
    two positives over the batch. Without negatives (a one-class batch) each term is exactly 0.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    sample_count = len(labels)
    rows = torch.arange(sample_count, device=labels.device)
    anchors = F.normalize(prompt_embeds.float()[rows, labels], dim=-1)
    candidates = F.normalize(torch.cat([image_embeds, noise_embeds]).float(), dim=-1)
    logits = anchors @ candidates.T / temperature  # [N, 2N]: z_v of every sample, then z_n of every sample
    negative_logits = logits.masked_fill(labels.repeat(2)[None] == labels[:, None], float("-inf"))
    terms = []
    for positive_column in (rows, rows + sample_count):
        positive = logits[rows, positive_column]
        denominator = torch.cat([positive[:, None], negative_logits], dim=1).logsumexp(dim=1)
        terms.append(denominator - positive)
    return torch.stack(terms).mean()


def synerdetect_losses(outputs, reconstruction_noise: Tensor, labels: Tensor, config) -> dict[str, Tensor]:
    """The SynerDetect objective (Eqs. 2, 6-9) from a `SynerDetectForImageClassification` output of a forward with
    reconstruction inputs, and a `SynerDetectConfig` (K, eta, tau, alpha, lambda, EM settings):
    ``loss = lambda * L_CR + (1 - lambda) * (L_DCL + alpha * L_POT)``."""
    reconstruction = F.mse_loss(outputs.reconstruction_prediction.float(), reconstruction_noise.float())
    contrastive = discriminative_contrastive_loss(
        outputs.prompt_embeds, outputs.image_embeds, outputs.noise_embeds, labels, config.temperature
    )
    transport = prototype_optimal_transport_loss(
        outputs.image_embeds, outputs.noise_embeds, config.gmm_num_components, config.ot_entropy,
        config.gmm_em_iterations, config.gmm_variance_floor,
    )
    weight = config.reconstruction_weight
    loss = weight * reconstruction + (1 - weight) * (contrastive + config.pot_weight * transport)
    return {"loss": loss, "reconstruction": reconstruction, "contrastive": contrastive, "transport": transport}
