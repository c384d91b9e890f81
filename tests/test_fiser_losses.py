"""FiSeR's hierarchical contrastive loss against a direct, loop-by-loop computation of the reference formula."""

import math

import pytest
import torch

from aigi.losses import aggregated_positive_contrastive_loss, hierarchical_contrastive_loss

TEMPERATURE = 0.07


def cosine(first: list[float], second: list[float]) -> float:
    dot = sum(a * b for a, b in zip(first, second))
    return dot / math.sqrt(sum(a * a for a in first)) / math.sqrt(sum(b * b for b in second))


def hand_term(anchors, bank, is_positive, is_negative, temperature=TEMPERATURE) -> float:
    """mean over anchors with a negative of logsumexp({p_i} U {s_ij/T, j negative}) - p_i, p_i = mean positive s/T."""
    losses = []
    for i, anchor in enumerate(anchors):
        positives = [cosine(anchor, bank[j]) for j in range(len(bank)) if is_positive(i, j)]
        negatives = [cosine(anchor, bank[j]) / temperature for j in range(len(bank)) if is_negative(i, j)]
        if not negatives:
            continue
        positive_logit = (sum(positives) / len(positives) if positives else 0.0) / temperature
        terms = [positive_logit] + negatives
        top = max(terms)
        losses.append(top + math.log(sum(math.exp(term - top) for term in terms)) - positive_logit)
    return sum(losses) / len(losses)


# Six samples: two reals, four fakes of generators 1, 1, 2, 3 (generator 3 has no fine positive).
FEATURES = [
    [1.0, 0.2, -0.3, 0.5],
    [0.8, -0.1, 0.4, 0.2],
    [-0.5, 1.0, 0.3, -0.2],
    [-0.4, 0.9, 0.1, 0.6],
    [0.2, -0.7, 1.0, 0.1],
    [0.3, 0.3, -0.9, 1.0],
]
LABELS = [0, 0, 1, 1, 1, 1]
GENERATORS = [0, 0, 1, 1, 2, 3]


def hand_hierarchical(coarse_weight=1.0, fine_weight=1.0) -> tuple[float, float, float]:
    coarse = hand_term(
        FEATURES, FEATURES,
        lambda i, j: i != j and LABELS[i] == LABELS[j],
        lambda i, j: LABELS[i] != LABELS[j],
    )
    fake_rows = [i for i in range(6) if LABELS[i] == 1]
    fine = hand_term(
        [FEATURES[i] for i in fake_rows], FEATURES,
        lambda a, j: fake_rows[a] != j and LABELS[j] == 1 and GENERATORS[fake_rows[a]] == GENERATORS[j],
        lambda a, j: LABELS[j] == 1 and GENERATORS[fake_rows[a]] != GENERATORS[j],
    )
    return coarse, fine, coarse_weight * coarse + fine_weight * fine


def tensors():
    return torch.tensor(FEATURES, requires_grad=True), torch.tensor(LABELS), torch.tensor(GENERATORS)


def test_six_sample_batch_matches_the_hand_computation():
    features, labels, generators = tensors()
    losses = hierarchical_contrastive_loss(features, labels, generators, temperature=TEMPERATURE)
    coarse, fine, total = hand_hierarchical()
    assert losses["coarse"].item() == pytest.approx(coarse, rel=1e-5)
    assert losses["fine"].item() == pytest.approx(fine, rel=1e-5)
    assert losses["loss"].item() == pytest.approx(total, rel=1e-5)
    assert fine > 0 and coarse > 0


def test_weights_scale_the_terms_and_zero_fine_is_coarse_only():
    features, labels, generators = tensors()
    weighted = hierarchical_contrastive_loss(features, labels, generators, coarse_weight=0.5, fine_weight=2.0)
    assert weighted["loss"].item() == pytest.approx(hand_hierarchical(0.5, 2.0)[2], rel=1e-5)
    coarse_only = hierarchical_contrastive_loss(features, labels, generators, fine_weight=0.0)
    assert coarse_only["loss"].item() == pytest.approx(hand_hierarchical()[0], rel=1e-5)


def test_anchor_without_positive_keeps_a_zero_positive_logit():
    # Generator 3 (row 5) has no fine positive: its fine loss is logsumexp({0} U negatives / T) - 0.
    features = torch.tensor(FEATURES)
    negatives = [cosine(FEATURES[5], FEATURES[j]) / TEMPERATURE for j in (2, 3, 4)]
    expected = math.log(1 + sum(math.exp(value) for value in negatives))
    positives = torch.zeros(1, 6, dtype=torch.bool)
    negative_mask = torch.tensor([[False, False, True, True, True, False]])
    loss = aggregated_positive_contrastive_loss(features[5:6], features, positives, negative_mask, TEMPERATURE)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_one_class_batch_gives_a_finite_zero_with_a_gradient_path():
    features = torch.tensor(FEATURES, requires_grad=True)
    losses = hierarchical_contrastive_loss(features, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    assert losses["loss"].item() == 0.0 and losses["coarse"].item() == 0.0 and losses["fine"].item() == 0.0
    losses["loss"].backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_fakes_of_a_single_generator_give_no_fine_term_but_a_coarse_one():
    features = torch.tensor(FEATURES, requires_grad=True)
    losses = hierarchical_contrastive_loss(features, torch.tensor(LABELS), torch.tensor([0, 0, 1, 1, 1, 1]))
    assert losses["fine"].item() == 0.0 and losses["coarse"].item() > 0
    assert not torch.isnan(losses["loss"])


def test_only_anchor_rows_carry_gradient_as_in_the_reference():
    features, labels, generators = tensors()
    hierarchical_contrastive_loss(features, labels, generators)["loss"].backward()
    reference = features.grad.clone()
    # The same loss with an explicit (detached) bank gives the same gradient.
    features.grad = None
    bank = features.detach().clone()
    hierarchical_contrastive_loss(
        features, labels, generators, bank=bank, bank_labels=labels, bank_generators=generators,
        anchor_bank_indices=torch.arange(6),
    )["loss"].backward()
    torch.testing.assert_close(features.grad, reference)


def test_gathered_bank_of_two_processes_equals_the_per_process_hand_computation():
    # Process 1 of 2 holds rows 3..5 of the global batch; its anchors see the whole (gathered) batch as the bank.
    features, labels, generators = tensors()
    losses = hierarchical_contrastive_loss(
        features[3:], labels[3:], generators[3:], bank=features.detach(), bank_labels=labels,
        bank_generators=generators, anchor_bank_indices=torch.arange(3, 6),
    )
    coarse = hand_term(
        FEATURES[3:], FEATURES,
        lambda i, j: i + 3 != j and LABELS[i + 3] == LABELS[j],
        lambda i, j: LABELS[i + 3] != LABELS[j],
    )
    fine = hand_term(
        FEATURES[3:], FEATURES,
        lambda i, j: i + 3 != j and LABELS[j] == 1 and GENERATORS[i + 3] == GENERATORS[j],
        lambda i, j: LABELS[j] == 1 and GENERATORS[i + 3] != GENERATORS[j],
    )
    assert losses["coarse"].item() == pytest.approx(coarse, rel=1e-5)
    assert losses["fine"].item() == pytest.approx(fine, rel=1e-5)


def test_bank_needs_its_labels_and_anchor_indices():
    features, labels, generators = tensors()
    with pytest.raises(ValueError, match="bank_labels"):
        hierarchical_contrastive_loss(features, labels, generators, bank=features.detach())
