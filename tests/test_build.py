"""Dataset builds: schema, guards (duplicates, class bias), card, Parquet, streaming, and the dataset scripts."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections import Counter
from pathlib import Path
from types import ModuleType

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from aigi.data.build import DETECTION_FEATURES, build_detection_dataset, stream_detection_dataset
from aigi.data.guards import (
    ClassBiasReport,
    DuplicateFilter,
    ImageFileStats,
    estimate_jpeg_quality,
    pixel_hash,
)
from aigi.data.layouts import load_detection_records
from aigi.data.records import DetectionDataset, DetectionRecord
from aigi.image_io import ImageLoadError

from helpers import load_script, write_image

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "datasets_scripts"


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def noise_image(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def biased_tree(root: Path, count: int = 4, real_size=(300, 200), fake_size=(128, 128)) -> Path:
    """Real JPEGs and fake PNGs, by default of different sizes: the format and size bias of public data."""
    for index in range(count):
        write_image(root / "real" / f"r{index}.jpg", index, size=real_size)
        write_image(root / "fake" / "gan" / f"f{index}.png", 10 + index, size=fake_size)
    return root


# ------------------------------------------------------------------ guards

def test_pixel_hash_ignores_the_lossless_container() -> None:
    image = noise_image(0)
    as_png, as_bmp = (Image.open(io.BytesIO(encode(image, fmt))) for fmt in ("PNG", "BMP"))
    assert pixel_hash(as_png) == pixel_hash(as_bmp) == pixel_hash(image)
    changed = np.asarray(image).copy()
    changed[0, 0, 0] ^= 1
    assert pixel_hash(Image.fromarray(changed)) != pixel_hash(image)
    assert pixel_hash(image.crop((0, 0, 30, 40))) != pixel_hash(image.crop((0, 0, 40, 30)))


@pytest.mark.parametrize("quality", [30, 50, 75, 90, 95, 100])
def test_jpeg_quality_estimate(quality: int) -> None:
    with Image.open(io.BytesIO(encode(noise_image(1), "JPEG", quality=quality))) as image:
        assert estimate_jpeg_quality(image) == quality
    with Image.open(io.BytesIO(encode(noise_image(1), "PNG"))) as image:
        assert estimate_jpeg_quality(image) is None


def test_duplicate_filter_kinds() -> None:
    guard = DuplicateFilter()
    assert guard.admit("h1", record_id="a", split="train", label=0)
    assert not guard.admit("h1", record_id="b", split="train", label=0)
    assert not guard.admit("h1", record_id="c", split="test", label=0)
    assert not guard.admit("h1", record_id="d", split="test", label=1)
    assert guard.admit("h2", record_id="e", split="test", label=1)
    summary = guard.summary()
    assert summary["by_kind"] == {"across_splits": 1, "label_conflict": 1, "within_split": 1}
    assert [entry["id"] for entry in summary["entries"]] == ["b", "c", "d"]
    assert all(entry["duplicate_of"] == "a" for entry in summary["entries"])


def test_class_bias_report_warns_only_on_differing_classes() -> None:
    biased, fair = ClassBiasReport(), ClassBiasReport()
    for _ in range(10):
        biased.add(0, ImageFileStats("JPEG", 300, 200, 92))
        biased.add(1, ImageFileStats("PNG", 128, 128, None))
        fair.add(0, ImageFileStats("PNG", 256, 256, None))
        fair.add(1, ImageFileStats("PNG", 256, 256, None))
    assert biased.distances() == {"format": 1.0, "jpeg_quality": 1.0, "size": 1.0}
    assert len(biased.warnings()) == 3 and "real JPEG 100%" in biased.warnings()[0]
    assert fair.distances() == {"format": 0.0, "jpeg_quality": 0.0, "size": 0.0}
    assert fair.warnings() == [] and "No attribute differs" in fair.markdown()


# ------------------------------------------------------------------ builds

def read_report(out: Path) -> dict:
    return json.loads((out / "build_report.json").read_text())


def test_raw_build_warns_on_bias_and_normalized_build_does_not(tmp_path: Path) -> None:
    source = biased_tree(tmp_path / "src")
    raw = build_detection_dataset(source, tmp_path / "raw", progress=False)
    normalized = build_detection_dataset(source, tmp_path / "normalized", protocol="normalized", progress=False)
    raw_report, normalized_report = read_report(tmp_path / "raw"), read_report(tmp_path / "normalized")
    warned = {warning.split()[0] for warning in raw_report["stored_bias"]["warnings"]}
    assert warned == {"format", "jpeg_quality", "size"}
    # Real 300x200 and fake 128x128 originals: the fakes are padded to 256, and that stays visible.
    assert [warning.split()[0] for warning in normalized_report["stored_bias"]["warnings"]] == ["size"]
    assert normalized_report["stored_bias"]["histograms"]["size"] == {"real": {"256x200": 4}, "fake": {"128x128": 4}}
    large = biased_tree(tmp_path / "large", real_size=(400, 300), fake_size=(300, 400))
    build_detection_dataset(large, tmp_path / "fair", protocol="normalized", progress=False)
    assert read_report(tmp_path / "fair")["stored_bias"]["warnings"] == []
    assert len(normalized_report["original_bias"]["warnings"]) == 3
    card = (tmp_path / "fair" / "README.md").read_text()
    assert "> **Warning:** format differs" in card and "No attribute differs" in card
    # Raw keeps the original bytes; the protocol's output is stored losslessly.
    stored = raw["train"].cast_column("image", datasets.Image(decode=False))["image"]
    assert {entry["path"]: entry["bytes"] for entry in stored}["r0.jpg"] == (source / "real/r0.jpg").read_bytes()
    first = normalized["train"][0]["image"]
    assert first.format == "PNG" and first.size == (256, 256)


def test_build_is_well_typed_with_card_and_parquet(tmp_path: Path) -> None:
    source = biased_tree(tmp_path / "src")
    out = tmp_path / "built"
    built = build_detection_dataset(source, out, protocol="normalized", test_fraction=0.5, progress=False)
    assert set(built) == {"train", "test"}
    test_split = built["test"]
    assert test_split.features == DETECTION_FEATURES
    assert sorted(test_split["label"]) == [0, 0, 1, 1]
    assert Counter(test_split["generator"]) == {"real": 2, "gan": 2}
    assert {(f, w, h) for f, w, h in zip(test_split["orig_format"], test_split["orig_width"],
                                         test_split["orig_height"])} == {("JPEG", 300, 200), ("PNG", 128, 128)}
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "task_categories:\n- image-classification" in card
    assert "path: data/test-*" in card and "`normalized`" in card
    shards = sorted(path.name for path in (out / "data").iterdir())
    assert shards == ["test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    # The Parquet shards, read by the Hub's loader and by aigi, match the saved dataset.
    from_parquet = datasets.load_dataset("parquet", data_files={"test": str(out / "data" / shards[0])})["test"]
    assert from_parquet.features == DETECTION_FEATURES and from_parquet["generator"] == test_split["generator"]
    records = load_detection_records(out / "data", split="test")
    assert [(r.label, r.generator) for r in records] == list(zip(test_split["label"], test_split["generator"]))
    assert load_detection_records(out, split="train")[0].image == built["train"].cast_column(
        "image", datasets.Image(decode=False))[0]["image"]["bytes"]


def test_build_keeps_source_splits_and_drops_duplicates_across_them(tmp_path: Path) -> None:
    source = tmp_path / "forensynths"
    for split in ("train", "test"):
        for index in range(3):
            write_image(source / split / "gan" / "0_real" / f"r{index}.png", index)
            write_image(source / split / "gan" / "1_fake" / f"f{index}.png", 100 + index)
    write_image(source / "train" / "gan" / "1_fake" / "real_copy.png", 0)  # same pixels as a real image
    built = build_detection_dataset(source, tmp_path / "out", progress=False)
    report = read_report(tmp_path / "out")
    # test/ repeats train/ exactly; test is built first (sorted walk), so train's copies are the ones dropped.
    assert report["duplicates"]["by_kind"] == {"across_splits": 6, "label_conflict": 1}
    assert {name: len(split) for name, split in built.items()} == {"test": 6}
    kept = build_detection_dataset(source, tmp_path / "kept", deduplicate=False, progress=False)
    assert {name: len(split) for name, split in kept.items()} == {"train": 7, "test": 6}
    assert read_report(tmp_path / "kept")["duplicates"] is None


def test_new_splits_never_share_a_picture(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for index in range(10):
        write_image(source / "real" / f"r{index}.png", index % 5)  # every real picture twice
        write_image(source / "fake" / "gan" / f"f{index}.png", 100 + index)
    built = build_detection_dataset(source, tmp_path / "out", test_fraction=0.3, progress=False)
    hashes = {name: {pixel_hash(example["image"]) for example in split} for name, split in built.items()}
    assert not hashes["train"] & hashes["test"]
    assert sum(len(split) for split in built.values()) == 15
    assert read_report(tmp_path / "out")["duplicates"]["dropped"] == 5


def test_unreadable_files_are_skipped_and_listed(tmp_path: Path) -> None:
    source = biased_tree(tmp_path / "src", count=2)
    (source / "fake" / "gan" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (source / "real" / "empty.jpg").write_bytes(b"")
    built = build_detection_dataset(source, tmp_path / "out", progress=False)
    assert len(built["train"]) == 4
    assert sorted(entry["id"] for entry in read_report(tmp_path / "out")["skipped"]) == [
        "fake/gan/broken.png", "real/empty.jpg"]
    with pytest.raises(FileExistsError):
        build_detection_dataset(source, tmp_path / "out", progress=False)


def test_stream_detection_dataset(tmp_path: Path) -> None:
    source = biased_tree(tmp_path / "src", count=2)
    (source / "real" / "empty.jpg").write_bytes(b"")
    streamed = stream_detection_dataset(source, protocol="normalized")
    assert isinstance(streamed, datasets.IterableDataset)
    examples = list(streamed)
    assert [example["label"] for example in examples] == [0, 0, 1, 1]
    assert all(example["image"].size == (256, 256) for example in examples)
    assert set(examples[0]) == set(DETECTION_FEATURES)


# ------------------------------------------------------------------ records dataset

def stub_processor(images: Image.Image, return_tensors: str) -> dict[str, torch.Tensor]:
    assert return_tensors == "pt"
    array = np.asarray(images, dtype=np.float32) / 255.0
    return {"pixel_values": torch.from_numpy(array).permute(2, 0, 1)[None]}


def test_detection_dataset_items(tmp_path: Path) -> None:
    records = load_detection_records(biased_tree(tmp_path / "src", count=2))
    dataset = DetectionDataset(records, stub_processor, transform=lambda image: image.resize((16, 16)))
    assert len(dataset) == 4
    item = dataset[2]
    assert item["labels"] == 1 and item["pixel_values"].shape == (3, 16, 16)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["labels"].tolist() == [0, 0, 1, 1]


def test_detection_dataset_load_error_names_the_record() -> None:
    broken = DetectionRecord(image=b"not an image", label=1, generator="gan", id="row-7")
    with pytest.raises(ImageLoadError, match="row-7"):
        DetectionDataset([broken], stub_processor)[0]


# ------------------------------------------------------------------ scripts

def test_build_script_end_to_end(tmp_path: Path, capsys, monkeypatch) -> None:
    source = biased_tree(tmp_path / "src")
    pushed = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda self, repo, **kwargs: pushed.append(repo))
    build = load_script("build_detection_dataset")
    build.main([str(source), str(tmp_path / "out"), "--split-test", "0.5", "--split-by", "source"])
    output = capsys.readouterr().out
    assert "bias warning (stored images): format differs" in output and "train=4, test=4" in output
    assert pushed == []
    with pytest.raises(SystemExit, match="overwrite"):
        build.main([str(source), str(tmp_path / "out")])

    from huggingface_hub import DatasetCard
    monkeypatch.setattr(DatasetCard, "push_to_hub", lambda self, repo, **kwargs: pushed.append(f"card:{repo}"))
    large = biased_tree(tmp_path / "large", real_size=(400, 300), fake_size=(300, 400))
    build.main([str(large), str(tmp_path / "out"), "--overwrite", "--protocol", "normalized",
                "--push-to-hub", "me/data"])
    assert pushed == ["me/data", "card:me/data"]
    assert "bias warning (stored images)" not in capsys.readouterr().out


def test_split_external_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "external"
    for index in range(10):
        write_image(source / "real" / f"r{index}.jpg", index)
    for index in range(10):
        write_image(source / "fake" / "gan" / f"g{index}.png", 20 + index)
    out = tmp_path / "split"
    load_script("split_external").main([str(source), str(out)])

    summary_file = json.loads((out / "split.json").read_text())
    assert {name: len(ids) for name, ids in summary_file["ids"].items()} == {"train": 14, "val": 2, "test": 4}
    assert len(list((out / "test" / "real").iterdir())) == 2
    assert len(list((out / "test" / "fake" / "gan").iterdir())) == 2
    with (out / "train" / "manifest.csv").open() as manifest_file:
        assert len(list(csv.DictReader(manifest_file))) == 14
    assert Counter(r.label for r in load_detection_records(out / "val")) == {0: 1, 1: 1}


def test_split_external_real_crops_follow_their_photos_split(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for index in range(10):
        write_image(photos / "real" / f"r{index}.jpg", index)
        write_image(photos / "fake" / "gan" / f"g{index}.png", 20 + index)
    split_external = load_script("split_external")
    split_external.main([str(photos), str(tmp_path / "photo_split")])
    photo_ids = json.loads((tmp_path / "photo_split" / "split.json").read_text())["ids"]
    crops = tmp_path / "crops"
    for index in range(10):
        for crop in range(2):
            write_image(crops / "real" / f"r{index}_crop{crop}.png", 40 + 2 * index + crop)
        write_image(crops / "fake" / "vae" / f"v{index}.png", 80 + index)
    split_external.main([str(crops), str(tmp_path / "crop_split"), "--reals-follow",
                         str(tmp_path / "photo_split" / "split.json")])
    crop_ids = json.loads((tmp_path / "crop_split" / "split.json").read_text())["ids"]
    for name in ("train", "val", "test"):
        photo_stems = {Path(i).stem for i in photo_ids[name] if i.startswith("real/")}
        crop_stems = {Path(i).stem.rsplit("_crop", 1)[0] for i in crop_ids[name] if i.startswith("real/")}
        assert crop_stems == photo_stems
        assert sum(i.startswith("real/") for i in crop_ids[name]) == 2 * len(photo_stems)
    assert sum(i.startswith("fake/") for i in crop_ids["test"]) == 2  # fakes keep the stratified split
    orphan = tmp_path / "orphan"
    write_image(orphan / "real" / "unknown_crop0.png", 99)
    write_image(orphan / "fake" / "vae" / "v.png", 98)
    with pytest.raises(SystemExit, match="match no photo"):
        split_external.main([str(orphan), str(tmp_path / "orphan_split"), "--reals-follow",
                             str(tmp_path / "photo_split" / "split.json")])


def test_report_bias_script_reads_headers_and_flags_bias(tmp_path: Path, capsys) -> None:
    report_bias = load_script("report_bias")
    assert report_bias.main([str(biased_tree(tmp_path / "biased"))]) == 1
    assert "> **Warning:** format differs" in capsys.readouterr().out
    fair = tmp_path / "fair"
    for index in range(3):
        write_image(fair / "real" / f"r{index}.png", index)
        write_image(fair / "fake" / "gan" / f"f{index}.png", 10 + index)
    assert report_bias.main([str(fair), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_variation"] == {"format": 0.0, "jpeg_quality": 0.0, "size": 0.0}


def test_normalized_128_removes_the_padding_cue_of_small_fakes(tmp_path: Path) -> None:
    source = biased_tree(tmp_path / "src", real_size=(256, 256), fake_size=(128, 192))
    build_detection_dataset(source, tmp_path / "n256", protocol="normalized", progress=False)
    build_detection_dataset(source, tmp_path / "n128", protocol="normalized_128", progress=False)
    assert [w.split()[0] for w in read_report(tmp_path / "n256")["stored_bias"]["warnings"]] == ["size"]
    assert read_report(tmp_path / "n128")["stored_bias"]["warnings"] == []
    assert "size = 128" in (tmp_path / "n128" / "README.md").read_text()
