"""Tests for the supervised contrastive loss."""

import math

import pytest
import torch

from aigi.losses import supervised_contrastive_loss

# Six fixed 2-D features: three labels, each appearing twice.
HAND_FEATURES = [
    [1.0, 0.0],
    [0.8, 0.6],
    [0.0, 2.0],
    [-1.0, 1.0],
    [-3.0, -4.0],
    [0.5, -0.5],
]
HAND_LABELS = [0, 0, 1, 1, 2, 2]


def reference_supcon(features: list[list[float]], labels: list[int], temperature: float) -> float:
    """SupCon L_out by explicit loops over anchors, positives and the denominator."""
    norms = [math.sqrt(x * x + y * y) for x, y in features]
    unit = [(x / norm, y / norm) for (x, y), norm in zip(features, norms)]
    anchor_losses = []
    for i, (xi, yi) in enumerate(unit):
        similarity = [xi * xj + yi * yj for xj, yj in unit]
        denominator = sum(
            math.exp(similarity[j] / temperature) for j in range(len(unit)) if j != i
        )
        positive_terms = [
            -math.log(math.exp(similarity[p] / temperature) / denominator)
            for p in range(len(unit))
            if p != i and labels[p] == labels[i]
        ]
        if positive_terms:
            anchor_losses.append(sum(positive_terms) / len(positive_terms))
    return sum(anchor_losses) / len(anchor_losses)


@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
def test_matches_hand_computation(temperature: float) -> None:
    features = torch.tensor(HAND_FEATURES, dtype=torch.float64)
    labels = torch.tensor(HAND_LABELS)
    loss = supervised_contrastive_loss(features, labels, temperature=temperature)
    assert loss.item() == pytest.approx(
        reference_supcon(HAND_FEATURES, HAND_LABELS, temperature), rel=1e-10
    )


def test_closed_form_for_opposite_pairs() -> None:
    # Anchor similarities are +1 to its positive and -1 to both negatives, so at
    # T = 1 every anchor loses -log(e / (e + 2 / e)) = log(1 + 2 e^-2).
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])
    loss = supervised_contrastive_loss(features, torch.tensor([0, 0, 1, 1]), temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)


def test_loop_reference_value_is_pinned() -> None:
    # Cross-checked with an independent NumPy computation: 1.0944106324...
    assert reference_supcon(HAND_FEATURES, HAND_LABELS, 1.0) == pytest.approx(1.0944106, abs=1e-6)


def test_anchors_without_positives_are_excluded() -> None:
    labels_with_singletons = [0, 0, 1, 1, 7, 9]
    features = torch.tensor(HAND_FEATURES, dtype=torch.float64)
    loss = supervised_contrastive_loss(features, torch.tensor(labels_with_singletons), 0.5)
    # Singletons still appear in every denominator but contribute no anchor term.
    assert loss.item() == pytest.approx(
        reference_supcon(HAND_FEATURES, labels_with_singletons, 0.5), rel=1e-10
    )
    assert torch.isfinite(loss)


def test_all_distinct_labels_give_zero_with_gradient() -> None:
    features = torch.randn(5, 8, requires_grad=True)
    loss = supervised_contrastive_loss(features, torch.arange(5))
    assert loss.item() == 0.0
    loss.backward()
    assert features.grad is not None
    assert torch.isfinite(features.grad).all()


def test_single_sample_gives_zero() -> None:
    features = torch.randn(1, 4, requires_grad=True)
    loss = supervised_contrastive_loss(features, torch.tensor([3]))
    loss.backward()
    assert loss.item() == 0.0


def test_duplicate_and_zero_features_stay_finite() -> None:
    features = torch.tensor(
        [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0]], requires_grad=True
    )
    loss = supervised_contrastive_loss(features, torch.tensor([0, 0, 1, 1, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all()


def test_large_logits_are_stable() -> None:
    features = torch.tensor(HAND_FEATURES)
    loss = supervised_contrastive_loss(features, torch.tensor(HAND_LABELS), temperature=1e-4)
    assert torch.isfinite(loss)


def test_temperature_sharpens_separable_clusters() -> None:
    # Two tight, well-separated clusters: a lower temperature makes positives dominate.
    features = torch.tensor([[1.0, 0.05], [1.0, -0.05], [-1.0, 0.05], [-1.0, -0.05]])
    labels = torch.tensor([0, 0, 1, 1])
    sharp = supervised_contrastive_loss(features, labels, temperature=0.05)
    soft = supervised_contrastive_loss(features, labels, temperature=1.0)
    assert sharp < soft
    assert sharp.item() < 0.01


def test_loss_is_scale_invariant_in_features() -> None:
    features = torch.tensor(HAND_FEATURES)
    labels = torch.tensor(HAND_LABELS)
    assert supervised_contrastive_loss(features * 10, labels).item() == pytest.approx(
        supervised_contrastive_loss(features, labels).item(), rel=1e-5
    )


def test_gradient_descent_reduces_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(12, 16, generator=generator, requires_grad=True)
    labels = torch.arange(12) % 3
    before = supervised_contrastive_loss(features, labels, temperature=0.5)
    before.backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = features - 0.5 * features.grad
    after = supervised_contrastive_loss(stepped, labels, temperature=0.5)
    assert after < before


@pytest.mark.parametrize(
    ("features", "labels", "temperature"),
    [
        (torch.zeros(4), torch.zeros(4, dtype=torch.long), 0.1),
        (torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), 0.1),
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), 0.0),
    ],
)
def test_rejects_bad_inputs(
    features: torch.Tensor, labels: torch.Tensor, temperature: float
) -> None:
    with pytest.raises(ValueError):
        supervised_contrastive_loss(features, labels, temperature)
