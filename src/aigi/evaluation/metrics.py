"""Binary real-vs-fake metrics, pooled and per generator.

Conventions: label 0 = real, 1 = fake; a score is P(fake); an image is predicted
fake when ``score >= threshold``; ranking metrics take fake as the positive class.
Metrics that are undefined for the given input (e.g. AUROC with one class) are
``None``, never NaN, so results serialise to strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_KEYS = ("auroc", "ap", "acc", "real_acc", "fake_acc", "tpr_at_5fpr", "eer", "ece", "n")
ECE_BINS = 15
REAL_GENERATOR = "real"

MetricDict = dict[str, float | int | None]


def _validated(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return labels as an int array and scores as a float array, or raise ValueError."""
    label_array = np.asarray(labels)
    try:
        score_array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"scores must be numeric: {error}") from None
    if label_array.ndim != 1 or score_array.ndim != 1:
        raise ValueError(
            f"labels and scores must be 1-D, got shapes {label_array.shape} and {score_array.shape}"
        )
    if label_array.shape != score_array.shape:
        raise ValueError(
            f"labels and scores differ in length: {label_array.size} vs {score_array.size}"
        )
    if not np.isin(label_array, (0, 1)).all():
        bad = sorted({repr(value) for value in label_array.tolist() if value not in (0, 1)})
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {', '.join(bad[:5])}")
    if not np.isfinite(score_array).all():
        raise ValueError(f"scores must be finite, found {int((~np.isfinite(score_array)).sum())} NaN/inf")
    return label_array.astype(np.int64), score_array


def _has_both_classes(labels: np.ndarray) -> bool:
    return bool(labels.any() and not labels.all())


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float, strict: bool) -> float:
    if strict:
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        # The first ROC point (threshold +inf) has FPR 0, so the selection is never empty.
        return float(tpr[fpr <= max_fpr].max())
    # Reproduces FiSeR's reference code: sklearn's default (intermediate-dropped) curve,
    # and np.argmin takes the first, lowest-TPR point when several share that FPR.
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[np.argmin(np.abs(fpr - max_fpr))])


def _equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    gap = fpr - (1.0 - tpr)  # FPR - FNR: -1 at the first ROC point, +1 at the last
    after = int(np.argmax(gap >= 0))
    before = after - 1
    weight = -gap[before] / (gap[after] - gap[before])
    return float(fpr[before] + weight * (fpr[after] - fpr[before]))


def tpr_at_fpr(
    labels: ArrayLike, scores: ArrayLike, max_fpr: float, strict: bool = True
) -> float | None:
    """True-positive rate (fakes caught) at a false-positive-rate budget on reals.

    ``strict=True``: the largest TPR over all ROC operating points with FPR <= ``max_fpr``,
    i.e. what a threshold calibrated to that budget can actually achieve.
    ``strict=False``: the TPR of the ROC point whose FPR is nearest ``max_fpr`` (first such
    point of sklearn's default curve), as FiSeR's reference code computes it; that point may
    lie above the budget, and it is the lowest-TPR point at its FPR.
    Returns None unless both classes are present.
    """
    _check_rate("max_fpr", max_fpr)
    label_array, score_array = _validated(labels, scores)
    if not _has_both_classes(label_array):
        return None
    return _tpr_at_fpr(label_array, score_array, max_fpr, strict)


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Error rate where FPR equals FNR (= 1 - TPR).

    Walks the full ROC curve to the first point where FPR - FNR turns non-negative and
    interpolates linearly between it and the previous point; both rates are linear along
    that segment, so they are equal at the crossing. Returns None unless both classes are
    present.
    """
    label_array, score_array = _validated(labels, scores)
    if not _has_both_classes(label_array):
        return None
    return _equal_error_rate(label_array, score_array)


def expected_calibration_error(labels: ArrayLike, scores: ArrayLike, bins: int = ECE_BINS) -> float | None:
    """Expected calibration error of P(fake): the mean over ``bins`` equal-width bins of [0, 1] of
    |fraction of fakes - mean score| in the bin, weighted by the bin's share of images (a score of
    exactly 1 falls in the last bin). None on empty input."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    label_array, score_array = _validated(labels, scores)
    if label_array.size == 0:
        return None
    if ((score_array < 0) | (score_array > 1)).any():
        raise ValueError("calibration needs scores that are probabilities in [0, 1]")
    bin_index = np.minimum((score_array * bins).astype(np.int64), bins - 1)
    counts = np.bincount(bin_index, minlength=bins)
    fake_fraction = np.bincount(bin_index, weights=label_array, minlength=bins)
    mean_score = np.bincount(bin_index, weights=score_array, minlength=bins)
    occupied = counts > 0
    gaps = np.abs(fake_fraction[occupied] - mean_score[occupied])  # both still sums over the bin
    return float(gaps.sum() / label_array.size)


