"""Leakage and bias guards: exact duplicates by pixel hash, and a per-class report of formats, JPEG qualities and sizes.

A detector learns whatever separates the classes. When real images are JPEGs of one size and fakes PNGs of
another, that is the file format and size, not generation. `ClassBiasReport` measures, per class, the
distribution of each such nuisance attribute and warns when the two classes differ by more than
`BIAS_WARNING_DISTANCE` in total variation distance (0 = identical distributions, 1 = disjoint).
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from aigi.data.records import FAKE_LABEL, LABEL_NAMES, REAL_LABEL, DetectionRecord

BIAS_WARNING_DISTANCE = 0.2
JPEG_QUALITY_BINS = ((0, "<=50"), (51, "51-70"), (71, "71-80"), (81, "81-90"), (91, "91-95"), (96, "96-100"))
NOT_JPEG = "not JPEG"


def pixel_hash(image: Image.Image) -> str:
    """SHA-256 of the decoded RGB pixels and their size: equal for the same picture in any lossless file."""
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    digest = hashlib.sha256(f"{rgb.shape}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


@dataclass
class DuplicateFilter:
    """Streaming exact-duplicate guard: the first image with given pixels is kept, later copies are dropped.

    Splits are built in order (train, val, test), so a copy in a later split is the one dropped and
    no picture is in two splits. A copy with the other label is a label conflict, also dropped.
    """

    first_seen: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    dropped: list[dict] = field(default_factory=list)

    def admit(self, digest: str, *, record_id: str, split: str, label: int) -> bool:
        """True for the first image with this digest; records and returns False for any later copy."""
        if digest not in self.first_seen:
            self.first_seen[digest] = (split, record_id, label)
            return True
        kept_split, kept_id, kept_label = self.first_seen[digest]
        kind = "label_conflict" if kept_label != label else (
            "within_split" if kept_split == split else "across_splits")
        self.dropped.append({"id": record_id, "split": split, "duplicate_of": kept_id,
                             "duplicate_split": kept_split, "kind": kind})
        return False

    def summary(self) -> dict:
        counts = Counter(entry["kind"] for entry in self.dropped)
        return {"dropped": len(self.dropped), "by_kind": dict(sorted(counts.items())), "entries": self.dropped}


@lru_cache(maxsize=1)
def _luma_tables_by_quality() -> dict[int, np.ndarray]:
    """libjpeg's luminance quantisation table at each quality 1-100, as Pillow writes it."""
    tables = {}
    sample = Image.new("RGB", (8, 8))
    for quality in range(1, 101):
        buffer = io.BytesIO()
        sample.save(buffer, format="JPEG", quality=quality)
        with Image.open(buffer) as encoded:
            tables[quality] = np.asarray(encoded.quantization[0], dtype=np.int32)
    return tables


def estimate_jpeg_quality(image: Image.Image) -> int | None:
    """The libjpeg quality whose luminance table is closest to `image`'s (None if not a JPEG)."""
    quantization = getattr(image, "quantization", None)
    if image.format != "JPEG" or not quantization:
        return None
    table = np.asarray(quantization[min(quantization)], dtype=np.int32)
    distances = {quality: int(np.abs(reference - table).sum())
                 for quality, reference in _luma_tables_by_quality().items() if reference.shape == table.shape}
    return min(distances, key=lambda quality: (distances[quality], -quality)) if distances else None


def _bin(value: int, bins: tuple[tuple[int, str], ...]) -> str:
    return [name for lower, name in bins if value >= lower][-1]


def total_variation_distance(first: Counter, second: Counter) -> float:
    """Half the L1 distance between two normalised histograms (0 identical, 1 disjoint)."""
    first_total, second_total = sum(first.values()), sum(second.values())
    if not first_total or not second_total:
        return 0.0
    keys = set(first) | set(second)
    return 0.5 * sum(abs(first[key] / first_total - second[key] / second_total) for key in keys)


@dataclass(frozen=True)
class ImageFileStats:
    format: str
    width: int
    height: int
    jpeg_quality: int | None

    @classmethod
    def of(cls, encoded: bytes | str | Path | Image.Image) -> ImageFileStats:
        """Read the header of an encoded image (bytes or path) without decoding its pixels."""
        if isinstance(encoded, Image.Image):
            return cls(encoded.format or "decoded", encoded.width, encoded.height, estimate_jpeg_quality(encoded))
        source = io.BytesIO(encoded) if isinstance(encoded, bytes) else encoded
        with Image.open(source) as image:
            return cls(image.format or "unknown", image.width, image.height, estimate_jpeg_quality(image))


ATTRIBUTES = ("format", "jpeg_quality", "size")


@dataclass
class ClassBiasReport:
    """Per-class histograms of file format, estimated JPEG quality and exact size (WxH), with bias warnings."""

    histograms: dict[str, dict[int, Counter]] = field(
        default_factory=lambda: {name: {REAL_LABEL: Counter(), FAKE_LABEL: Counter()} for name in ATTRIBUTES})

    def add(self, label: int, stats: ImageFileStats) -> None:
        values = {
            "format": stats.format,
            "jpeg_quality": NOT_JPEG if stats.jpeg_quality is None else _bin(stats.jpeg_quality, JPEG_QUALITY_BINS),
            "size": f"{stats.width}x{stats.height}",
        }
        for name, value in values.items():
            self.histograms[name][label][value] += 1

    def distances(self) -> dict[str, float]:
        return {name: round(total_variation_distance(by_label[REAL_LABEL], by_label[FAKE_LABEL]), 4)
                for name, by_label in self.histograms.items()}

    def warnings(self) -> list[str]:
        messages = []
        for name, distance in self.distances().items():
            if distance > BIAS_WARNING_DISTANCE:
                real, fake = (self._describe(self.histograms[name][label]) for label in (REAL_LABEL, FAKE_LABEL))
                messages.append(f"{name} differs between classes (total variation {distance:.2f} > "
                                f"{BIAS_WARNING_DISTANCE}): real {real}; fake {fake}")
        return messages

    @staticmethod
    def _describe(histogram: Counter, top: int = 3) -> str:
        total = sum(histogram.values()) or 1
        return ", ".join(f"{value} {count / total:.0%}" for value, count in histogram.most_common(top))

    def to_dict(self) -> dict:
        return {
            "histograms": {name: {LABEL_NAMES[label]: dict(sorted(histogram.items()))
                                  for label, histogram in by_label.items()}
                           for name, by_label in self.histograms.items()},
            "total_variation": self.distances(),
            "warnings": self.warnings(),
        }

    def markdown(self) -> str:
        distances = self.distances()
        lines = ["| attribute | real | fake | total variation |", "|---|---|---|---|"]
        for name, by_label in self.histograms.items():
            real, fake = (self._describe(by_label[label], top=6) for label in (REAL_LABEL, FAKE_LABEL))
            lines.append(f"| {name} | {real} | {fake} | {distances[name]:.2f} |")
        warnings = self.warnings()
        for message in warnings:
            lines += ["", f"> **Warning:** {message}"]
        if not warnings:
            lines.append("")
            lines.append(f"No attribute differs between classes by more than {BIAS_WARNING_DISTANCE} (total variation).")
        return "\n".join(lines)


def class_bias_report(records: Iterable[DetectionRecord]) -> ClassBiasReport:
    """The bias report of records' files, reading only their headers (fast: no pixel is decoded)."""
    report = ClassBiasReport()
    for record in records:
        report.add(record.label, ImageFileStats.of(record.image))
    return report
