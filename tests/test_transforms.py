"""Tests for aigi.data.transforms: codecs, crop/pad, training augmentation, eval protocols."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from aigi.data.transforms import (
    PROTOCOLS,
    CodecResizeAugment,
    center_crop_or_pad,
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
