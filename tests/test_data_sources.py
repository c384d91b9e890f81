"""Tests for aigi.data.sources and the dataset scripts, on synthetic images in tmp_path."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from collections import Counter
from pathlib import Path
from types import ModuleType

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from aigi.data.sources import (
    DetectionDataset,
    DetectionRecord,
    load_detection_records,
    records_to_dataset,
    split_records,
)
from aigi.image_io import ImageLoadError

SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "datasets_scripts"


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)  # quality is ignored by lossless formats
    return path


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(records: list[DetectionRecord]) -> list[tuple[str, int, str, str]]:
    return [(record.id, record.label, record.generator, record.source) for record in records]


@pytest.fixture
def real_fake_tree(tmp_path: Path) -> Path:
    root = tmp_path / "real_fake"
    write_image(root / "real" / "b.jpg", 1)
    write_image(root / "real" / "a.jpg", 2)
    write_image(root / "fake" / "gan" / "c.png", 3)
    write_image(root / "fake" / "d.png", 4)
    (root / "fake" / "notes.txt").write_text("not an image")
    return root


def test_real_fake_layout(real_fake_tree: Path) -> None:
    records = load_detection_records(real_fake_tree)
    assert summary(records) == [
        ("real/a.jpg", 0, "real", ""),
        ("real/b.jpg", 0, "real", ""),
        ("fake/d.png", 1, "fake", ""),
        ("fake/gan/c.png", 1, "gan", ""),
    ]
    assert all(Path(record.image).is_file() for record in records)


def test_class_folder_layout_at_root(tmp_path: Path) -> None:
    write_image(tmp_path / "0_real" / "x.png", 1)
    write_image(tmp_path / "1_fake" / "y.png", 2)
    assert summary(load_detection_records(tmp_path)) == [
        ("0_real/x.png", 0, "real", ""),
        ("1_fake/y.png", 1, "fake", ""),
    ]


def test_forensynths_layout_uses_top_folder_as_generator(tmp_path: Path) -> None:
    write_image(tmp_path / "progan" / "airplane" / "0_real" / "r.png", 1)
    write_image(tmp_path / "progan" / "airplane" / "1_fake" / "f.png", 2)
    write_image(tmp_path / "biggan" / "0_real" / "r.png", 3)
    write_image(tmp_path / "biggan" / "1_fake" / "f.png", 4)
    assert summary(load_detection_records(tmp_path)) == [
        ("biggan/0_real/r.png", 0, "real", "biggan"),
        ("biggan/1_fake/f.png", 1, "biggan", "biggan"),
        ("progan/airplane/0_real/r.png", 0, "real", "progan/airplane"),
        ("progan/airplane/1_fake/f.png", 1, "progan", "progan/airplane"),
    ]


def test_manifest_layout_with_empty_generator_for_reals(tmp_path: Path) -> None:
    write_image(tmp_path / "real" / "r.jpg", 1)
    write_image(tmp_path / "fake" / "sd" / "f.png", 2)
    write_image(tmp_path / "x" / "g.png", 3)
    (tmp_path / "manifest.csv").write_text(
        "path,label,generator,source,width\n"
        "real/r.jpg,real,,\"camera, 2020\",32\n"
        "fake/sd/f.png,fake,sd,web,32\n"
        "x/g.png,1,,,32\n"
    )
    expected = [
        ("real/r.jpg", 0, "real", "camera, 2020"),
        ("fake/sd/f.png", 1, "sd", "web"),
        ("x/g.png", 1, "fake", ""),
    ]
    # The manifest wins over the real/ + fake/ folders next to it.
    assert summary(load_detection_records(tmp_path)) == expected
    assert summary(load_detection_records(tmp_path / "manifest.csv")) == expected


def test_manifest_with_missing_image_or_bad_label_fails(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,label\nmissing.png,fake\n")
    with pytest.raises(ValueError, match="missing.png"):
        load_detection_records(tmp_path)
    write_image(tmp_path / "a.png")
    (tmp_path / "manifest.csv").write_text("path,label\na.png,maybe\n")
    with pytest.raises(ValueError, match="maybe"):
        load_detection_records(tmp_path)


def save_hf_dataset(path: Path, image_dir: Path, label_names: list[str], names: list[str],
                    with_generator: bool = True) -> None:
    columns = {
        "image": [str(write_image(image_dir / f"{index}.png", index)) for index in range(len(names))],
        "label": [label_names.index(name) for name in names],
    }
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=label_names)}
    if with_generator:
        columns["generator"] = ["" if name == "real" else "gan" for name in names]
        features["generator"] = datasets.Value("string")
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).save_to_disk(str(path))


@pytest.mark.parametrize("label_names", [["real", "fake"], ["fake", "real"]])
def test_hf_dataset_layout_maps_labels_by_name(tmp_path: Path, label_names: list[str]) -> None:
    save_hf_dataset(tmp_path / "ds", tmp_path / "images", label_names, ["real", "fake", "fake"])
    shutil.rmtree(tmp_path / "images")  # save_to_disk embedded the bytes
    records = load_detection_records(tmp_path / "ds")
    assert summary(records) == [("row-0", 0, "real", ""), ("row-1", 1, "gan", ""), ("row-2", 1, "gan", "")]
    assert all(isinstance(record.image, bytes) for record in records)


def test_hf_dataset_without_generator_column(tmp_path: Path) -> None:
    save_hf_dataset(tmp_path / "ds", tmp_path / "images", ["fake", "real"], ["fake", "real"],
                    with_generator=False)
    assert [(r.label, r.generator) for r in load_detection_records(tmp_path / "ds")] == [
        (1, "fake"), (0, "real")
    ]


def test_hf_dataset_dict_prefers_test_split(tmp_path: Path) -> None:
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["real", "fake"])})
    image = str(write_image(tmp_path / "a.png"))
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"image": [image] * 3, "label": [0, 1, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"image": [image], "label": [1]}, features=features),
    }).save_to_disk(str(tmp_path / "dd"))
    assert len(load_detection_records(tmp_path / "dd")) == 1
    assert len(load_detection_records(tmp_path / "dd", split="train")) == 3
    with pytest.raises(ValueError, match="available"):
        load_detection_records(tmp_path / "dd", split="validation")


def test_unknown_layout_lists_supported_layouts(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png")
    with pytest.raises(ValueError) as error:
        load_detection_records(tmp_path)
    message = str(error.value)
    assert "unrecognised layout" in message
    for hint in ("save_to_disk", "manifest.csv", "real/", "0_real/"):
        assert hint in message


def test_empty_known_layout_fails(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_detection_records(tmp_path)


def make_records(counts: dict[tuple[int, str], int]) -> list[DetectionRecord]:
    return [
        DetectionRecord(image=f"{generator}/{index}.png", label=label, generator=generator,
                        id=f"{generator}/{index}.png")
        for (label, generator), count in counts.items()
        for index in range(count)
    ]


def test_split_records_is_stratified_disjoint_and_complete() -> None:
    counts = {(0, "real"): 100, (1, "sd"): 50, (1, "gan"): 10, (1, "tiny"): 1}
    records = make_records(counts)
    splits = split_records(records, test_fraction=0.2, val_fraction=0.1, seed=0)
    assert set(splits) == {"train", "val", "test"}
    ids = {name: [record.id for record in split] for name, split in splits.items()}
    assert sorted(sum(ids.values(), [])) == sorted(record.id for record in records)
    per_split = {name: Counter(record.generator for record in split) for name, split in splits.items()}
    assert per_split["test"] == {"real": 20, "sd": 10, "gan": 2}
    assert per_split["val"] == {"real": 10, "sd": 5, "gan": 1}
    assert per_split["train"] == {"real": 70, "sd": 35, "gan": 7, "tiny": 1}


def test_split_records_is_deterministic_and_order_independent() -> None:
    records = make_records({(0, "real"): 40, (1, "sd"): 40})
    first = split_records(records, test_fraction=0.25, seed=3)
    again = split_records(list(reversed(records)), test_fraction=0.25, seed=3)
    other_seed = split_records(records, test_fraction=0.25, seed=4)
    assert {r.id for r in first["test"]} == {r.id for r in again["test"]}
    assert {r.id for r in first["test"]} != {r.id for r in other_seed["test"]}
    assert first["val"] == []
    assert [r.id for r in first["train"]] == [r.id for r in records if r not in first["test"]]


def test_split_records_rejects_bad_input() -> None:
    records = make_records({(0, "real"): 4})
    with pytest.raises(ValueError, match="fractions"):
        split_records(records, test_fraction=0.8, val_fraction=0.3)
    with pytest.raises(ValueError, match="unique"):
        split_records(records + records[:1], test_fraction=0.5)


def stub_processor(images: Image.Image, return_tensors: str) -> dict[str, torch.Tensor]:
    assert return_tensors == "pt"
    array = np.asarray(images, dtype=np.float32) / 255.0
    return {"pixel_values": torch.from_numpy(array).permute(2, 0, 1)[None]}


def test_detection_dataset_items(real_fake_tree: Path) -> None:
    records = load_detection_records(real_fake_tree)
    dataset = DetectionDataset(records, stub_processor, transform=lambda image: image.resize((16, 16)))
    assert len(dataset) == 4
    item = dataset[2]
    assert item["labels"] == 1
    assert isinstance(item["pixel_values"], torch.Tensor)
    assert item["pixel_values"].shape == (3, 16, 16)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["labels"].tolist() == [0, 0, 1, 1]


def test_detection_dataset_load_error_names_the_record(tmp_path: Path) -> None:
    broken = DetectionRecord(image=b"not an image", label=1, generator="gan", id="row-7")
    with pytest.raises(ImageLoadError, match="row-7"):
        DetectionDataset([broken], stub_processor)[0]


def test_records_to_dataset_raw_keeps_original_bytes(real_fake_tree: Path) -> None:
    records = load_detection_records(real_fake_tree)
    dataset = records_to_dataset(records, progress=False)
    stored = dataset.cast_column("image", datasets.Image(decode=False))["image"]
    assert [entry["bytes"] for entry in stored] == [Path(r.image).read_bytes() for r in records]
    assert [entry["path"] for entry in stored] == [r.id for r in records]
    assert list(dataset["orig_format"]) == ["JPEG", "JPEG", "PNG", "PNG"]


def test_build_detection_dataset_end_to_end(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for index in range(4):
        write_image(source / "real" / f"r{index}.jpg", index, size=(300, 200))
        write_image(source / "fake" / "gan" / f"f{index}.png", 10 + index, size=(128, 128))
    out = tmp_path / "built"
    build = load_script("build_detection_dataset")
    build.main([str(source), str(out), "--protocol", "normalized", "--split-test", "0.5"])
    shutil.rmtree(source)

    dataset_dict = datasets.load_from_disk(str(out))
    assert set(dataset_dict) == {"train", "test"}
    test_split = dataset_dict["test"]
    assert test_split.features["label"].names == ["real", "fake"]
    assert test_split.features["image"] == datasets.Image()
    assert {name: test_split.features[name].dtype for name in ("orig_width", "orig_height")} == {
        "orig_width": "int32", "orig_height": "int32"
    }
    assert sorted(test_split["label"]) == [0, 0, 1, 1]
    assert Counter(test_split["generator"]) == {"real": 2, "gan": 2}
    assert {(f, w, h) for f, w, h in zip(test_split["orig_format"], test_split["orig_width"],
                                         test_split["orig_height"])} == {("JPEG", 300, 200), ("PNG", 128, 128)}
    image = test_split[0]["image"]
    assert image.format == "PNG" and image.size == (256, 256)

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other\ntask_categories:\n- image-classification\npretty_name:")
    assert "`normalized`" in card
    # The saved dataset is itself a readable source.
    assert [r.generator for r in load_detection_records(out, split="train")].count("gan") == 2


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
