"""What `aigi detect` reads: image files and folders, or the records of a dataset (folder layout, manifest, saved
dataset, Parquet shards), as a lazy stream of (row fields, pipeline input) entries."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.layouts import iter_detection_records
from ..data.records import LABEL_NAMES, DetectionRecord
from ..image_io import collect_image_files

FILE_FIELDS = ("path", "label", "score", "error")
RECORD_FIELDS = ("id", "true_label", "generator", "label", "score", "error")


def file_entries(files: Iterable[str | Path]) -> Iterator[tuple[dict[str, Any], str]]:
    """(row fields, pipeline input) of image files."""
    for file in files:
        yield {"path": str(file)}, str(file)


def record_entries(records: Iterable[DetectionRecord]) -> Iterator[tuple[dict[str, Any], Any]]:
    """(row fields, pipeline input) of dataset records: their id, true label and generator."""
    for record in records:
        yield {"id": record.id, "true_label": LABEL_NAMES[record.label], "generator": record.generator}, record.image


def detection_entries(
    paths: Sequence[str] = (), data: str | None = None, split: str | None = None
) -> tuple[Iterator[tuple[dict[str, Any], Any]], tuple[str, ...], int | None]:
    """(entries, their row fields, their count or None when unknown) of image `paths` or of the dataset `data`.
    The layout is read now, so that unusable inputs raise ValueError / FileNotFoundError here, not mid-stream."""
    if bool(data) == bool(paths):
        raise ValueError("give image paths or --data, not both" if data else "give image paths or --data")
    if data:
        records = iter_detection_records(data, split=split)
        first = next(records, None)
        return record_entries(itertools.chain([first] if first else [], records)), RECORD_FIELDS, None
    files = collect_image_files(paths)
    return file_entries(files), FILE_FIELDS, len(files)
