"""Tests for aigi.data.transforms: codecs, crop/pad, training augmentation, eval protocols.

The robustness protocols are tested in test_protocols.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from aigi.data.transforms import (
    AUGMENT_PRESETS,
    PROTOCOLS,
    CodecResizeAugment,
    TrainingAugment,
    center_crop_or_pad,
    gaussian_blur,
    get_protocol,
    jpeg_reencode,
    webp_reencode,
)


def noise_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels, mode=mode)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


@pytest.mark.parametrize("reencode", [jpeg_reencode, webp_reencode])
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_reencode_round_trip_keeps_size_and_returns_rgb(reencode, mode: str) -> None:
    original = noise_image(40, 24, mode=mode)
    result = reencode(original, 70)
    assert result.size == (40, 24)
    assert result.mode == "RGB"
    assert not np.array_equal(pixels(result), pixels(original.convert("RGB")))


def test_lower_jpeg_quality_loses_more() -> None:
    original = noise_image(64, 64)
    error_q95 = np.abs(pixels(jpeg_reencode(original, 95)) - pixels(original)).mean()
    error_q30 = np.abs(pixels(jpeg_reencode(original, 30)) - pixels(original)).mean()
    assert error_q30 > error_q95


@pytest.mark.parametrize(
    ("width", "height"), [(300, 200), (400, 400), (100, 50), (5, 300), (1, 1), (256, 256)]
)
def test_center_crop_or_pad_copies_the_centre_without_resampling(width: int, height: int) -> None:
    original = noise_image(width, height)
    size = 256
    result = center_crop_or_pad(original, size)
    assert result.size == (size, size)
    assert result.mode == "RGB"
    # The input's kept window lands at the centre of the output, pixel for pixel.
    kept_w, kept_h = min(width, size), min(height, size)
    src_x, src_y = (width - kept_w) // 2, (height - kept_h) // 2
    dst_x, dst_y = (size - kept_w) // 2, (size - kept_h) // 2
    np.testing.assert_array_equal(
        pixels(result)[dst_y:dst_y + kept_h, dst_x:dst_x + kept_w],
        pixels(original)[src_y:src_y + kept_h, src_x:src_x + kept_w],
    )


def test_center_crop_or_pad_reflects_into_the_padding() -> None:
    original = noise_image(10, 256)
    result = pixels(center_crop_or_pad(original, 256))
    left = (256 - 10) // 2
    # Reflection (not edge repetition): the column left of the image mirrors its second column.
    np.testing.assert_array_equal(result[:, left - 1], pixels(original)[:, 1])
    # Every output pixel is one of the input's columns.
    input_columns = {column.tobytes() for column in pixels(original).transpose(1, 0, 2)}
    assert all(column.tobytes() in input_columns for column in result.transpose(1, 0, 2))


def test_center_crop_or_pad_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError, match="size"):
        center_crop_or_pad(noise_image(8, 8), 0)


def test_codec_resize_augment_is_reproducible_and_rgb() -> None:
    augment = CodecResizeAugment(p_resize=0.5)
    original = noise_image(64, 48, mode="RGBA")
    first = [augment(original, random.Random(seed)) for seed in range(8)]
    second = [augment(original, random.Random(seed)) for seed in range(8)]
    for a, b in zip(first, second, strict=True):
        assert a.mode == "RGB"
        assert a.size == b.size
        np.testing.assert_array_equal(pixels(a), pixels(b))
    seeded = augment(original, 3)
    np.testing.assert_array_equal(pixels(seeded), pixels(first[3]))


def test_codec_resize_augment_resizes_within_range() -> None:
    augment = CodecResizeAugment(p_resize=1.0, scale_range=(0.5, 1.5))
    sizes = {augment(noise_image(100, 80), random.Random(seed)).size for seed in range(12)}
    assert len(sizes) > 1
    assert all(50 <= width <= 150 and 40 <= height <= 120 for width, height in sizes)


def test_codec_resize_augment_lossless_branch_keeps_pixels() -> None:
    augment = CodecResizeAugment(p_resize=0.0, p_lossless=1.0)
    original = noise_image(32, 32)
    np.testing.assert_array_equal(pixels(augment(original, random.Random(0))), pixels(original))


def test_codec_resize_augment_always_lossy_without_lossless_branch() -> None:
    augment = CodecResizeAugment(p_resize=0.0, p_lossless=0.0)
    original = noise_image(32, 32)
    for seed in range(6):
        assert not np.array_equal(pixels(augment(original, random.Random(seed))), pixels(original))


@pytest.mark.parametrize(
    "kwargs",
    [{"p_resize": 1.5}, {"p_lossless": -0.1}, {"scale_range": (0.0, 1.0)},
     {"jpeg_quality_range": (90, 60)}, {"webp_quality_range": (0, 100)}],
)
def test_codec_resize_augment_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CodecResizeAugment(**kwargs)


def test_normalized_protocol_is_256_and_jpeg_compressed() -> None:
    original = noise_image(300, 280)
    result = get_protocol("normalized")(original)
    assert result.size == (256, 256)
    assert result.mode == "RGB"
    cropped = center_crop_or_pad(original, 256)
    assert not np.array_equal(pixels(result), pixels(cropped))
    np.testing.assert_array_equal(pixels(result), pixels(jpeg_reencode(cropped, 95)))


def test_raw_protocol_is_identity() -> None:
    original = noise_image(20, 30)
    assert get_protocol("raw")(original) is original


def test_get_protocol_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError) as error:
        get_protocol("nope")
    for name in PROTOCOLS:
        assert name in str(error.value)


def smooth_noise_image(size: int = 64, seed: int = 0) -> Image.Image:
    """Mid-range values (no clipping by noise or jitter) with both smooth and fine structure."""
    coarse = np.random.default_rng(seed).integers(60, 196, (size // 4, size // 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)


def high_frequency_energy(img: Image.Image) -> float:
    values = pixels(img).astype(np.float64)
    return float(np.mean(np.diff(values, axis=0) ** 2) + np.mean(np.diff(values, axis=1) ** 2))


def only(operation: str, **settings) -> TrainingAugment:
    """A TrainingAugment that always applies `operation` and nothing else."""
    return TrainingAugment(**{f"p_{operation}": 1.0}, **settings)


def test_training_augment_with_every_probability_zero_is_the_identity_and_draws_nothing() -> None:
    original = noise_image(40, 30, mode="RGBA")
    rng = random.Random(5)
    state = rng.getstate()
    result = TrainingAugment()(original, rng)
    np.testing.assert_array_equal(pixels(result), pixels(original.convert("RGB")))
    assert rng.getstate() == state


@pytest.mark.parametrize("operation", TrainingAugment.OPERATIONS)
def test_training_augment_probability_one_always_changes_the_image(operation: str) -> None:
    original = smooth_noise_image()
    for seed in range(4):
        assert not np.array_equal(pixels(only(operation)(original, seed)), pixels(original)), seed


def test_codec_preset_reproduces_the_codec_resize_augment_of_earlier_runs() -> None:
    original = noise_image(64, 48)
    for seed in range(8):
        expected = CodecResizeAugment(p_lossless=0.0)(original, random.Random(seed))
        np.testing.assert_array_equal(pixels(AUGMENT_PRESETS["codec"](original, random.Random(seed))), pixels(expected))


def test_flip_probability_is_respected() -> None:
    original = noise_image(16, 16)
    mirrored = pixels(original)[:, ::-1]
    flipped = [np.array_equal(pixels(TrainingAugment(p_flip=0.5)(original, seed)), mirrored) for seed in range(400)]
    assert 0.4 < np.mean(flipped) < 0.6
    np.testing.assert_array_equal(pixels(only("flip")(original, 0)), mirrored)


def test_random_resized_crop_gives_the_crop_size_and_only_when_enabled() -> None:
    original = noise_image(100, 70)
    sizes = {only("random_resized_crop", resized_crop_size=32)(original, seed).size for seed in range(6)}
    assert sizes == {(32, 32)}
    assert TrainingAugment(p_random_resized_crop=0.0, resized_crop_size=32)(original, 0).size == (100, 70)


def test_random_resized_crop_of_the_whole_image_at_its_own_size_keeps_it() -> None:
    original = noise_image(48, 48)
    augment = only("random_resized_crop", resized_crop_size=48, resized_crop_scale=(1.0, 1.0),
                   resized_crop_ratio=(1.0, 1.0))
    np.testing.assert_array_equal(pixels(augment(original, 0)), pixels(original))


def test_color_jitter_varies_brightness_and_keeps_the_size() -> None:
    original = smooth_noise_image()
    results = [only("color_jitter", brightness=0.5)(original, seed) for seed in range(6)]
    assert all(result.size == original.size for result in results)
    assert np.ptp([pixels(result).mean() for result in results]) > 5


def test_down_up_resize_keeps_the_size_and_loses_detail() -> None:
    original = noise_image(64, 48)
    result = only("down_up_resize", down_up_scale_range=(0.5, 0.5))(original, 0)
    assert result.size == original.size
    assert high_frequency_energy(result) < high_frequency_energy(original)


def test_jpeg_uses_a_quality_from_its_range() -> None:
    original = noise_image(32, 32)
    result = only("jpeg", jpeg_quality_range=(40, 40))(original, 0)
    np.testing.assert_array_equal(pixels(result), pixels(jpeg_reencode(original, 40)))


def test_blur_uses_its_kernel_and_sigma_range() -> None:
    original = noise_image(32, 32)
    result = only("blur", blur_sigma_range=(1.5, 1.5), blur_kernel_size=5)(original, 0)
    np.testing.assert_array_equal(pixels(result), pixels(gaussian_blur(original, 1.5, 5)))
    assert high_frequency_energy(result) < 0.5 * high_frequency_energy(original)


def test_noise_changes_pixels_by_about_its_sigma() -> None:
    original = smooth_noise_image(128)
    result = only("noise", noise_sigma_range=(8.0, 8.0))(original, 0)
    assert np.std(pixels(result) - pixels(original)) == pytest.approx(8.0, rel=0.1)


def test_fiser_preset_is_reproducible_per_seed() -> None:
    augment = AUGMENT_PRESETS["fiser"]
    original = noise_image(80, 60)
    first = [augment(original, seed) for seed in range(6)]
    for seed, result in enumerate(first):
        assert result.size == (augment.resized_crop_size,) * 2
        np.testing.assert_array_equal(pixels(augment(original, random.Random(seed))), pixels(result))
    assert len({pixels(result).tobytes() for result in first}) == len(first)


@pytest.mark.parametrize(
    "kwargs",
    [{"p_flip": 1.5}, {"p_noise": -0.1}, {"resized_crop_size": 0}, {"resized_crop_scale": (0.0, 1.0)},
     {"hue": 0.6}, {"brightness": -0.1}, {"jpeg_quality_range": (0, 100)}, {"blur_kernel_size": 4},
     {"blur_sigma_range": (2.0, 1.0)}, {"noise_sigma_range": (-1.0, 1.0)}, {"down_up_scale_range": (0.0, 1.0)}],
)
def test_training_augment_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TrainingAugment(**kwargs)
