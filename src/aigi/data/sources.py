"""Detection data: labelled real/fake images from folders, manifests and saved HF datasets."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from PIL import Image
from tqdm.auto import tqdm

from aigi.data.transforms import get_protocol
from aigi.image_io import ImageLoadError, collect_image_files, load_image

REAL_LABEL = 0
FAKE_LABEL = 1
LABEL_NAMES = ("real", "fake")
REAL_GENERATOR = "real"
UNKNOWN_GENERATOR = "fake"
SUPPORTED_LAYOUTS = (
    "a Hugging Face dataset saved with save_to_disk (image + label columns)",
    "a folder with manifest.csv (columns path,label[,generator][,source])",
    "a folder with real/ and fake/[<generator>/] sub-folders",
    "a folder with 0_real/ and 1_fake/ sub-folders, at the root or under <generator>/ folders",
)

# "0_real"/"1_fake" are the names imagefolder gives a ForenSynths-style tree.
_LABELS_BY_NAME = {"real": REAL_LABEL, "fake": FAKE_LABEL, "0": REAL_LABEL, "1": FAKE_LABEL,
                   "0_real": REAL_LABEL, "1_fake": FAKE_LABEL}
_CLASS_FOLDERS = {"0_real": REAL_LABEL, "1_fake": FAKE_LABEL}
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")

DETECTION_FEATURES = datasets.Features({
    "image": datasets.Image(),
    "label": datasets.ClassLabel(names=list(LABEL_NAMES)),
    "generator": datasets.Value("string"),
    "source": datasets.Value("string"),
    "orig_format": datasets.Value("string"),
    "orig_width": datasets.Value("int32"),
    "orig_height": datasets.Value("int32"),
})


@dataclass(frozen=True, kw_only=True)
class DetectionRecord:
    """One labelled image: a path, raw encoded bytes, or a decoded image."""

    image: str | bytes | Image.Image
    label: int
    generator: str
    source: str = ""
    id: str


def parse_label(value: object) -> int:
    """0 (real) or 1 (fake) from a label such as "real", "fake", 0, 1, "0_real" or "1_fake"."""
    try:
        return _LABELS_BY_NAME[str(value).strip().lower()]
    except KeyError:
        raise ValueError(
            f"unrecognised label {value!r}; expected one of {sorted(_LABELS_BY_NAME)}"
        ) from None


def _generator_for(label: int, generator: str | None) -> str:
    if label == REAL_LABEL:
        return REAL_GENERATOR
    return generator or UNKNOWN_GENERATOR


def _records_from_real_fake_folders(root: Path) -> list[DetectionRecord]:
    records = [
        DetectionRecord(image=str(path), label=REAL_LABEL, generator=REAL_GENERATOR,
                        id=path.relative_to(root).as_posix())
        for path in collect_image_files([root / "real"])
    ]
    fake_root = root / "fake"
    for path in collect_image_files([fake_root]):
        parts = path.relative_to(fake_root).parts
        generator = parts[0] if len(parts) > 1 else UNKNOWN_GENERATOR
        records.append(DetectionRecord(image=str(path), label=FAKE_LABEL, generator=generator,
                                       id=path.relative_to(root).as_posix()))
    return records


def _class_folders(root: Path) -> list[Path]:
    folders = [path for name in _CLASS_FOLDERS for path in root.rglob(name) if path.is_dir()]
    return sorted(folders, key=lambda path: path.relative_to(root).as_posix())


def _records_from_class_folders(root: Path, class_folders: list[Path]) -> list[DetectionRecord]:
    """0_real/1_fake folders; the generator is the top folder under `root` that holds them."""
    records = []
    for folder in class_folders:
        label = _CLASS_FOLDERS[folder.name]
        group = folder.parent.relative_to(root)
        generator = group.parts[0] if group.parts else None
        source = group.as_posix() if group.parts else ""
        records.extend(
            DetectionRecord(image=str(path), label=label,
                            generator=_generator_for(label, generator), source=source,
                            id=path.relative_to(root).as_posix())
            for path in collect_image_files([folder])
        )
    return records


def _records_from_manifest(manifest_path: Path) -> list[DetectionRecord]:
    with manifest_path.open(newline="", encoding="utf-8") as manifest_file:
        reader = csv.DictReader(manifest_file)
        missing_columns = {"path", "label"} - set(reader.fieldnames or ())
        if missing_columns:
            raise ValueError(f"{manifest_path} lacks the column(s) {sorted(missing_columns)}")
        rows = list(reader)
    records = []
    for row in rows:
        image_path = manifest_path.parent / row["path"]
        if not image_path.is_file():
            raise ValueError(f"{manifest_path}: listed image {row['path']!r} does not exist")
        label = parse_label(row["label"])
        records.append(DetectionRecord(
            image=str(image_path), label=label,
            generator=_generator_for(label, (row.get("generator") or "").strip()),
            source=(row.get("source") or "").strip(), id=row["path"],
        ))
    return records


def _select_split(dataset_dict: datasets.DatasetDict, split: str | None) -> datasets.Dataset:
    if split is None:
        if "test" in dataset_dict:
            split = "test"
        elif len(dataset_dict) == 1:
            split = next(iter(dataset_dict))
        else:
            raise ValueError(f"several splits {list(dataset_dict)} and no 'test': pass split=")
    if split not in dataset_dict:
        raise ValueError(f"no split {split!r}; available: {list(dataset_dict)}")
    return dataset_dict[split]


def _records_from_hf_dataset(path: Path, split: str | None) -> list[DetectionRecord]:
    loaded = datasets.load_from_disk(str(path))
    dataset = _select_split(loaded, split) if isinstance(loaded, datasets.DatasetDict) else loaded
    missing_columns = {"image", "label"} - set(dataset.column_names)
    if missing_columns:
        raise ValueError(f"dataset at {path} lacks the column(s) {sorted(missing_columns)}")
    label_feature = dataset.features["label"]
    # Map class indices through their names: imagefolder sorts names, giving fake=0, real=1.
    label_names = label_feature.names if isinstance(label_feature, datasets.ClassLabel) else None
    labels = [
        parse_label(label_names[value] if label_names else value) for value in dataset["label"]
    ]
    columns = dataset.column_names
    generators = list(dataset["generator"]) if "generator" in columns else [None] * len(labels)
    sources = list(dataset["source"]) if "source" in columns else [""] * len(labels)
    encoded_images = dataset.cast_column("image", datasets.Image(decode=False))["image"]
    records = []
    for index, (encoded, label, generator, source) in enumerate(
        zip(encoded_images, labels, generators, sources, strict=True)
    ):
        records.append(DetectionRecord(
            image=encoded["bytes"] if encoded["bytes"] is not None else encoded["path"],
            label=label, generator=_generator_for(label, generator), source=source or "",
            id=f"row-{index}",
        ))
    return records


def load_detection_records(path: str | Path, *, split: str | None = None) -> list[DetectionRecord]:
    """Read labelled images from `path`, auto-detecting its layout.

    Layouts, tried in this order: a dataset saved with `save_to_disk` (for a DatasetDict,
    `split`, else "test", else the only split), a folder with `manifest.csv` (or the CSV
    itself), `real/` + `fake/[<generator>/]`, and `0_real/` + `1_fake/` folders at the root
    or under `<generator>/...` (ForenSynths). Reals always get generator "real".
    """
    path = Path(path).absolute()
    if path.is_file() and path.suffix.lower() == ".csv":
        records = _records_from_manifest(path)
    elif not path.is_dir():
        raise ValueError(f"{path} is neither a folder nor a manifest CSV")
    elif any((path / marker).is_file() for marker in _DATASET_MARKERS):
        records = _records_from_hf_dataset(path, split)
    elif (path / "manifest.csv").is_file():
        records = _records_from_manifest(path / "manifest.csv")
    elif (path / "real").is_dir() and (path / "fake").is_dir():
        records = _records_from_real_fake_folders(path)
    elif class_folders := _class_folders(path):
        records = _records_from_class_folders(path, class_folders)
    else:
        raise ValueError(
            f"unrecognised layout at {path}; supported layouts: " + "; ".join(SUPPORTED_LAYOUTS)
        )
    if not records:
        raise ValueError(f"no images found in {path}")
    return records


def split_records(
    records: Sequence[DetectionRecord],
    *,
    test_fraction: float,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, list[DetectionRecord]]:
    """Split into "train", "val" and "test" (always all three), stratified by (label, generator).

    Each stratum is ordered by id and shuffled with a seed-derived generator, so the split
    depends only on the ids and `seed`, not on the input order. Within a stratum the test and
    val counts are fractions of its size rounded half up. Splits keep the input order.
    """
    if test_fraction < 0 or val_fraction < 0 or test_fraction + val_fraction > 1:
        raise ValueError(
            f"need fractions >= 0 summing to <= 1, got test={test_fraction}, val={val_fraction}"
        )
    id_counts = Counter(record.id for record in records)
    duplicated_ids = [record_id for record_id, count in id_counts.items() if count > 1]
    if duplicated_ids:
        raise ValueError(f"record ids must be unique; duplicated: {duplicated_ids[:5]}")
    strata: dict[tuple[int, str], list[DetectionRecord]] = defaultdict(list)
    for record in records:
        strata[(record.label, record.generator)].append(record)
    split_of_id: dict[str, str] = {}
    for (label, generator), members in strata.items():
        members = sorted(members, key=lambda record: record.id)
        random.Random(f"{seed}/{label}/{generator}").shuffle(members)
        test_count = int(len(members) * test_fraction + 0.5)
        val_count = min(int(len(members) * val_fraction + 0.5), len(members) - test_count)
        for position, record in enumerate(members):
            if position < test_count:
                split_of_id[record.id] = "test"
            elif position < test_count + val_count:
                split_of_id[record.id] = "val"
            else:
                split_of_id[record.id] = "train"
    splits: dict[str, list[DetectionRecord]] = {"train": [], "val": [], "test": []}
    for record in records:
        splits[split_of_id[record.id]].append(record)
    return splits


def load_record_image(record: DetectionRecord) -> Image.Image:
    """The record's image as RGB; a failure raises ImageLoadError naming the record id."""
    try:
        return load_image(record.image)
    except ImageLoadError as error:
        raise ImageLoadError(record.id, error.reason, error.detail) from error


