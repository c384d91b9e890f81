"""The robustness protocols: what each does to the pixels, determinism, `aigi evaluate --protocol robustness`."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from aigi.cli import main
from aigi.data.transforms import (
    PROTOCOLS,
    ROBUSTNESS_SUITE,
    RobustnessProtocol,
    get_protocol,
    jpeg_reencode,
    normalized_protocol,
    protocol_family,
)
from aigi.evaluation.runner import parse_protocols


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def photo_like(seed: int = 0, width: int = 300, height: int = 280) -> Image.Image:
    """Mid-range smooth colours plus fine texture, so that blur, JPEG and noise all show."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(60, 196, (height // 8, width // 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    texture = rng.integers(-20, 21, (height, width, 3))
    return Image.fromarray(np.clip(smooth + texture, 0, 255).astype(np.uint8))


def high_frequency_energy(img: Image.Image) -> float:
    values = pixels(img).astype(np.float64)
    return float(np.mean(np.diff(values, axis=0) ** 2) + np.mean(np.diff(values, axis=1) ** 2))


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return photo_like()


@pytest.fixture(scope="module")
def normalized(image) -> Image.Image:
    return normalized_protocol(image)


def test_suite_names_and_families() -> None:
    assert ROBUSTNESS_SUITE == (
        "jpeg_q95", "jpeg_q75", "jpeg_q50", "blur_s1", "blur_s2", "downscale_0.5", "downscale_0.75",
        "random_crop_192", "noise_s5",
    )
    for name in ROBUSTNESS_SUITE:
        protocol = get_protocol(name)
        assert isinstance(protocol, RobustnessProtocol) and protocol.name == name
        assert name.startswith(protocol_family(name))
        assert protocol.__doc__.startswith("`normalized`, then")
    assert protocol_family("normalized") == "normalized"


@pytest.mark.parametrize("name", ROBUSTNESS_SUITE)
def test_every_protocol_degrades_the_normalized_image(name, image, normalized) -> None:
    protocol = get_protocol(name)
    result = protocol(image)
    assert result.mode == "RGB"
    np.testing.assert_array_equal(pixels(result), pixels(protocol.degrade(normalized)))
    assert result.size != normalized.size or not np.array_equal(pixels(result), pixels(normalized))


def test_lower_jpeg_quality_loses_more(normalized, image) -> None:
    errors = [np.abs(pixels(get_protocol(f"jpeg_q{q}")(image)) - pixels(normalized)).mean() for q in (95, 75, 50)]
    assert 0 < errors[0] < errors[1] < errors[2]
    np.testing.assert_array_equal(pixels(get_protocol("jpeg_q50")(image)), pixels(jpeg_reencode(normalized, 50)))


def test_blur_removes_high_frequency_energy(image, normalized) -> None:
    energies = [high_frequency_energy(img) for img in (normalized, get_protocol("blur_s1")(image),
                                                      get_protocol("blur_s2")(image))]
    assert energies[1] < 0.5 * energies[0] and energies[2] < energies[1]
    # A blur moves no mass: the mean colour stays.
    assert pixels(get_protocol("blur_s2")(image)).mean() == pytest.approx(pixels(normalized).mean(), abs=0.5)


@pytest.mark.parametrize(("name", "side"), [("downscale_0.5", 128), ("downscale_0.75", 192)])
def test_downscale_size(name, side, image) -> None:
    assert get_protocol(name)(image).size == (side, side)


def test_random_crop_is_a_192_window_of_the_normalized_image() -> None:
    # Red = column, green = row, so a crop's values tell roughly where it was taken (JPEG blurs them a little).
    columns, rows = np.meshgrid(np.arange(256), np.arange(256))
    gradient = Image.fromarray(np.stack([columns, rows, np.full_like(rows, 128)], axis=-1).astype(np.uint8))
    crop = pixels(get_protocol("random_crop_192")(gradient))
    assert crop.shape == (192, 192, 3)
    normalized = pixels(normalized_protocol(gradient))
    left, top = round(np.median(crop[:, 0, 0])), round(np.median(crop[0, :, 1]))
    candidates = [(x, y) for x in range(left - 3, left + 4) for y in range(top - 3, top + 4)]
    offsets = [
        (x, y) for x, y in candidates
        if 0 <= x <= 64 and 0 <= y <= 64 and np.array_equal(normalized[y : y + 192, x : x + 192], crop)
    ]
    assert len(offsets) == 1


def test_noise_changes_pixels_by_about_sigma(image, normalized) -> None:
    difference = pixels(get_protocol("noise_s5")(image)) - pixels(normalized)
    assert np.std(difference) == pytest.approx(5.0, rel=0.1)
    assert abs(difference.mean()) < 0.2


@pytest.mark.parametrize("name", ["random_crop_192", "noise_s5"])
def test_random_protocols_are_deterministic_per_image(name, image) -> None:
    protocol = get_protocol(name)
    first = protocol(image)
    np.testing.assert_array_equal(pixels(protocol(image.copy())), pixels(first))
    np.testing.assert_array_equal(pixels(protocol(Image.fromarray(np.asarray(image)))), pixels(first))
    other_draws = {pixels(protocol(photo_like(seed))).tobytes() for seed in range(1, 4)}
    assert len(other_draws) == 3


def test_parse_protocols() -> None:
    assert parse_protocols("normalized") == ["normalized"]
    assert parse_protocols(" raw, jpeg_q50 ,raw,") == ["raw", "jpeg_q50"]
    assert parse_protocols("robustness") == ["normalized", *ROBUSTNESS_SUITE]
    assert parse_protocols("raw,robustness")[:2] == ["raw", "normalized"]
    with pytest.raises(ValueError, match="robustness") as error:
        parse_protocols("normalized,jpeg_q10")
    assert "jpeg_q10" in str(error.value) and all(name in str(error.value) for name in PROTOCOLS)
    with pytest.raises(ValueError):
        parse_protocols(",")


def test_evaluate_robustness_writes_every_protocol_and_treats_both_classes_alike(tiny_detector_dir, tmp_path):
    # Two reals, two fakes, and one image filed under both classes: it must score the same as either.
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    (data / "fake" / "gen_a").mkdir(parents=True)
    for index in range(3):
        photo_like(index, 64, 56).save(data / "real" / f"real_{index}.png")
        photo_like(10 + index, 56, 64).save(data / "fake" / "gen_a" / f"fake_{index}.png")
    shutil.copy(data / "real" / "real_0.png", data / "fake" / "gen_a" / "twin.png")
    output = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_detector_dir), "--data", str(data), "--output", str(output),
                 "--protocol", "robustness"]) == 0
    protocols = ["normalized", *ROBUSTNESS_SUITE]
    summary = json.loads((output / "robustness.json").read_text())
    assert list(summary) == protocols
    for protocol in protocols:
        folder = output / protocol
        for name in ("metrics.json", "metrics.md", "predictions.csv", "roc.png", "score_histogram.png"):
            assert (folder / name).stat().st_size > 0, (protocol, name)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert summary[protocol]["auroc"] == metrics["pooled"]["auroc"]
        assert summary[protocol]["per_generator_auroc"] == {"gen_a": metrics["per_generator"]["gen_a"]["auroc"]}
        with (folder / "predictions.csv").open() as handle:
            scores = {row["id"]: float(row["score"]) for row in csv.DictReader(handle)}
        assert scores["fake/gen_a/twin.png"] == scores["real/real_0.png"], protocol
    table = (output / "robustness.md").read_text()
    assert all(f"| {protocol} |" in table for protocol in protocols)
    assert (output / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (output / "metrics.json").exists()
