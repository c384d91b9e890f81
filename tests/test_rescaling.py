"""Tests for bilinear rescaling periodicity and RescaleCL batch construction."""

from collections import defaultdict
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from aigi.data.rescaling import (
    DEFAULT_RESCALE_RATIOS,
    RescalingContrastBatch,
    bilinear_rescale,
    interpolation_period,
    minimum_source_size,
    rescale_ratios,
    sample_rescaling_contrast_batch,
)


@pytest.mark.parametrize(
    ("src_size", "dst_size", "period"),
    [
        (6, 4, 2),
        (2, 3, 3),
        (4, 6, 3),
        (8, 8, 1),
        (16, 24, 3),
        (256, 288, 9),
        (7, 10, 10),
        (10, 5, 1),
    ],
)
def test_interpolation_period(src_size: int, dst_size: int, period: int) -> None:
    assert interpolation_period(src_size, dst_size) == period


def source_coordinates(
    src_size: int, dst_size: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """x_src of every destination column, read back from resizing the ramp X[..., j] = j."""
    ramp = torch.arange(src_size, dtype=dtype).expand(1, 1, 1, src_size)
    resized = F.interpolate(
        ramp, size=(1, dst_size), mode="bilinear", align_corners=False, antialias=False
    )
    return resized[0, 0, 0]


def is_periodic(values: torch.Tensor, period: int, tolerance: float) -> bool:
    difference = (values[period:] - values[:-period]).abs()
    circular_difference = torch.minimum(difference, 1 - difference)
    return bool((circular_difference < tolerance).all())


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize(
    ("src_size", "dst_size"), [(6, 4), (16, 24), (21, 35), (40, 68), (64, 120)]
)
def test_interpolation_weights_have_exactly_the_computed_period(
    src_size: int, dst_size: int, dtype: torch.dtype, tolerance: float
) -> None:
    period = interpolation_period(src_size, dst_size)
    coordinates = source_coordinates(src_size, dst_size, dtype).double()
    # Bilinear interpolation reproduces a linear ramp except where torch clamps
    # x_src to [0, src - 1]; keep only the unclamped interior.
    exact = (coordinates > 0) & (coordinates < src_size - 1)
    expected = (torch.arange(dst_size, dtype=torch.float64) + 0.5) * src_size / dst_size - 0.5
    interior = coordinates[exact]
    assert torch.allclose(interior, expected[exact], atol=tolerance)
    assert exact.nonzero().flatten().diff().eq(1).all()
    fractional = interior - interior.floor()
    assert len(fractional) >= 2 * period
    assert is_periodic(fractional, period, tolerance)
    for shorter in range(1, period):
        assert not is_periodic(fractional, shorter, tolerance)


def test_paper_figure_3_pairs_share_weights() -> None:
    # 6 -> 4 px: destination pixels 1 and 3 use the same interpolation weights.
    fractional = source_coordinates(6, 4).frac()
    assert fractional[1].item() == pytest.approx(fractional[3].item())
    assert fractional[0].item() != pytest.approx(fractional[1].item())


def test_rescale_ratios_small_denominator() -> None:
    assert rescale_ratios(3) == [Fraction(4, 3), Fraction(3, 2), Fraction(5, 3)]
    assert rescale_ratios(2) == [Fraction(3, 2)]


def test_rescale_ratios_default() -> None:
    ratios = rescale_ratios()
    assert ratios == sorted(ratios)
    assert len(set(ratios)) == len(ratios)
    assert all(1 < ratio < 2 and ratio.denominator <= 8 for ratio in ratios)
    assert Fraction(9, 8) in ratios and Fraction(15, 8) in ratios
    assert Fraction(6, 4) in ratios  # reduced to 3/2
    assert list(DEFAULT_RESCALE_RATIOS) == ratios
    assert len(ratios) == 21  # sum of Euler's phi(q) over q = 2..8
    with pytest.raises(ValueError):
        rescale_ratios(1)


@pytest.mark.parametrize(
    ("height", "width", "ratio", "expected_size"),
    [
        (250, 250, Fraction(3, 2), (375, 375)),
        (250, 250, Fraction(5, 3), (415, 415)),
        (64, 70, Fraction(9, 8), (72, 72)),
        (30, 31, Fraction(4, 3), (40, 40)),
    ],
)
def test_bilinear_rescale_size(
    height: int, width: int, ratio: Fraction, expected_size: tuple[int, int]
) -> None:
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    assert bilinear_rescale(images, ratio).shape == (2, 3, *expected_size)


def test_bilinear_rescale_crops_then_quantises() -> None:
    images = torch.rand(2, 3, 50, 47, generator=torch.Generator().manual_seed(1))
    rescaled = bilinear_rescale(images, Fraction(7, 5))
    expected = F.interpolate(
        images[..., :50, :45], size=(70, 63), mode="bilinear", align_corners=False
    )
    levels = rescaled * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert rescaled.min() >= 0 and rescaled.max() <= 1
    assert (rescaled - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_bilinear_rescale_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        bilinear_rescale(torch.rand(3, 32, 32), Fraction(3, 2))
    with pytest.raises(ValueError):
        bilinear_rescale(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), Fraction(3, 2))


def random_images(count: int, size: int = 160, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(3, size, size, generator=generator) * 255).round() / 255
        for _ in range(count)
    ]


