"""Deterministic train/val/test splits of detection records: stratified, or whole sources per split."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from aigi.data.records import DetectionRecord

SPLIT_STRATEGIES = ("stratified", "source")


def _split_counts(size: int, test_fraction: float, val_fraction: float) -> tuple[int, int]:
    test_count = int(size * test_fraction + 0.5)
    return test_count, min(int(size * val_fraction + 0.5), size - test_count)


def split_records(
    records: Sequence[DetectionRecord],
    *,
    test_fraction: float,
    val_fraction: float = 0.0,
    seed: int = 0,
    by: str = "stratified",
) -> dict[str, list[DetectionRecord]]:
    """Split into "train", "val" and "test" (always all three).

    `by="stratified"`: within each (label, generator) stratum, records ordered by id and shuffled
    with a seed-derived generator; test and val counts are fractions of the stratum rounded half up.
    `by="source"`: whole sources go to one split, so near-duplicates of one source (same camera,
    same generator run) never straddle train and test. Per label, the sources are shuffled and
    assigned to test, then val, while that brings the split closer to its share of the label's images; records
    without a source are their own group. Fails when one source is too large for any split to
    keep a training share (e.g. 96 % of the real images from one dataset): use "stratified".
    Either way the split depends only on the ids, sources and `seed`; splits keep the input order.
    """
    if by not in SPLIT_STRATEGIES:
        raise ValueError(f"by must be one of {SPLIT_STRATEGIES}, got {by!r}")
    if test_fraction < 0 or val_fraction < 0 or test_fraction + val_fraction > 1:
        raise ValueError(
            f"need fractions >= 0 summing to <= 1, got test={test_fraction}, val={val_fraction}"
        )
    id_counts = Counter(record.id for record in records)
    duplicated_ids = [record_id for record_id, count in id_counts.items() if count > 1]
    if duplicated_ids:
        raise ValueError(f"record ids must be unique; duplicated: {duplicated_ids[:5]}")
    assign = _assign_stratified if by == "stratified" else _assign_by_source
    split_of_id = assign(records, test_fraction, val_fraction, seed)
    splits: dict[str, list[DetectionRecord]] = {"train": [], "val": [], "test": []}
    for record in records:
        splits[split_of_id[record.id]].append(record)
    return splits


def _assign_stratified(
    records: Sequence[DetectionRecord], test_fraction: float, val_fraction: float, seed: int
) -> dict[str, str]:
    strata: dict[tuple[int, str], list[DetectionRecord]] = defaultdict(list)
    for record in records:
        strata[(record.label, record.generator)].append(record)
    split_of_id: dict[str, str] = {}
    for (label, generator), members in strata.items():
        members = sorted(members, key=lambda record: record.id)
        random.Random(f"{seed}/{label}/{generator}").shuffle(members)
        test_count, val_count = _split_counts(len(members), test_fraction, val_fraction)
        for position, record in enumerate(members):
            if position < test_count:
                split_of_id[record.id] = "test"
            elif position < test_count + val_count:
                split_of_id[record.id] = "val"
            else:
                split_of_id[record.id] = "train"
    return split_of_id


def _assign_by_source(
    records: Sequence[DetectionRecord], test_fraction: float, val_fraction: float, seed: int
) -> dict[str, str]:
    groups_by_label: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups_by_label[record.label][record.source or f"id:{record.id}"].append(record.id)
    split_of_id: dict[str, str] = {}
    for label, groups in groups_by_label.items():
        size = sum(len(ids) for ids in groups.values())
        test_target, val_target = _split_counts(size, test_fraction, val_fraction)
        largest_source, largest = max(groups.items(), key=lambda item: len(item[1]))
        if test_fraction + val_fraction < 1 and size - len(largest) < test_target + val_target:
            raise ValueError(
                f"source {largest_source!r} holds {len(largest)} of the {size} images of label {label}: "
                f"whole-source splits cannot reach test={test_fraction}, val={val_fraction}; split by='stratified'"
            )
        names = sorted(groups)
        random.Random(f"{seed}/{label}/sources").shuffle(names)
        targets, counts = {"test": test_target, "val": val_target}, {"test": 0, "val": 0}
        for name in names:
            group_size = len(groups[name])
            # A source joins a held-out split when that overshoots its target by at most half the source.
            split = next((held_out for held_out in ("test", "val")
                          if counts[held_out] + group_size / 2 <= targets[held_out]), "train")
            if split != "train":
                counts[split] += group_size
            split_of_id.update(dict.fromkeys(groups[name], split))
    return split_of_id
