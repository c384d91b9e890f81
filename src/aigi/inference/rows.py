"""Rows of `aigi detect`: one per input (its fields plus the verdict), printed or streamed to a CSV / JSONL file.

Memory stays constant whatever the number of images: the entries (`aigi.inference.inputs`) are read a few batches
ahead of the model, and no row is kept once written. Every image that cannot be read gets an error row, in place.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .inputs import FILE_FIELDS
from .pipeline import fake_score
from .scoring import score_stream

OUTPUT_SUFFIXES = (".csv", ".jsonl")
FLUSH_EVERY_ROWS = 64


def verdict_fields(output: Any) -> dict[str, Any]:
    """`label`, `score` (P(fake)) and `error` of one pipeline output."""
    if isinstance(output, dict):
        return {"label": None, "score": None, "error": output["error"]}
    # The pipeline puts the verdict at the threshold first.
    return {"label": output[0]["label"], "score": fake_score(output), "error": None}


def iter_detection_rows(pipe, entries: Iterable[tuple[dict[str, Any], Any]], **score_options) -> Iterator[dict]:
    """One row per entry, in order: its fields plus the verdict of the pipeline (see `score_stream` for the
    options). Only the entries the pipeline has read ahead are held."""
    waiting_fields: deque[dict[str, Any]] = deque()

    def sources() -> Iterator[Any]:
        for fields, source in entries:
            waiting_fields.append(fields)
            yield source

    for output in score_stream(pipe, sources(), **score_options):
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


def print_rows(rows: list[dict], output_format: str = "text", stream: TextIO | None = None) -> None:
    """File rows on `stream` (default stdout): "json" (a list), "csv" (with a header), or "text" (one line each)."""
    stream = sys.stdout if stream is None else stream
    if output_format == "json":
        print(json.dumps(rows, indent=2), file=stream)
    elif output_format == "csv":
        writer = csv.DictWriter(stream, fieldnames=list(FILE_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            verdict = f"ERROR {row['error']}" if row["error"] else f"{row['label']:4s}  P(fake)={row['score']:.4f}"
            print(f"{verdict}  {row['path']}", file=stream)
