"""Metric tests; expected values are worked out by hand in the comments."""

import json

import numpy as np
import pytest

from aigi.evaluation.metrics import (
    METRIC_KEYS,
    binary_metrics,
    equal_error_rate,
    expected_calibration_error,
    generator_masks,
    grouped_metrics,
    threshold_at_fpr,
    tpr_at_fpr,
)

# Reals 0.1, 0.4, 0.35; fakes 0.8, 0.3, 0.9.
# ROC points (FPR, TPR) by falling threshold: (0,0) (0,1/3) (0,2/3) (1/3,2/3) (2/3,2/3) (2/3,1) (1,1).
EXAMPLE_LABELS = [0, 0, 0, 1, 1, 1]
EXAMPLE_SCORES = [0.1, 0.4, 0.35, 0.8, 0.3, 0.9]

# 12 reals (one tied with five fakes at 0.5), 10 fakes.
# ROC points: (0,0) (0,1/2) (1/12,1) (1,1).
TIED_LABELS = [1] * 5 + [1] * 5 + [0] + [0] * 11
TIED_SCORES = [0.9] * 5 + [0.5] * 5 + [0.5] + [0.1] * 11


def test_worked_example() -> None:
    metrics = binary_metrics(EXAMPLE_LABELS, EXAMPLE_SCORES)
    assert list(metrics) == [*METRIC_KEYS, "n_real", "n_fake"]
    # Fake > real pairs: 0.3 beats 0.1; 0.8 and 0.9 beat all three reals -> 7 of 9.
    assert metrics["auroc"] == pytest.approx(7 / 9)
    # Ranked 0.9F 0.8F 0.4R 0.35R 0.3F: precision at each fake is 1, 1, 3/5.
    assert metrics["ap"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    # At 0.5 every real is below, fake 0.3 is missed.
    assert metrics["acc"] == pytest.approx(5 / 6)
    assert metrics["real_acc"] == pytest.approx(1.0)
    assert metrics["fake_acc"] == pytest.approx(2 / 3)
    assert metrics["tpr_at_5fpr"] == pytest.approx(2 / 3)
    # FPR - FNR is exactly 0 at the point (1/3, 2/3).
    assert metrics["eer"] == pytest.approx(1 / 3)
    assert (metrics["n"], metrics["n_real"], metrics["n_fake"]) == (6, 3, 3)


def test_threshold_is_inclusive() -> None:
    # At 0.35: reals 0.4 and 0.35 are flagged, fake 0.3 is missed.
    metrics = binary_metrics(EXAMPLE_LABELS, EXAMPLE_SCORES, threshold=0.35)
    assert metrics["real_acc"] == pytest.approx(1 / 3)
    assert metrics["fake_acc"] == pytest.approx(2 / 3)
    assert metrics["acc"] == pytest.approx(3 / 6)


def test_arrays_and_lists_agree() -> None:
    from_lists = binary_metrics(EXAMPLE_LABELS, EXAMPLE_SCORES)
    from_arrays = binary_metrics(
        np.array(EXAMPLE_LABELS, dtype=bool), np.array(EXAMPLE_SCORES, dtype=np.float32)
    )
    assert from_arrays == pytest.approx(from_lists)


def test_perfect_separation() -> None:
    metrics = binary_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert metrics["auroc"] == 1.0
    assert metrics["ap"] == 1.0
    assert metrics["acc"] == 1.0
    assert metrics["tpr_at_5fpr"] == 1.0
    assert metrics["eer"] == 0.0


def test_inverted_scores() -> None:
    metrics = binary_metrics([0, 0, 1, 1], [0.8, 0.9, 0.1, 0.2])
    assert metrics["auroc"] == 0.0
    assert metrics["acc"] == 0.0
    assert metrics["tpr_at_5fpr"] == 0.0
    # ROC runs along the bottom edge to (1, 0), where FPR = FNR = 1.
    assert metrics["eer"] == 1.0


def test_all_scores_tied() -> None:
    metrics = binary_metrics([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    assert metrics["auroc"] == pytest.approx(0.5)
    assert metrics["ap"] == pytest.approx(0.5)
    # ROC is the single segment (0,0)-(1,1); FPR = FNR halfway along it.
    assert metrics["eer"] == pytest.approx(0.5)
    assert metrics["tpr_at_5fpr"] == 0.0
    assert (metrics["real_acc"], metrics["fake_acc"]) == (0.0, 1.0)


def test_partial_tie_counts_half() -> None:
    # Fake 0.5 vs reals 0.2, 0.5 -> 1 + 1/2; fake 0.9 beats both -> 2; total 3.5 of 4.
    assert binary_metrics([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9])["auroc"] == pytest.approx(0.875)


def test_strict_tpr_beats_nearest_point_at_a_vertical_step() -> None:
    # Nearest FPR to 5% is 0, whose first point is (0, 0); strict takes the top, (0, 2/3).
    assert tpr_at_fpr(EXAMPLE_LABELS, EXAMPLE_SCORES, 0.05) == pytest.approx(2 / 3)
    assert tpr_at_fpr(EXAMPLE_LABELS, EXAMPLE_SCORES, 0.05, strict=False) == 0.0


def test_nearest_point_may_exceed_the_fpr_budget() -> None:
    # FPR 1/12 is nearer 5% than 0 but over budget: nearest reports 1, strict 1/2.
    assert tpr_at_fpr(TIED_LABELS, TIED_SCORES, 0.05) == pytest.approx(0.5)
    assert tpr_at_fpr(TIED_LABELS, TIED_SCORES, 0.05, strict=False) == pytest.approx(1.0)
    assert tpr_at_fpr(TIED_LABELS, TIED_SCORES, 1 / 12) == pytest.approx(1.0)


def test_eer_interpolates_along_a_tied_segment() -> None:
    # Reals 0.2, 0.5; fakes 0.5, 0.5, 0.9. ROC: (0,0) (0,1/3) (1/2,1) (1,1).
    # FPR - FNR goes from -2/3 to +1/2 between (0,1/3) and (1/2,1): crossing at w = 4/7,
    # FPR = 4/7 * 1/2 = 2/7 and FNR = 2/3 * (1 - 4/7) = 2/7.
    assert equal_error_rate([0, 0, 1, 1, 1], [0.2, 0.5, 0.5, 0.5, 0.9]) == pytest.approx(2 / 7)


def test_eer_on_a_vertical_step() -> None:
    # Reals 0.1, 0.5, 0.7; fakes 0.6, 0.9. ROC: (0,0) (0,1/2) (1/3,1/2) (1/3,1) ...
    # FNR falls from 1/2 to 0 at FPR 1/3, so they meet at 1/3.
    assert equal_error_rate([0, 0, 0, 1, 1], [0.1, 0.5, 0.7, 0.6, 0.9]) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("labels", "scores", "present_accuracy", "missing_accuracy"),
    [([0, 0], [0.2, 0.7], "real_acc", "fake_acc"), ([1, 1], [0.2, 0.7], "fake_acc", "real_acc")],
)
def test_one_class_gives_none(
    labels: list[int], scores: list[float], present_accuracy: str, missing_accuracy: str
) -> None:
    metrics = binary_metrics(labels, scores)
    for key in ("auroc", "ap", "tpr_at_5fpr", "eer", missing_accuracy):
        assert metrics[key] is None, key
    assert metrics["acc"] == 0.5
    assert metrics[present_accuracy] == 0.5
    assert metrics["n"] == 2
    assert tpr_at_fpr(labels, scores, 0.05) is None
    assert equal_error_rate(labels, scores) is None
    json.dumps(metrics, allow_nan=False)


def test_empty_input() -> None:
    metrics = binary_metrics([], [])
    assert metrics == {key: None for key in METRIC_KEYS} | {"n": 0, "n_real": 0, "n_fake": 0}


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1], [0.1], "length"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
        ([0, 2], [0.1, 0.2], "0 \\(real\\) or 1"),
        ([0, None], [0.1, 0.2], "0 \\(real\\) or 1"),
        ([0, 1], [0.1, float("nan")], "finite"),
        ([0, 1], [0.1, float("inf")], "finite"),
        ([0, 1], ["low", "high"], "numeric"),
    ],
)
def test_invalid_input_raises(labels: list, scores: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_metrics(labels, scores)


def test_threshold_at_fpr_on_twenty_reals() -> None:
    real_scores = np.random.default_rng(0).permutation(np.arange(1, 21) / 20)  # 0.05 ... 1.0
    # 5% of 20 allows one false positive (1.0), so t sits just above the second highest, 0.95.
    threshold = threshold_at_fpr(real_scores, 0.05)
    assert threshold == np.nextafter(0.95, np.inf)
    assert np.mean(real_scores >= threshold) == 0.05
    assert np.mean(real_scores >= 0.95) == 0.10
    assert threshold_at_fpr(real_scores, 0.10) == np.nextafter(0.90, np.inf)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_threshold_at_fpr_stays_within_zero_one(dtype: type[np.floating]) -> None:
    below_one = np.nextafter(dtype(1), dtype(0))
    real_scores = np.array([0.0, 0.5, below_one], dtype=dtype)
    threshold = threshold_at_fpr(real_scores, 0.0)
    assert threshold == 1.0 and np.mean(real_scores >= threshold) == 0.0
    assert threshold_at_fpr(np.zeros(4, dtype=dtype), 0.0) > 0.0
    rng = np.random.default_rng(3)
    for _ in range(200):
        scores = rng.random(rng.integers(1, 40)).astype(dtype)
        target = float(rng.uniform(0.0, 0.99))
        threshold = threshold_at_fpr(scores, target)
        assert 0.0 <= threshold <= 1.0 and np.mean(scores >= threshold) <= target


@pytest.mark.parametrize(
    ("real_scores", "target_fpr", "at_one"),
    [
        (np.arange(1, 21) / 20, 0.04, 1),  # 4% of 20 allows no false positive, and one real is 1.0
        ([1.0, 1.0, 0.2, 0.1], 0.25, 2),  # one may be flagged, but two are tied at 1.0
        (np.array([0.3, 1.0], dtype=np.float32), 0.0, 1),
    ],
)
def test_threshold_at_fpr_unreachable_with_reals_at_one(
    real_scores: list, target_fpr: float, at_one: int
) -> None:
    message = f"cannot be reached: {at_one} of {len(real_scores)} real scores are exactly 1.0"
    with pytest.raises(ValueError, match=message):
        threshold_at_fpr(real_scores, target_fpr)


def test_threshold_at_fpr_with_reals_at_one_within_the_budget() -> None:
    real_scores = [1.0, 0.8, 0.3, 0.2]
    # One false positive is allowed: the real at 1.0 may stay flagged.
    threshold = threshold_at_fpr(real_scores, 0.25)
    assert threshold == np.nextafter(0.8, np.inf)
    assert np.mean(np.asarray(real_scores) >= threshold) == 0.25


def test_threshold_at_fpr_with_ties_undershoots() -> None:
    real_scores = [0.9, 0.9, 0.9] + [0.1] * 17
    # Two false positives are allowed but the top three are tied, so none can be flagged.
    threshold = threshold_at_fpr(real_scores, 0.10)
    assert threshold == np.nextafter(0.9, np.inf)
    assert np.mean(np.asarray(real_scores) >= threshold) == 0.0


def test_threshold_at_fpr_keeps_float32_resolution() -> None:
    real_scores = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    threshold = threshold_at_fpr(real_scores, 0.0)
    assert threshold == np.nextafter(np.float32(0.3), np.float32(np.inf))
    assert np.float32(threshold) > real_scores.max()


@pytest.mark.parametrize(
    ("real_scores", "target_fpr"),
    [([], 0.05), ([0.1], 1.0), ([0.1], -0.1), ([0.1, 1.5], 0.5), ([-0.1, 0.5], 0.5)],
)
def test_threshold_at_fpr_rejects_bad_input(real_scores: list, target_fpr: float) -> None:
    with pytest.raises(ValueError):
        threshold_at_fpr(real_scores, target_fpr)


# Reals 0.1, 0.2, 0.6 (generator spelled three ways); sdxl fakes 0.7, 0.8; dalle3 fakes 0.15, 0.9.
GROUPED_LABELS = [0, 0, 0, 1, 1, 1, 1]
GROUPED_SCORES = [0.1, 0.2, 0.6, 0.7, 0.8, 0.15, 0.9]
GROUPED_GENERATORS = ["real", None, "", "sdxl", "sdxl", "dalle3", "dalle3"]


def test_grouped_metrics_uses_all_reals_per_generator() -> None:
    result = grouped_metrics(GROUPED_LABELS, GROUPED_SCORES, GROUPED_GENERATORS)
    assert list(result) == ["pooled", "per_generator"]
    assert list(result["per_generator"]) == ["dalle3", "sdxl"]
    sdxl = result["per_generator"]["sdxl"]
    dalle3 = result["per_generator"]["dalle3"]
    assert (sdxl["n"], sdxl["n_real"], sdxl["n_fake"]) == (5, 3, 2)
    assert (dalle3["n"], dalle3["n_real"], dalle3["n_fake"]) == (5, 3, 2)
    # sdxl fakes beat all reals; dalle3 0.15 beats only 0.1 and 0.9 beats all: 4 of 6.
    assert sdxl["auroc"] == 1.0
    assert dalle3["auroc"] == pytest.approx(4 / 6)
    # Pooled: 3 + 3 + 1 + 3 = 10 of 12 pairs.
    assert result["pooled"]["auroc"] == pytest.approx(10 / 12)
    # Real 0.6 is flagged in every row because every row holds all reals.
    assert sdxl["real_acc"] == dalle3["real_acc"] == result["pooled"]["real_acc"] == pytest.approx(2 / 3)
    assert result["pooled"]["n"] == 7


def test_generator_masks_ignore_real_rows_names() -> None:
    masks = generator_masks([0, 0, 1, 1], ["coco", "real", "sdxl", "flux"])
    assert list(masks) == ["flux", "sdxl"]
    assert masks["sdxl"].tolist() == [True, True, True, False]


@pytest.mark.parametrize(
    "generators", [["real", "real", None], ["real", "real", "real"], ["real", "sdxl"]]
)
def test_grouped_metrics_rejects_bad_generators(generators: list) -> None:
    with pytest.raises(ValueError, match="generator"):
        grouped_metrics([0, 0, 1], [0.1, 0.2, 0.9], generators)


def test_ece_of_perfectly_calibrated_bins_is_zero() -> None:
    # 10 images at 0.2 (2 fake) and 10 at 0.8 (8 fake): each bin's fake fraction equals its mean score.
    labels = [1, 1] + [0] * 8 + [1] * 8 + [0, 0]
    scores = [0.2] * 10 + [0.8] * 10
    assert expected_calibration_error(labels, scores) == pytest.approx(0.0)


def test_ece_weights_each_bin_gap_by_its_share() -> None:
    # Bin of 0.9 holds 3 reals + 1 fake (gap 0.65), bin of 0.1 holds 4 reals (gap 0.1): (4*0.65 + 4*0.1) / 8.
    labels = [0, 0, 0, 1, 0, 0, 0, 0]
    scores = [0.9] * 4 + [0.1] * 4
    assert expected_calibration_error(labels, scores) == pytest.approx((4 * 0.65 + 4 * 0.1) / 8)
    assert binary_metrics(labels, scores)["ece"] == pytest.approx((4 * 0.65 + 4 * 0.1) / 8)


def test_ece_puts_a_score_of_one_in_the_last_bin_and_refuses_non_probabilities() -> None:
    assert expected_calibration_error([1, 1], [1.0, 1.0]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error([0, 1], [-0.5, 2.0])
    assert binary_metrics([0, 1], [-0.5, 2.0])["ece"] is None