SMALL_PATCH = 32


def sample_small_batch(
    images: list[torch.Tensor], seed: int = 0, **overrides: object
) -> RescalingContrastBatch:
    arguments = {
        "patch_size": SMALL_PATCH,
        "ratios_per_batch": 3,
        "phases_per_ratio": 4,
        "generator": torch.Generator().manual_seed(seed),
    }
    arguments.update(overrides)
    return sample_rescaling_contrast_batch(images, **arguments)


def test_batch_shapes_and_label_counts() -> None:
    images = random_images(7, size=96)  # groups of 3, 2 and 2 images
    batch = sample_small_batch(images)
    assert batch.patches.shape == (7 * 4, 3, SMALL_PATCH, SMALL_PATCH)
    assert batch.labels.dtype == torch.long
    assert batch.labels.shape == batch.image_indices.shape == (28,)
    assert batch.offsets.shape == (28, 2)
    assert len(batch.ratios) == 28
    counts = torch.bincount(batch.labels)
    assert counts.numel() == 3 * 4 and (counts >= 2).all()
    assert sorted(counts.tolist()) == [2] * 8 + [3] * 4
    assert len(set(batch.ratios)) == 3


def test_patches_with_equal_labels_share_ratio_and_phase() -> None:
    images = random_images(8, size=96) + random_images(4, size=120, seed=5)
    batch = sample_small_batch(images, ratios_per_batch=4, phases_per_ratio=5)
    members_by_label: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(batch.labels.tolist()):
        members_by_label[label].append(position)
    phase_by_label = {}
    for label, positions in members_by_label.items():
        ratios = {batch.ratios[position] for position in positions}
        assert len(ratios) == 1
        (ratio,) = ratios
        phases = set()
        for position in positions:
            source_size = images[int(batch.image_indices[position])].shape[-1]
            cropped = source_size - source_size % ratio.denominator
            period = interpolation_period(cropped, cropped * ratio.numerator // ratio.denominator)
            assert period == ratio.numerator
            phases.add(tuple((batch.offsets[position] % period).tolist()))
        assert len(phases) == 1
        # Positives always come from different images of the same group.
        assert len({int(batch.image_indices[position]) for position in positions}) == len(positions)
        phase_by_label[label] = (ratio, phases.pop())
    # Different labels are negatives: another ratio or another phase.
    assert len(set(phase_by_label.values())) == len(phase_by_label)


def test_offsets_avoid_clamped_borders_and_patches_match_rescaled_images() -> None:
    images = random_images(4, size=96)
    batch = sample_small_batch(images, ratios_per_batch=2, phases_per_ratio=9)
    for position in range(len(batch.labels)):
        ratio = batch.ratios[position]
        image = images[int(batch.image_indices[position])]
        rescaled = bilinear_rescale(image[None], ratio)[0]
        top, left = batch.offsets[position].tolist()
        period = ratio.numerator
        assert top >= period and left >= period
        assert top + SMALL_PATCH <= rescaled.shape[-2] - period
        assert left + SMALL_PATCH <= rescaled.shape[-1] - period
        expected = rescaled[:, top : top + SMALL_PATCH, left : left + SMALL_PATCH]
        assert torch.equal(batch.patches[position], expected)


def test_batch_is_reproducible_for_a_seed() -> None:
    images = random_images(6, size=96)
    first = sample_small_batch(images, seed=3)
    second = sample_small_batch(images, seed=3)
    other = sample_small_batch(images, seed=4)
    assert torch.equal(first.patches, second.patches)
    assert torch.equal(first.labels, second.labels)
    assert torch.equal(first.offsets, second.offsets)
    assert first.ratios == second.ratios
    assert not (torch.equal(first.offsets, other.offsets) and first.ratios == other.ratios)


def test_default_patch_size_on_256_pixel_images() -> None:
    images = random_images(4, size=256)
    batch = sample_rescaling_contrast_batch(
        images, ratios_per_batch=2, phases_per_ratio=2, generator=torch.Generator().manual_seed(0)
    )
    assert batch.patches.shape == (8, 3, 128, 128)
    assert torch.bincount(batch.labels).tolist() == [2, 2, 2, 2]


def test_too_small_images_name_the_needed_size() -> None:
    needed = max(minimum_source_size(ratio, SMALL_PATCH) for ratio in DEFAULT_RESCALE_RATIOS)
    images = random_images(4, size=96)
    images[2] = images[2][:, : needed - 1, :]
    with pytest.raises(ValueError, match=f"at least {needed}x{needed}"):
        sample_small_batch(images, ratios_per_batch=2)
    sample_small_batch(random_images(4, size=needed), ratios_per_batch=2, phases_per_ratio=9)


def test_groups_of_one_image_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        sample_small_batch(random_images(5, size=96), ratios_per_batch=3)


def test_too_many_phases_or_ratios_are_rejected() -> None:
    images = random_images(4, size=96)
    with pytest.raises(ValueError, match="phases"):
        sample_small_batch(images, ratios_per_batch=2, phases_per_ratio=10)
    with pytest.raises(ValueError, match="candidate ratios"):
        sample_small_batch(images, ratios_per_batch=2, ratios=[Fraction(3, 2)])
