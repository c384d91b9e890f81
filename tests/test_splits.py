"""Deterministic train/val/test splits: stratified, and whole sources per split."""

from __future__ import annotations

from collections import Counter

import pytest

from aigi.data.records import DetectionRecord
from aigi.data.splits import split_records


def make_records(counts: dict[tuple[int, str], int], source_size: int | None = None) -> list[DetectionRecord]:
    """`count` records per (label, generator); with `source_size`, consecutive records share a source."""
    return [
        DetectionRecord(image=f"{generator}/{index}.png", label=label, generator=generator,
                        id=f"{generator}/{index}.png",
                        source=f"{generator}-src{index // source_size}" if source_size else "")
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
    with pytest.raises(ValueError, match="by must be"):
        split_records(records, test_fraction=0.5, by="generator")


def test_split_by_source_keeps_each_source_in_one_split() -> None:
    records = make_records({(0, "real"): 200, (1, "sd"): 100}, source_size=10)
    splits = split_records(records, test_fraction=0.2, val_fraction=0.1, seed=0, by="source")
    sources = {name: {record.source for record in split} for name, split in splits.items()}
    assert not (sources["train"] & sources["test"]) and not (sources["train"] & sources["val"])
    assert not (sources["val"] & sources["test"])
    per_label = {name: Counter(record.label for record in split) for name, split in splits.items()}
    # Whole sources of 10 images: each split's share is met to within half a source.
    assert per_label["test"] == {0: 40, 1: 20}
    assert per_label["val"] == {0: 20, 1: 10}
    assert sum(len(split) for split in splits.values()) == 300
    again = split_records(list(reversed(records)), test_fraction=0.2, val_fraction=0.1, seed=0, by="source")
    assert {r.id for r in again["test"]} == {r.id for r in splits["test"]}


def test_split_by_source_refuses_a_dominant_source() -> None:
    records = make_records({(0, "real"): 96}, source_size=96) + make_records({(0, "other"): 4})
    with pytest.raises(ValueError, match="holds 96 of the 100 images"):
        split_records(records, test_fraction=0.2, by="source")