ImageProcessor = Callable[..., Any]
"""A transformers image processor: `processor(images=img, return_tensors="pt")["pixel_values"]`."""


class DetectionDataset(torch.utils.data.Dataset):
    """Torch dataset of records: decode, `transform`, then `image_processor`.

    Items are `{"pixel_values": Tensor[C, H, W], "labels": int}`.
    """

    def __init__(
        self,
        records: Sequence[DetectionRecord],
        image_processor: ImageProcessor,
        transform: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.records = list(records)
        self.image_processor = image_processor
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        record = self.records[index]
        image = load_record_image(record)
        if self.transform is not None:
            image = self.transform(image)
        pixel_values = self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixel_values, "labels": record.label}


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _original_encoding(image: str | bytes | Image.Image) -> tuple[bytes, str]:
    """Encoded bytes and format of a record's image (a decoded image is encoded as PNG)."""
    if isinstance(image, Image.Image):
        return _png_bytes(image), image.format or ""
    encoded = Path(image).read_bytes() if isinstance(image, str) else image
    with Image.open(io.BytesIO(encoded)) as header:
        return encoded, header.format or ""


def records_to_dataset(
    records: Sequence[DetectionRecord], protocol: str | None = None, *, progress: bool = True
) -> datasets.Dataset:
    """An HF dataset with `DETECTION_FEATURES` and the image bytes embedded.

    Every image is decoded first, so a bad file fails the build with its record id. With no
    protocol (or "raw") the original encoded bytes are stored; otherwise the protocol's
    output is stored as PNG, so its (e.g. JPEG) artefacts are kept losslessly.
    `orig_width`/`orig_height` are those of the decoded, EXIF-upright image. The record id
    is kept as the image's "path" (readable with `datasets.Image(decode=False)`).
    """
    transform = None if protocol in (None, "raw") else get_protocol(protocol)
    columns: dict[str, list[Any]] = {name: [] for name in DETECTION_FEATURES}
    for record in tqdm(records, desc="encoding images", disable=not progress):
        image = load_record_image(record)
        encoded, orig_format = _original_encoding(record.image)
        if transform is not None:
            encoded = _png_bytes(transform(image))
        columns["image"].append({"bytes": encoded, "path": record.id})
        columns["label"].append(record.label)
        columns["generator"].append(record.generator)
        columns["source"].append(record.source)
        columns["orig_format"].append(orig_format)
        columns["orig_width"].append(image.width)
        columns["orig_height"].append(image.height)
    return datasets.Dataset.from_dict(columns, features=DETECTION_FEATURES)