def binary_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> MetricDict:
    """All of ``METRIC_KEYS`` plus ``n_real`` and ``n_fake`` for one evaluation set.

    ``acc``, ``real_acc`` and ``fake_acc`` use ``score >= threshold -> fake``; ``tpr_at_5fpr``
    is the strict variant (see ``tpr_at_fpr``); ``ece`` is ``expected_calibration_error`` (only for scores in
    [0, 1], else None). Ranking metrics are None unless both classes
    are present, a per-class accuracy is None when that class is absent, ``acc`` is None
    on empty input.
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    label_array, score_array = _validated(labels, scores)
    is_fake = label_array == 1
    predicted_fake = score_array >= threshold
    n_fake = int(is_fake.sum())
    n_real = int(label_array.size - n_fake)
    both_classes = n_real > 0 and n_fake > 0
    return {
        "auroc": float(roc_auc_score(label_array, score_array)) if both_classes else None,
        "ap": float(average_precision_score(label_array, score_array)) if both_classes else None,
        "acc": float(np.mean(predicted_fake == is_fake)) if label_array.size else None,
        "real_acc": float(np.mean(~predicted_fake[~is_fake])) if n_real else None,
        "fake_acc": float(np.mean(predicted_fake[is_fake])) if n_fake else None,
        "tpr_at_5fpr": (
            _tpr_at_fpr(label_array, score_array, 0.05, strict=True) if both_classes else None
        ),
        "eer": _equal_error_rate(label_array, score_array) if both_classes else None,
        "ece": (
            expected_calibration_error(label_array, score_array)
            if label_array.size and ((score_array >= 0) & (score_array <= 1)).all() else None
        ),
        "n": int(label_array.size),
        "n_real": n_real,
        "n_fake": n_fake,
    }


def threshold_at_fpr(real_scores: ArrayLike, target_fpr: float = 0.05) -> float:
    """Smallest threshold t in [0, 1] with ``mean(real_scores >= t) <= target_fpr``.

    ``real_scores`` are probabilities in [0, 1]. With them sorted in descending order and k
    the largest count with ``k / n <= target_fpr``, every t above the (k+1)-th score qualifies
    and none at or below it does, so t is the next representable number above that score in
    the scores' own float dtype (it stays strictly above it when compared in that dtype).
    Ties can make the achieved FPR lower than the target. Raises ``ValueError`` when no t <= 1
    reaches the target: the (k+1)-th score is 1.0, i.e. more than ``target_fpr * n`` real
    scores are exactly 1.0 (``target_fpr`` below 1/n with a real at 1.0 is one such case).
    """
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}")
    score_array = np.asarray(real_scores)
    if not np.issubdtype(score_array.dtype, np.floating):
        score_array = score_array.astype(np.float64)
    if score_array.ndim != 1 or score_array.size == 0:
        raise ValueError(f"real_scores must be a non-empty 1-D sequence, got shape {score_array.shape}")
    if not np.isfinite(score_array).all():
        raise ValueError("real_scores must be finite")
    if ((score_array < 0) | (score_array > 1)).any():
        raise ValueError("real_scores must be probabilities in [0, 1]")
    n = score_array.size
    counts = np.arange(n + 1)
    allowed_false_positives = int(counts[counts / n <= target_fpr].max())
    descending = np.sort(score_array)[::-1]
    highest_excluded = descending[allowed_false_positives]
    if highest_excluded == 1:
        at_one = int(np.count_nonzero(score_array == 1))
        raise ValueError(
            f"target_fpr={target_fpr} cannot be reached: {at_one} of {n} real scores are exactly 1.0, "
            f"so every threshold in [0, 1] flags at least {at_one / n:.4g} of the reals "
            f"(at most {allowed_false_positives} may be flagged)"
        )
    return float(np.nextafter(highest_excluded, np.inf, dtype=score_array.dtype))


def normalize_generators(generators: Sequence[str | None]) -> list[str]:
    """Generator names as strings, with None and "" mapped to ``REAL_GENERATOR``."""
    return [REAL_GENERATOR if name is None or name == "" else str(name) for name in generators]


def generator_masks(labels: ArrayLike, generators: Sequence[str | None]) -> dict[str, np.ndarray]:
    """Row mask per fake generator: every real image plus that generator's fakes.

    Reals are identified by label alone (their generator name is ignored); fakes are
    grouped by generator name, which must not be empty or ``REAL_GENERATOR``. Keys are sorted.
    """
    label_array = np.asarray(labels)
    names = normalize_generators(generators)
    if len(names) != label_array.size:
        raise ValueError(f"generators has {len(names)} entries, labels has {label_array.size}")
    name_array = np.asarray(names, dtype=object)
    is_real = label_array == 0
    fake_names = sorted(set(name_array[~is_real].tolist()))
    if REAL_GENERATOR in fake_names:
        raise ValueError(f"fake images (label 1) need a generator name other than '{REAL_GENERATOR}'/empty")
    return {name: is_real | (name_array == name) for name in fake_names}


def grouped_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    generators: Sequence[str | None],
    threshold: float = 0.5,
) -> dict[str, MetricDict | dict[str, MetricDict]]:
    """``binary_metrics`` pooled over everything and per generator.

    Standard per-generator protocol: each generator's entry is computed on ALL real images
    plus that generator's fakes (see ``generator_masks``), so real_acc is the same in every
    row. Returns ``{"pooled": {...}, "per_generator": {name: {...}}}``, names sorted.
    """
    label_array, score_array = _validated(labels, scores)
    masks = generator_masks(label_array, generators)
    return {
        "pooled": binary_metrics(label_array, score_array, threshold),
        "per_generator": {
            name: binary_metrics(label_array[mask], score_array[mask], threshold)
            for name, mask in masks.items()
        },
    }
