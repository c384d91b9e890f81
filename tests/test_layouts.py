"""Every layout reader on a tiny generated tree of that layout, and auto-detection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aigi.data.layouts import LAYOUT_NAMES, detect_layout, iter_detection_records, load_detection_records
from aigi.data.records import DetectionRecord

from helpers import write_image


def summary(records: list[DetectionRecord]) -> list[tuple]:
    return [(record.id, record.label, record.generator, record.source, record.split) for record in records]


def test_real_fake_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "real" / "b.jpg", 1)
    write_image(tmp_path / "real" / "a.jpg", 2)
    write_image(tmp_path / "fake" / "gan" / "c.png", 3)
    write_image(tmp_path / "fake" / "d.png", 4)
    (tmp_path / "fake" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "real" / ".hidden.png", 5)
    records = load_detection_records(tmp_path)
    assert summary(records) == [
        ("real/a.jpg", 0, "real", "", None),
        ("real/b.jpg", 0, "real", "", None),
        ("fake/d.png", 1, "fake", "", None),
        ("fake/gan/c.png", 1, "gan", "", None),
    ]
    assert all(Path(record.image).is_file() for record in records)


def test_real_fake_layout_under_split_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "real" / "a.jpg", 1)
    write_image(tmp_path / "train" / "fake" / "sd" / "b.png", 2)
    write_image(tmp_path / "test" / "real" / "c.jpg", 3)
    assert detect_layout(tmp_path) == "folders"
    assert summary(load_detection_records(tmp_path, split="test")) == [("test/real/c.jpg", 0, "real", "", "test")]
    assert [record.split for record in load_detection_records(tmp_path)] == ["test", "train", "train"]


def test_class_folder_layout_at_root(tmp_path: Path) -> None:
    write_image(tmp_path / "0_real" / "x.png", 1)
    write_image(tmp_path / "1_fake" / "y.png", 2)
    assert summary(load_detection_records(tmp_path)) == [
        ("0_real/x.png", 0, "real", "", None),
        ("1_fake/y.png", 1, "fake", "", None),
    ]


def test_forensynths_train_and_test_layout(tmp_path: Path) -> None:
    # Training: ProGAN images filed under LSUN categories; test: <generator>/[<category>/]{0_real,1_fake}.
    write_image(tmp_path / "train" / "airplane" / "0_real" / "r.png", 1)
    write_image(tmp_path / "train" / "airplane" / "1_fake" / "f.png", 2)
    write_image(tmp_path / "test" / "biggan" / "0_real" / "r.png", 3)
    write_image(tmp_path / "test" / "biggan" / "1_fake" / "f.png", 4)
    write_image(tmp_path / "test" / "stylegan" / "bedroom" / "1_fake" / "f.png", 5)
    assert detect_layout(tmp_path) == "forensynths"
    assert summary(load_detection_records(tmp_path)) == [
        ("test/biggan/0_real/r.png", 0, "real", "biggan", "test"),
        ("test/biggan/1_fake/f.png", 1, "biggan", "biggan", "test"),
        ("test/stylegan/bedroom/1_fake/f.png", 1, "stylegan", "stylegan/bedroom", "test"),
        ("train/airplane/0_real/r.png", 0, "real", "airplane", "train"),
        ("train/airplane/1_fake/f.png", 1, "progan", "airplane", "train"),
    ]


@pytest.mark.parametrize("layout", ["aigcdetectbenchmark", "aigibench"])
def test_aigc_benchmarks_use_the_method_folder_as_generator(tmp_path: Path, layout: str) -> None:
    write_image(tmp_path / "SDXL" / "0_real" / "r.png", 1)
    write_image(tmp_path / "SDXL" / "1_fake" / "f.png", 2)
    write_image(tmp_path / "Midjourney" / "1_fake" / "f.png", 3)
    assert [(r.label, r.generator) for r in load_detection_records(tmp_path, layout=layout)] == [
        (1, "Midjourney"), (0, "real"), (1, "SDXL")
    ]


def test_chameleon_fakes_are_labelled_chameleon(tmp_path: Path) -> None:
    write_image(tmp_path / "test" / "0_real" / "r.jpg", 1)
    write_image(tmp_path / "test" / "1_fake" / "f.png", 2)
    assert summary(load_detection_records(tmp_path, layout="chameleon")) == [
        ("test/0_real/r.jpg", 0, "real", "", "test"),
        ("test/1_fake/f.png", 1, "chameleon", "", "test"),
    ]


def test_genimage_layout(tmp_path: Path) -> None:
    root = tmp_path / "Stable Diffusion V1.4" / "imagenet_ai_0419_sdv4"
    write_image(root / "train" / "ai" / "a.png", 1)
    write_image(root / "train" / "nature" / "n.JPEG", 2)
    write_image(root / "val" / "ai" / "b.png", 3)
    write_image(tmp_path / "ADM" / "imagenet_ai_0508_adm" / "val" / "nature" / "m.JPEG", 4)
    assert detect_layout(tmp_path) == "genimage"
    assert summary(load_detection_records(tmp_path)) == [
        ("ADM/imagenet_ai_0508_adm/val/nature/m.JPEG", 0, "real", "ADM/imagenet_ai_0508_adm", "val"),
        ("Stable Diffusion V1.4/imagenet_ai_0419_sdv4/train/ai/a.png", 1, "Stable Diffusion V1.4",
         "Stable Diffusion V1.4/imagenet_ai_0419_sdv4", "train"),
        ("Stable Diffusion V1.4/imagenet_ai_0419_sdv4/train/nature/n.JPEG", 0, "real",
         "Stable Diffusion V1.4/imagenet_ai_0419_sdv4", "train"),
        ("Stable Diffusion V1.4/imagenet_ai_0419_sdv4/val/ai/b.png", 1, "Stable Diffusion V1.4",
         "Stable Diffusion V1.4/imagenet_ai_0419_sdv4", "val"),
    ]


def test_wildfake_layout(tmp_path: Path) -> None:
    images = tmp_path / "Images"
    write_image(images / "Real" / "coco" / "r.jpg", 1)
    write_image(images / "GAN_based" / "StyleGAN" / "stylegan2" / "g.png", 2)
    write_image(images / "Diffusion_based" / "SD" / "sd1.5" / "d.png", 3)
    assert detect_layout(tmp_path) == "wildfake"
    assert summary(load_detection_records(tmp_path)) == [
        ("Images/Diffusion_based/SD/sd1.5/d.png", 1, "sd1.5", "Diffusion_based/SD/sd1.5", None),
        ("Images/GAN_based/StyleGAN/stylegan2/g.png", 1, "stylegan2", "GAN_based/StyleGAN/stylegan2", None),
        ("Images/Real/coco/r.jpg", 0, "real", "Real/coco", None),
    ]


def test_community_forensics_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "ffhq" / "real" / "r.png", 1)
    write_image(tmp_path / "stylegan3" / "fake" / "f.png", 2)
    assert detect_layout(tmp_path) == "community-forensics"
    assert summary(load_detection_records(tmp_path)) == [
        ("ffhq/real/r.png", 0, "real", "ffhq", None),
        ("stylegan3/fake/f.png", 1, "stylegan3", "stylegan3", None),
    ]


def test_community_forensics_parquet_streams_in_batches(tmp_path: Path) -> None:
    images = [write_image(tmp_path / "src" / f"{index}.png", index).read_bytes() for index in range(70)]
    table = pa.table({
        "image_name": [f"{index}.png" for index in range(70)],
        "image_data": images,
        "label": [index % 2 for index in range(70)],
        "model_name": ["real-dataset" if index % 2 == 0 else "sd-xl" for index in range(70)],
    })
    shard = tmp_path / "cf" / "data" / "systematic" / "part-0.parquet"
    shard.parent.mkdir(parents=True)
    pq.write_table(table, shard, row_group_size=16)
    assert detect_layout(tmp_path / "cf") == "parquet"
    records = iter_detection_records(tmp_path / "cf")
    first = next(records)
    assert (first.id, first.label, first.generator, first.source) == (
        "data/systematic/part-0.parquet#0", 0, "real", "data/systematic")
    assert first.image == images[0]
    rest = list(records)
    assert len(rest) == 69 and rest[-1].generator == "sd-xl" and rest[-2].generator == "real"


def test_manifest_layout_with_empty_generator_for_reals(tmp_path: Path) -> None:
    write_image(tmp_path / "real" / "r.jpg", 1)
    write_image(tmp_path / "fake" / "sd" / "f.png", 2)
    write_image(tmp_path / "x" / "g.png", 3)
    (tmp_path / "manifest.csv").write_text(
        "path,label,generator,source,split\n"
        "real/r.jpg,real,,\"camera, 2020\",train\n"
        "fake/sd/f.png,fake,sd,web,test\n"
        "x/g.png,1,,,\n"
    )
    expected = [
        ("real/r.jpg", 0, "real", "camera, 2020", "train"),
        ("fake/sd/f.png", 1, "sd", "web", "test"),
        ("x/g.png", 1, "fake", "", None),
    ]
    # The manifest wins over the real/ + fake/ folders next to it.
    assert summary(load_detection_records(tmp_path)) == expected
    assert summary(load_detection_records(tmp_path / "manifest.csv")) == expected


def test_jsonl_manifest_including_fiser_src_rows(tmp_path: Path) -> None:
    write_image(tmp_path / "n.jpg", 1)
    write_image(tmp_path / "m.png", 2)
    write_image(tmp_path / "o.png", 3)
    rows = [{"path": "n.jpg", "src": "nature"}, {"path": "m.png", "src": "Midjourney"},
            {"path": "o.png", "label": "fake", "generator": "dalle3"}]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    assert [(r.label, r.generator) for r in load_detection_records(tmp_path)] == [
        (0, "real"), (1, "Midjourney"), (1, "dalle3")
    ]


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
    assert summary(records) == [("row-0", 0, "real", "", None), ("row-1", 1, "gan", "", None),
                                ("row-2", 1, "gan", "", None)]
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
    for hint in ("save_to_disk", "manifest.csv", "real/", "0_real", "GenImage", "WildFake", "Parquet"):
        assert hint in message
    with pytest.raises(ValueError, match="unknown layout"):
        load_detection_records(tmp_path, layout="imagenet")
    assert "genimage" in LAYOUT_NAMES


def test_empty_known_layout_or_split_fails(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_detection_records(tmp_path)
    write_image(tmp_path / "real" / "a.png")
    with pytest.raises(ValueError, match="split 'test'"):
        load_detection_records(tmp_path, split="test")
