"""End-to-end test of datasets_scripts/synthesize_generators.py at a tiny training budget."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from aigi.data.layouts import load_detection_records

SCRIPT = Path(__file__).resolve().parents[1] / "datasets_scripts" / "synthesize_generators.py"
IMAGES_PER_GENERATOR = 3
PHOTOS = 4
CROPS_PER_PHOTO = 2


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthesize_generators", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small smooth-gradient-plus-noise JPEG 'photos' of a few sizes."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for index, (width, height) in enumerate([(96, 80), (80, 80), (120, 90), (72, 100)][:PHOTOS]):
        ramp = np.linspace(0, 255, width)[None, :, None] * rng.uniform(0.3, 1.0, 3)
        noise = rng.normal(0, 20, (height, width, 3))
        pixels = np.clip(ramp + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{index}.jpg", quality=90)
    return folder


def build(script: ModuleType, real_dir: Path, out: Path, report_dir: Path) -> None:
    # One thread: torch is already loaded here with spinning OpenMP waits, which crawl when other
    # jobs share the cores.
    script.main([str(out), "--real-dir", str(real_dir), "--seed", "3", "--steps-scale", "1e-4",
                 "--images-per-generator", str(IMAGES_PER_GENERATOR), "--ddim-steps", "4",
                 "--real-crops-per-photo", str(CROPS_PER_PHOTO), "--threads", "1",
                 "--report-dir", str(report_dir)])


@pytest.fixture(scope="module")
def two_builds(script: ModuleType, real_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two builds with the same seed: (first output, second output, first report folder)."""
    root = tmp_path_factory.mktemp("builds")
    build(script, real_dir, root / "first", root / "first_report")
    build(script, real_dir, root / "second", root / "second_report")
    return root / "first", root / "second", root / "first_report"


def read_manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="", encoding="utf-8") as manifest_file:
        return list(csv.DictReader(manifest_file))


def test_layout_and_manifest(script: ModuleType, two_builds: tuple[Path, Path, Path]) -> None:
    out, _, _ = two_builds
    rows = read_manifest(out)
    assert list(rows[0]) == ["path", "label", "generator", "source"]
    generator_names = [spec.name for spec in script.GENERATOR_SPECS]
    assert len(generator_names) >= 6
    counts = Counter(row["generator"] for row in rows)
    assert counts == {"real": PHOTOS * CROPS_PER_PHOTO,
                      **{name: IMAGES_PER_GENERATOR for name in generator_names}}
    for row in rows:
        if row["generator"] == "real":
            assert (row["label"], row["source"]) == ("real", "aigi-local/real-crops")
            assert row["path"].startswith("real/")
        else:
            assert (row["label"], row["source"]) == ("fake", f"aigi-local/{row['generator']}")
            assert row["path"].startswith(f"fake/{row['generator']}/")
    on_disk = {path.relative_to(out).as_posix() for path in out.rglob("*.png")}
    assert on_disk == {row["path"] for row in rows}
    assert len(load_detection_records(out)) == len(rows)


def test_real_and_fake_share_format_and_size(two_builds: tuple[Path, Path, Path]) -> None:
    out, _, _ = two_builds
    for row in read_manifest(out):
        with Image.open(out / row["path"]) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (64, 64), "RGB")


def test_report(script: ModuleType, two_builds: tuple[Path, Path, Path]) -> None:
    _, _, report_dir = two_builds
    generator_names = [spec.name for spec in script.GENERATOR_SPECS]
    for name in [*generator_names, "combined_grid"]:
        with Image.open(report_dir / f"{name}.png") as grid:
            assert grid.format == "PNG"
    log = json.loads((report_dir / "build_log.json").read_text(encoding="utf-8"))
    assert (log["seed"], log["resolution"], log["real_images"]) == (3, 64, PHOTOS * CROPS_PER_PHOTO)
    assert (log["ddim_steps"], log["torch_threads"]) == (4, 1)
    assert {"torch_version", "total_wall_seconds"} <= set(log)
    assert list(log["generators"]) == generator_names
    for entry in log["generators"].values():
        assert entry["train_steps"] >= 1 and entry["sampling_parameters"] > 0
        assert {"architecture", "trained_parameters", "train_seconds", "sampling_seconds",
                "final_loss"} <= set(entry)
        assert all(np.isfinite(list(entry["final_loss"].values())))


def test_same_seed_gives_identical_images(two_builds: tuple[Path, Path, Path]) -> None:
    first, second, _ = two_builds
    paths = [row["path"] for row in read_manifest(first)]
    assert paths == [row["path"] for row in read_manifest(second)]
    differing = [path for path in paths
                 if (first / path).read_bytes() != (second / path).read_bytes()]
    assert differing == []


def test_refuses_to_overwrite_a_non_empty_folder(script: ModuleType, real_dir: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SystemExit):
        build(script, real_dir, tmp_path / "out", tmp_path / "report")
    assert (tmp_path / "out" / "keep.txt").exists()
