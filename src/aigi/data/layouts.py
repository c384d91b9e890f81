"""Readers for every on-disk layout of detection data, with auto-detection.

Each reader yields `DetectionRecord`s lazily in a deterministic (sorted) order, so a source with
millions of images can be streamed with constant memory (`iter_detection_records`), or listed
(`load_detection_records`). Benchmark layouts follow their documentation:

- GenImage: `<generator>/[...]/{train,val}/{ai,nature}/`.
- ForenSynths (CNNDetection), AIGCDetectBenchmark, AIGIBench: `[<split>/]<generator>/[<category>/]{0_real,1_fake}/`;
  ForenSynths' ProGAN training folders are named after the 20 LSUN categories: their generator is "progan".
- Chameleon: `test/{0_real,1_fake}/` (fakes of unnamed generators: generator "chameleon").
- WildFake: `[Images/]{Real,GAN_based,Diffusion_based,Other_based}/.../<generator>/`; the generator is the folder
  that holds the image, the `source` its whole hierarchy path.
- Community Forensics: Parquet shards (`image_data`, `label`, `model_name` columns) or `<generator>/{real,fake}/`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from aigi.data.records import (
    FAKE_LABEL,
    REAL_LABEL,
    DetectionRecord,
    generator_for,
    parse_label,
)
from aigi.image_io import IMAGE_EXTENSIONS

SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
PROGAN_CATEGORIES = frozenset({
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
})
_CLASS_FOLDERS = {"0_real": REAL_LABEL, "1_fake": FAKE_LABEL}
_GENIMAGE_FOLDERS = {"nature": REAL_LABEL, "ai": FAKE_LABEL}
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
_PARQUET_SHARD_NAME = re.compile(r"^(?P<split>[a-z]+)-\d+-of-\d+\.parquet$")
_WILDFAKE_REAL = "real"
_PARQUET_BATCH_ROWS = 64
_DETECTION_DEPTH = 6


# ---------------------------------------------------------------- file-system helpers

def _walk_image_files(folder: Path) -> Iterator[Path]:
    """Image files under `folder`, recursively, sorted, skipping hidden files and folders."""
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(directory) / name


def _find_folders(root: Path, matches: Callable[[str], bool], max_depth: int = _DETECTION_DEPTH) -> list[Path]:
    """Folders under `root` (depth <= max_depth) whose name `matches`; never descends into a match."""
    found: list[Path] = []
    frontier = [root]
    for _ in range(max_depth):
        next_frontier = []
        for folder in frontier:
            try:
                children = sorted((entry for entry in os.scandir(folder)
                                   if entry.is_dir() and not entry.name.startswith(".")), key=lambda entry: entry.name)
            except OSError:
                continue
            for child in children:
                (found if matches(child.name) else next_frontier).append(Path(child.path))
        frontier = next_frontier
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def _split_prefix(parts: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """A leading split folder ("train", "val", "validation", "test") and the remaining parts."""
    if parts and parts[0].lower() in SPLIT_NAMES:
        return SPLIT_NAMES[parts[0].lower()], parts[1:]
    return None, parts


def _record(path: Path, root: Path, label: int, generator: str | None, source: str = "",
            split: str | None = None) -> DetectionRecord:
    return DetectionRecord(image=str(path), label=label, generator=generator_for(label, generator),
                           source=source, id=path.relative_to(root).as_posix(), split=split)


# ---------------------------------------------------------------- readers

def read_real_fake_folders(root: Path) -> Iterator[DetectionRecord]:
    """`real/` + `fake/[<generator>/]`, at the root or under `{train,val,test}/` split folders."""
    split_roots = [(SPLIT_NAMES[path.name.lower()], path) for path in sorted(root.iterdir())
                   if path.is_dir() and path.name.lower() in SPLIT_NAMES and (path / "real").is_dir()]
    for split, split_root in split_roots or [(None, root)]:
        for path in _walk_image_files(split_root / "real"):
            yield _record(path, root, REAL_LABEL, None, split=split)
        fake_root = split_root / "fake"
        for path in _walk_image_files(fake_root):
            parts = path.relative_to(fake_root).parts
            yield _record(path, root, FAKE_LABEL, parts[0] if len(parts) > 1 else None, split=split)


def _read_labelled_folders(
    root: Path, labels_by_folder: dict[str, int], unknown_generator: str | None,
    generator_of: Callable[[tuple[str, ...]], tuple[str | None, str]],
) -> Iterator[DetectionRecord]:
    """Folders named as in `labels_by_folder`; `generator_of(group parts)` gives (generator, source)."""
    folders = _find_folders(root, lambda name: name.lower() in labels_by_folder)
    for folder in folders:
        label = labels_by_folder[folder.name.lower()]
        split, group = _split_prefix(folder.parent.relative_to(root).parts)
        if not split and group and group[-1].lower() in SPLIT_NAMES:  # GenImage: <gen>/<split>/{ai,nature}
            split, group = SPLIT_NAMES[group[-1].lower()], group[:-1]
        generator, source = generator_of(group)
        for path in _walk_image_files(folder):
            yield _record(path, root, label, generator or unknown_generator, source, split)


def _top_folder(group: tuple[str, ...]) -> tuple[str | None, str]:
    return (group[0] if group else None), "/".join(group)


def _top_folder_or_progan(group: tuple[str, ...]) -> tuple[str | None, str]:
    generator, source = _top_folder(group)
    return ("progan" if generator and generator.lower() in PROGAN_CATEGORIES else generator), source


def read_class_folders(root: Path, unknown_generator: str | None = None) -> Iterator[DetectionRecord]:
    """ForenSynths / AIGCDetectBenchmark / AIGIBench: `[<split>/]<generator>/[...]/{0_real,1_fake}/`."""
    return _read_labelled_folders(root, _CLASS_FOLDERS, unknown_generator, _top_folder_or_progan)


def read_chameleon(root: Path) -> Iterator[DetectionRecord]:
    """Chameleon: `test/{0_real,1_fake}/`; its fakes come from unnamed generators, labelled "chameleon"."""
    return read_class_folders(root, unknown_generator="chameleon")


def read_genimage(root: Path) -> Iterator[DetectionRecord]:
    """GenImage: `<generator>/[...]/{train,val}/{ai,nature}/` (also `<generator>/{ai,nature}/`)."""
    return _read_labelled_folders(root, _GENIMAGE_FOLDERS, None, _top_folder)


def _wildfake_root(root: Path) -> Path | None:
    for candidate in (root, root / "Images"):
        if not candidate.is_dir():
            continue
        names = {path.name.lower() for path in candidate.iterdir() if path.is_dir()}
        if _WILDFAKE_REAL in names and any(name.endswith("_based") for name in names):
            return candidate
    return None


def read_wildfake(root: Path) -> Iterator[DetectionRecord]:
    """WildFake: `{Real,<Family>_based}/.../<generator>/<image>` (optionally under `Images/`)."""
    images_root = _wildfake_root(root)
    if images_root is None:
        raise ValueError(f"{root} has no WildFake Real/ and *_based/ folders")
    for category in sorted(path for path in images_root.iterdir() if path.is_dir()):
        label = REAL_LABEL if category.name.lower() == _WILDFAKE_REAL else FAKE_LABEL
        for path in _walk_image_files(category):
            hierarchy = path.parent.relative_to(images_root)
            yield _record(path, root, label, path.parent.name, hierarchy.as_posix())


def read_community_forensics_folders(root: Path) -> Iterator[DetectionRecord]:
    """Community Forensics folders: `<generator or dataset>/{real,fake}/<image>`."""
    for group in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        for class_name, label in (("real", REAL_LABEL), ("fake", FAKE_LABEL)):
            for path in _walk_image_files(group / class_name):
                yield _record(path, root, label, group.name, group.name)


def _manifest_rows(manifest_path: Path) -> list[dict]:
    if manifest_path.suffix.lower() == ".jsonl":
        with manifest_path.open(encoding="utf-8") as manifest_file:
            return [json.loads(line) for line in manifest_file if line.strip()]
    with manifest_path.open(newline="", encoding="utf-8") as manifest_file:
        return list(csv.DictReader(manifest_file))


def read_manifest(manifest_path: Path) -> Iterator[DetectionRecord]:
    """A CSV or JSONL manifest: `path`, `label`, optional `generator`, `source`, `split` (paths relative to it).

    FiSeR's JSONL (`path`, `src`) also works: `src` "nature" or "real" is real, any other `src` is the generator.
    """
    for line_number, row in enumerate(_manifest_rows(manifest_path), start=2):
        if "path" not in row or ("label" not in row and "src" not in row):
            raise ValueError(f"{manifest_path}: row {line_number} lacks 'path' and 'label' (or 'src')")
        if "label" in row:
            label, generator = parse_label(row["label"]), str(row.get("generator") or "").strip()
        else:
            source_name = str(row["src"]).strip()
            label = REAL_LABEL if source_name.lower() in ("nature", "real") else FAKE_LABEL
            generator = source_name
        image_path = manifest_path.parent / row["path"]
        if not image_path.is_file():
            raise ValueError(f"{manifest_path}: listed image {row['path']!r} does not exist")
        split = str(row.get("split") or "").strip().lower()
        yield DetectionRecord(
            image=str(image_path), label=label, generator=generator_for(label, generator),
            source=str(row.get("source") or "").strip(), id=str(row["path"]),
            split=SPLIT_NAMES.get(split) if split else None,
        )


def _label_names(features: datasets.Features) -> list[str] | None:
    label_feature = features.get("label")
    return label_feature.names if isinstance(label_feature, datasets.ClassLabel) else None


def read_hf_dataset(path: Path, split: str | None) -> Iterator[DetectionRecord]:
    """A dataset saved with `save_to_disk`; for a DatasetDict, `split`, else "test", else its only split."""
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            if "test" in loaded:
                split = "test"
            elif len(loaded) == 1:
                split = next(iter(loaded))
            else:
                raise ValueError(f"several splits {list(loaded)} and no 'test': pass split=")
        if split not in loaded:
            raise ValueError(f"no split {split!r}; available: {list(loaded)}")
        dataset = loaded[split]
    else:
        dataset = loaded
    missing_columns = {"image", "label"} - set(dataset.column_names)
    if missing_columns:
        raise ValueError(f"dataset at {path} lacks the column(s) {sorted(missing_columns)}")
    # Map class indices through their names: imagefolder sorts names, giving fake=0, real=1.
    label_names = _label_names(dataset.features)
    dataset = dataset.cast_column("image", datasets.Image(decode=False))
    for index, row in enumerate(dataset):
        label = parse_label(label_names[row["label"]] if label_names else row["label"])
        encoded = row["image"]
        yield DetectionRecord(
            image=encoded["bytes"] if encoded["bytes"] is not None else encoded["path"],
            label=label, generator=generator_for(label, row.get("generator")), source=row.get("source") or "",
            id=f"row-{index}", split=split,
        )


def _parquet_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.parquet") if not any(part.startswith(".") for part in path.parts))


def _parquet_split(path: Path, root: Path) -> str | None:
    match = _PARQUET_SHARD_NAME.match(path.name)
    if match and match["split"] in SPLIT_NAMES:
        return SPLIT_NAMES[match["split"]]
    split, _ = _split_prefix(path.parent.relative_to(root).parts[-1:])
    return split


def read_parquet(root: Path) -> Iterator[DetectionRecord]:
    """Parquet shards, streamed in small row batches: the aigi schema (`image` struct, `label`, `generator`, ...)
    or Community Forensics (`image_data` bytes, `label`, `model_name`)."""
    for path in _parquet_files(root):
        parquet_file = pq.ParquetFile(path)
        columns = set(parquet_file.schema_arrow.names)
        image_column = "image" if "image" in columns else "image_data"
        generator_column = "generator" if "generator" in columns else "model_name"
        if image_column not in columns or "label" not in columns:
            raise ValueError(f"{path} has neither an 'image' nor an 'image_data' column with 'label'")
        label_names = _label_names(datasets.Features.from_arrow_schema(parquet_file.schema_arrow))
        wanted = [name for name in (image_column, "label", generator_column, "source") if name in columns]
        relative = path.relative_to(root).as_posix()
        split = _parquet_split(path, root)
        row_index = 0
        for batch in parquet_file.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted):
            for row in batch.to_pylist():
                value = row["label"]
                label = parse_label(label_names[value] if label_names else value)
                encoded = row[image_column]
                image = encoded["bytes"] if isinstance(encoded, dict) else encoded
                yield DetectionRecord(
                    image=image, label=label, generator=generator_for(label, row.get(generator_column)),
                    source=row.get("source") or path.parent.relative_to(root).as_posix(),
                    id=f"{relative}#{row_index}", split=split,
                )
                row_index += 1


# ---------------------------------------------------------------- registry and detection

@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    read: Callable[[Path], Iterable[DetectionRecord]]
    detect: Callable[[Path], bool]


def _has_class_folders(root: Path, names: Iterable[str]) -> bool:
    names = set(names)
    return bool(_find_folders(root, lambda name: name.lower() in names))


def _is_community_forensics_folders(root: Path) -> bool:
    groups = [path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return bool(groups) and all((group / "real").is_dir() or (group / "fake").is_dir() for group in groups)


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in [
    Layout("hf-disk", "a Hugging Face dataset saved with save_to_disk (image + label columns)",
           lambda root: read_hf_dataset(root, None),
           lambda root: any((root / marker).is_file() for marker in _DATASET_MARKERS)),
    Layout("manifest", "a folder with manifest.csv or manifest.jsonl (path, label[, generator, source, split])",
           lambda root: read_manifest(next(root / name for name in _MANIFEST_NAMES if (root / name).is_file())),
           lambda root: any((root / name).is_file() for name in _MANIFEST_NAMES)),
    Layout("parquet", "Parquet shards: the aigi schema, or Community Forensics (image_data, label, model_name)",
           read_parquet, lambda root: bool(_parquet_files(root))),
    Layout("folders", "real/ + fake/[<generator>/], optionally under train/val/test folders",
           read_real_fake_folders,
           lambda root: ((root / "real").is_dir() and (root / "fake").is_dir())
           or any((root / split / "real").is_dir() for split in SPLIT_NAMES)),
    Layout("genimage", "GenImage: <generator>/[...]/{train,val}/{ai,nature}", read_genimage,
           lambda root: _has_class_folders(root, _GENIMAGE_FOLDERS)),
    Layout("wildfake", "WildFake: [Images/]{Real,GAN_based,Diffusion_based,Other_based}/.../<generator>/",
           read_wildfake, lambda root: _wildfake_root(root) is not None),
    Layout("forensynths", "ForenSynths / AIGCDetectBenchmark / AIGIBench: [<split>/]<generator>/[...]/{0_real,1_fake}",
           read_class_folders, lambda root: _has_class_folders(root, _CLASS_FOLDERS)),
    Layout("community-forensics", "Community Forensics folders: <generator>/{real,fake}/",
           read_community_forensics_folders, _is_community_forensics_folders),
]}
# Layouts that auto-detection reads as another (same folders), selectable by name.
NAMED_ONLY_READERS: dict[str, Callable[[Path], Iterable[DetectionRecord]]] = {
    "aigcdetectbenchmark": read_class_folders,
    "aigibench": read_class_folders,
    "chameleon": read_chameleon,
}
LAYOUT_NAMES = ("auto", *LAYOUTS, *NAMED_ONLY_READERS)


def detect_layout(path: Path) -> str:
    """The name of the first layout in `LAYOUTS` whose markers `path` has."""
    for layout in LAYOUTS.values():
        if layout.detect(path):
            return layout.name
    supported = "; ".join(layout.description for layout in LAYOUTS.values())
    raise ValueError(f"unrecognised layout at {path}; supported layouts: {supported}")


def iter_detection_records(
    path: str | Path, *, layout: str = "auto", split: str | None = None
) -> Iterator[DetectionRecord]:
    """Stream the labelled images of `path` (a folder, a manifest file or a saved dataset).

    `layout` is "auto" (detected in the order of `LAYOUTS`) or one of `LAYOUT_NAMES`. `split`
    keeps the records of that split only; for a saved DatasetDict it picks the split to read
    (default "test", else the only one). Reals always get generator "real".
    """
    path = Path(path).absolute()
    if layout not in LAYOUT_NAMES:
        raise ValueError(f"unknown layout {layout!r}; available: {', '.join(LAYOUT_NAMES)}")
    if path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
        records: Iterable[DetectionRecord] = read_manifest(path)
    elif not path.is_dir():
        raise ValueError(f"{path} is neither a folder nor a manifest (.csv, .jsonl)")
    elif layout == "hf-disk" or (layout == "auto" and LAYOUTS["hf-disk"].detect(path)):
        yield from read_hf_dataset(path, split)
        return
    elif layout in NAMED_ONLY_READERS:
        records = NAMED_ONLY_READERS[layout](path)
    else:
        records = LAYOUTS[detect_layout(path) if layout == "auto" else layout].read(path)
    for record in records:
        if split is None or record.split == split:
            yield record


def load_detection_records(
    path: str | Path, *, layout: str = "auto", split: str | None = None
) -> list[DetectionRecord]:
    """All records of `path` as a list (see `iter_detection_records`); fails when there are none."""
    records = list(iter_detection_records(path, layout=layout, split=split))
    if not records:
        where = f"{path}" + (f" (split {split!r})" if split else "")
        raise ValueError(f"no images found in {where}")
    return records
