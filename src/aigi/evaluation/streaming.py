"""`aigi detect --output FILE`: score a stream of images and write each row as soon as its batch is scored.

Memory stays constant whatever the number of images: the inputs (files, or the records of a folder, manifest,
saved dataset or Parquet shards) are read a few batches ahead of the model, and no output is kept once written.
The rows are those `aigi detect` prints, in the same order, with an error row for each image that cannot be read.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from ..data.records import LABEL_NAMES, DetectionRecord
from ..pipeline import fake_score
from .runner import iter_scores

FILE_FIELDS = ("path", "label", "score", "error")
RECORD_FIELDS = ("id", "true_label", "generator", "label", "score", "error")
OUTPUT_SUFFIXES = (".csv", ".jsonl")
FLUSH_EVERY_ROWS = 64


def verdict_fields(output: Any) -> dict[str, Any]:
    """`label`, `score` (P(fake)) and `error` of one pipeline output."""
    if isinstance(output, dict):
        return {"label": None, "score": None, "error": output["error"]}
    # The pipeline puts the verdict at the threshold first.
    return {"label": output[0]["label"], "score": fake_score(output), "error": None}


def file_entries(files: Iterable[str | Path]) -> Iterator[tuple[dict[str, Any], str]]:
    """(row fields, pipeline input) of image files."""
    for file in files:
        yield {"path": str(file)}, str(file)


def record_entries(records: Iterable[DetectionRecord]) -> Iterator[tuple[dict[str, Any], Any]]:
    """(row fields, pipeline input) of dataset records: their id, true label and generator."""
    for record in records:
        yield {"id": record.id, "true_label": LABEL_NAMES[record.label], "generator": record.generator}, record.image


def iter_detection_rows(pipe, entries: Iterable[tuple[dict[str, Any], Any]], **score_options) -> Iterator[dict]:
    """One row per entry, in order: its fields plus the verdict of the pipeline (see `iter_scores` for the
    options). Only the entries the pipeline has read ahead are held."""
    waiting_fields: deque[dict[str, Any]] = deque()

    def sources() -> Iterator[Any]:
        for fields, source in entries:
            waiting_fields.append(fields)
            yield source

    for output in iter_scores(pipe, sources(), **score_options):
        yield {**waiting_fields.popleft(), **verdict_fields(output)}


def check_output_path(path: str | Path) -> None:
    """Raise ValueError unless `path` names a `.csv` or `.jsonl` file."""
    if Path(path).suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"the output file must end in {' or '.join(OUTPUT_SUFFIXES)}, got {Path(path).name!r}")


class RowWriter:
    """Writes rows to a `.csv` (with a header) or `.jsonl` file, flushing every `FLUSH_EVERY_ROWS` rows."""

    def __init__(self, path: str | Path, fields: tuple[str, ...]):
        check_output_path(path)
        self.path = Path(path)
        self.fields = fields
        self.rows = 0
        self._file: TextIO | None = None
        self._csv: csv.DictWriter | None = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="", encoding="utf-8")
        if self.path.suffix.lower() == ".csv":
            self._csv = csv.DictWriter(self._file, fieldnames=list(self.fields))
            self._csv.writeheader()
        return self

    def write(self, row: dict[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow(row)
        else:
            self._file.write(json.dumps({field: row[field] for field in self.fields}) + "\n")
        self.rows += 1
        if self.rows % FLUSH_EVERY_ROWS == 0:
            self._file.flush()

    def __exit__(self, *exc_info) -> None:
        self._file.close()


def stream_rows_to_file(rows: Iterable[dict], output: str | Path, fields: tuple[str, ...]) -> tuple[int, int]:
    """Write `rows` as they come; returns (rows written, rows with an error)."""
    errors = 0
    with RowWriter(output, fields) as writer:
        for row in rows:
            writer.write(row)
            errors += row["error"] is not None
    return writer.rows, errors
