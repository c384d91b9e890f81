"""Build one well-typed Hugging Face dataset from any detection source: schema, guards, card, Parquet shards.

Every build streams: records are read lazily, each image is decoded once, and examples are written
to Arrow as they come, so memory stays constant however large the source. A bad file is skipped and
listed in `build_report.json` instead of ending the build.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import DatasetCard, DatasetCardData
from PIL import Image
from tqdm.auto import tqdm

from aigi.data.guards import ClassBiasReport, DuplicateFilter, ImageFileStats, pixel_hash
from aigi.data.layouts import iter_detection_records, load_detection_records
from aigi.data.records import LABEL_NAMES, DetectionRecord, load_record_image
from aigi.data.splits import split_records
from aigi.data.transforms import describe_protocol, get_protocol
from aigi.image_io import ImageLoadError

DETECTION_FEATURES = datasets.Features({
    "image": datasets.Image(),
    "label": datasets.ClassLabel(names=list(LABEL_NAMES)),
    "generator": datasets.Value("string"),
    "source": datasets.Value("string"),
    "orig_format": datasets.Value("string"),
    "orig_width": datasets.Value("int32"),
    "orig_height": datasets.Value("int32"),
})
SPLIT_ORDER = ("train", "val", "test")
UNSPLIT_NAME = "train"
MAX_PARQUET_SHARD_BYTES = 500 << 20
_SPLIT_COLUMN = "__split__"


@dataclass
class BuildReport:
    """What a build kept, dropped and measured; written as build_report.json and summarised in the card."""

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    skipped: list[dict] = field(default_factory=list)
    duplicates: DuplicateFilter | None = field(default_factory=DuplicateFilter)
    stored_bias: ClassBiasReport = field(default_factory=ClassBiasReport)
    original_bias: ClassBiasReport = field(default_factory=ClassBiasReport)

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {split: dict(sorted(counter.items())) for split, counter in self.counts.items()},
            "skipped": self.skipped,
            "duplicates": self.duplicates.summary() if self.duplicates else None,
            "stored_bias": self.stored_bias.to_dict(),
            "original_bias": self.original_bias.to_dict(),
        }


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _original_bytes(image: str | bytes | Image.Image) -> bytes:
    """The record's encoded bytes (a decoded image is encoded as PNG)."""
    if isinstance(image, Image.Image):
        return _png_bytes(image)
    return Path(image).read_bytes() if isinstance(image, str) else image