def dataset_card(
    splits: dict[str, Sequence[DetectionRecord]], *, pretty_name: str, protocol: str | None
) -> str:
    """A short dataset card (README.md with YAML header) describing `splits`."""
    protocol_name = protocol or "raw"
    protocol_summary = (get_protocol(protocol_name).__doc__ or "").strip().splitlines()[0]
    lines = [
        "---",
        "license: other",
        "task_categories:",
        "- image-classification",
        f"pretty_name: {json.dumps(pretty_name)}",
        "---",
        "",
        f"# {pretty_name}",
        "",
        "Real vs AI-generated image detection data, built with `aigi`.",
        "",
        "- `label`: ClassLabel names [\"real\", \"fake\"] (0 = real, 1 = fake).",
        "- `generator`: the generator of a fake image, \"real\" for real images.",
        "- `source`, `orig_format`, `orig_width`, `orig_height`: provenance and the original file.",
        f"- Protocol `{protocol_name}`: {protocol_summary}",
        "- License: other; each image keeps the license of its source.",
        "",
        "| split | generator | images |",
        "|---|---|---|",
    ]
    for split_name, records in splits.items():
        for generator, count in sorted(Counter(r.generator for r in records).items()):
            lines.append(f"| {split_name} | {generator} | {count} |")
    return "\n".join(lines) + "\n"