def encode_examples(
    split_records_pairs: Iterable[tuple[str, DetectionRecord]],
    *,
    protocol: str | None,
    report: BuildReport,
    progress: bool = True,
    total: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Examples with `DETECTION_FEATURES` (+ the split column) for (split, record) pairs.

    With no protocol (or "raw") the original encoded bytes are stored; otherwise the protocol's
    output as PNG, so its (e.g. JPEG) artefacts are kept losslessly. `orig_width`/`orig_height`
    are those of the decoded, EXIF-upright image; the file name is kept as the image's "path".
    """
    transform = None if protocol in (None, "raw") else get_protocol(protocol)
    for split, record in tqdm(split_records_pairs, desc="encoding images", unit="img", total=total,
                              disable=not progress):
        try:
            image = load_record_image(record)
        except ImageLoadError as error:
            report.skipped.append({"id": record.id, "split": split, "error": str(error)})
            continue
        if report.duplicates is not None and not report.duplicates.admit(
            pixel_hash(image), record_id=record.id, split=split, label=record.label
        ):
            continue
        original = _original_bytes(record.image)
        original_stats = ImageFileStats.of(original)
        stored = original if transform is None else _png_bytes(transform(image))
        report.original_bias.add(record.label, original_stats)
        if transform is None:
            stored_stats = original_stats
        else:
            # Padding copies pixels: the size that tells classes apart is that of the original content kept.
            stored_stats = ImageFileStats.of(stored)
            stored_stats = replace(stored_stats, width=min(stored_stats.width, image.width),
                                   height=min(stored_stats.height, image.height))
        report.stored_bias.add(record.label, stored_stats)
        report.counts[split][record.generator] += 1
        yield {
            "image": {"bytes": stored, "path": record.id},
            "label": record.label,
            "generator": record.generator,
            "source": record.source,
            "orig_format": original_stats.format,
            "orig_width": image.width,
            "orig_height": image.height,
            _SPLIT_COLUMN: split,
        }


def _planned_pairs(
    source: str | Path, *, layout: str, source_split: str | None, test_fraction: float, val_fraction: float,
    split_by: str, seed: int,
) -> tuple[Iterable[tuple[str, DetectionRecord]], int | None, dict[str, Any]]:
    """(split, record) pairs in build order, their count when known, and how the splits were made."""
    if test_fraction > 0 or val_fraction > 0:
        records = load_detection_records(source, layout=layout, split=source_split)
        splits = split_records(records, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed, by=split_by)
        pairs = [(name, record) for name in SPLIT_ORDER for record in splits[name]]
        plan = {"strategy": split_by, "seed": seed, "test_fraction": test_fraction, "val_fraction": val_fraction}
        return pairs, len(pairs), plan
    streamed = iter_detection_records(source, layout=layout, split=source_split)
    pairs = ((record.split or UNSPLIT_NAME, record) for record in streamed)
    return pairs, None, {"strategy": "as given by the source (records without a split go to 'train')"}


def build_detection_dataset(
    source: str | Path,
    out: str | Path,
    *,
    layout: str = "auto",
    source_split: str | None = None,
    protocol: str | None = None,
    test_fraction: float = 0.0,
    val_fraction: float = 0.0,
    split_by: str = "stratified",
    seed: int = 0,
    deduplicate: bool = True,
    parquet: bool = True,
    pretty_name: str | None = None,
    progress: bool = True,
) -> datasets.DatasetDict:
    """Build `source` into `out`: `save_to_disk` DatasetDict, Parquet shards in `data/`, README.md card, build_report.json.

    Splits come from the source (GenImage train/val, ForenSynths train/val/test, a manifest's
    `split` column...) unless `test_fraction`/`val_fraction` ask for a fresh split (`split_by`
    "stratified" or "source"). With `deduplicate`, exact pixel duplicates are dropped, keeping the
    first (splits are built in train, val, test order when aigi makes them). Returns the dataset,
    memory-mapped from `out`.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    pairs, total, split_plan = _planned_pairs(
        source, layout=layout, source_split=source_split, test_fraction=test_fraction, val_fraction=val_fraction,
        split_by=split_by, seed=seed,
    )
    report = BuildReport(duplicates=DuplicateFilter() if deduplicate else None)
    with tempfile.TemporaryDirectory(prefix="aigi-build-") as cache_dir:
        # A fresh cache and fingerprint per build: datasets would otherwise reuse an older build of the same path.
        combined = datasets.Dataset.from_generator(
            lambda: encode_examples(pairs, protocol=protocol, report=report, progress=progress, total=total),
            features=datasets.Features({**DETECTION_FEATURES, _SPLIT_COLUMN: datasets.Value("string")}),
            cache_dir=cache_dir, fingerprint=uuid.uuid4().hex,
            writer_batch_size=datasets.config.ARROW_RECORD_BATCH_SIZE_FOR_IMAGE_DATASETS,
        )
        if not report.counts:
            raise ValueError(f"no image of {source} could be read ({len(report.skipped)} unreadable)")
        split_names = sorted(combined.unique(_SPLIT_COLUMN), key=lambda name: (
            SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name))
        dataset_dict = datasets.DatasetDict({
            name: combined.filter(lambda value, name=name: value == name, input_columns=_SPLIT_COLUMN)
            .remove_columns(_SPLIT_COLUMN)
            for name in split_names
        })
        dataset_dict.save_to_disk(str(out))
    if parquet:
        write_parquet_shards(datasets.load_from_disk(str(out)), out / "data")
    card = dataset_card(
        report, pretty_name=pretty_name or f"aigi detection data: {Path(source).name}", protocol=protocol,
        source_description=f"`{Path(source).name}` read with layout `{layout}`", split_plan=split_plan,
        parquet=parquet,
    )
    card.save(out / "README.md")
    (out / "build_report.json").write_text(
        json.dumps({"source": str(source), "layout": layout, "protocol": protocol or "raw",
                    "splits": split_plan, **report.to_dict()}, indent=1) + "\n", encoding="utf-8")
    return datasets.load_from_disk(str(out))


def write_parquet_shards(dataset_dict: datasets.DatasetDict, folder: Path) -> list[Path]:
    """`<split>-00000-of-0000N.parquet` shards (the Hub's layout), each under `MAX_PARQUET_SHARD_BYTES`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dataset in dataset_dict.items():
        shard_count = max(1, math.ceil(dataset.data.nbytes / MAX_PARQUET_SHARD_BYTES))
        for index in range(shard_count):
            path = folder / f"{name}-{index:05d}-of-{shard_count:05d}.parquet"
            dataset.shard(shard_count, index, contiguous=True).to_parquet(str(path))
            written.append(path)
    return written


def _size_category(count: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "n>1M"


def dataset_card(
    report: BuildReport, *, pretty_name: str, protocol: str | None, source_description: str,
    split_plan: dict[str, Any], parquet: bool,
) -> DatasetCard:
    """A dataset card (README.md with YAML metadata) with counts, the class bias report and the guards' results."""
    protocol_name = protocol or "raw"
    protocol_summary = describe_protocol(protocol_name)
    total = sum(sum(counter.values()) for counter in report.counts.values())
    metadata = DatasetCardData(
        license="other", task_categories=["image-classification"], pretty_name=pretty_name,
        size_categories=[_size_category(total)], tags=["ai-image-detection", "aigi"],
        configs=[{"config_name": "default",
                  "data_files": [{"split": name, "path": f"data/{name}-*"} for name in report.counts]}]
        if parquet else None,
    )
    duplicates = report.duplicates.summary() if report.duplicates else None
    lines = [
        f"# {pretty_name}", "",
        "Real vs AI-generated image detection data, built with `aigi` "
        "(`datasets_scripts/build_detection_dataset.py`).", "",
        "## Schema", "",
        "- `image`: the stored image; `label`: ClassLabel [\"real\", \"fake\"] (0 = real, 1 = fake).",
        "- `generator`: the generator of a fake image, \"real\" for real images.",
        "- `source`, `orig_format`, `orig_width`, `orig_height`: provenance and the original file "
        "(size after EXIF orientation).", "",
        "## Build", "",
        f"- Source: {source_description}.",
        f"- Protocol `{protocol_name}`: {protocol_summary}",
        f"- Splits: {json.dumps(split_plan)}.",
        "- Exact duplicates (same decoded pixels): "
        + (f"{duplicates['dropped']} dropped {json.dumps(duplicates['by_kind'])}." if duplicates else "not checked."),
        f"- Unreadable files skipped: {len(report.skipped)} (listed in `build_report.json`).",
        "- Storage: `save_to_disk` folders" + (" and Parquet shards in `data/`." if parquet else "."),
        "- License: other; each image keeps the license of its source.", "",
        "## Images per split and generator", "",
        "| split | generator | images |", "|---|---|---|",
    ]
    for split_name, counter in report.counts.items():
        lines.extend(f"| {split_name} | {generator} | {count} |" for generator, count in sorted(counter.items()))
    lines += [
        "", "## Class bias report: stored images (what a detector sees)", "",
        "Per class: file format, estimated JPEG quality of the stored file and size in pixels (width x height) of the "
        "original content it keeps (a smaller original is padded, and padding is as visible as a size). A detector "
        "can learn any attribute that differs between classes instead of generation traces.", "",
        report.stored_bias.markdown(), "",
        "## Class bias report: original files", "",
        report.original_bias.markdown(), "",
    ]
    return DatasetCard(f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(lines))


def _stream_examples(source: str, layout: str, split: str | None, protocol: str | None) -> Iterator[dict[str, Any]]:
    report = BuildReport(duplicates=None)
    for example in encode_examples(
        ((record.split or UNSPLIT_NAME, record) for record in iter_detection_records(source, layout=layout, split=split)),
        protocol=protocol, report=report, progress=False,
    ):
        del example[_SPLIT_COLUMN]
        yield example


def stream_detection_dataset(
    source: str | Path, *, layout: str = "auto", split: str | None = None, protocol: str | None = None
) -> datasets.IterableDataset:
    """`source` as an `IterableDataset` with `DETECTION_FEATURES`: constant memory, nothing written.

    Unreadable files are skipped; there is no duplicate check (it needs the whole pass: build instead).
    """
    return datasets.IterableDataset.from_generator(
        _stream_examples, features=DETECTION_FEATURES,
        gen_kwargs={"source": str(source), "layout": layout, "split": split, "protocol": protocol},
    )
