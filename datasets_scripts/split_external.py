"""Write a deterministic train/val/test split of a real/fake image collection.

Usage: python datasets_scripts/split_external.py SRC OUT [--seed 0]

SRC is any layout `aigi.data.load_detection_records` reads (e.g. the external dev data).
OUT gets `{train,val,test}/real/*` and `{train,val,test}/fake/<generator>/*` (hard links,
or copies across file systems), a `manifest.csv` per split, and `split.json` with the ids
of each split. Fractions 0.7/0.1/0.2, stratified by (label, generator).

`--reals-follow SPLIT.json`: real images cut from the photos of an earlier split (files named
`<photo stem>_crop<k>.<ext>`, as synthesize_generators.py writes them) go to their photo's split,
so no photo has crops on both sides of two splits used together; the fakes are split as usual.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

from aigi.data.layouts import load_detection_records
from aigi.data.records import LABEL_NAMES, DetectionRecord
from aigi.data.splits import split_records

TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
CROP_SUFFIX = re.compile(r"_crop\d+$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="source collection (folder or manifest)")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it holds an earlier split (has split.json)")
    parser.add_argument("--reals-follow", type=Path, default=None,
                        help="split.json of the split of the photos the real crops were cut from")
    return parser.parse_args(argv)


def link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def relative_destination(record: DetectionRecord) -> Path:
    """Where a record goes inside a split folder: real/<file> or fake/<generator>/<file>."""
    file_name = Path(record.image).name
    return Path("real", file_name) if record.label == 0 else Path("fake", record.generator, file_name)


def write_split(split_dir: Path, records: list[DetectionRecord]) -> None:
    destinations = [relative_destination(record) for record in records]
    clashes = [str(path) for path, count in Counter(destinations).items() if count > 1]
    if clashes:
        raise SystemExit(f"several images would land on the same file: {clashes[:5]}")
    rows = []
    for record, destination in zip(records, destinations, strict=True):
        link_or_copy(Path(record.image), split_dir / destination)
        rows.append({"path": destination.as_posix(), "label": LABEL_NAMES[record.label],
                     "generator": record.generator, "source": record.source})
    with (split_dir / "manifest.csv").open("w", newline="", encoding="utf-8") as manifest_file:
        writer = csv.DictWriter(manifest_file, fieldnames=["path", "label", "generator", "source"])
        writer.writeheader()
        writer.writerows(rows)


def photo_stem(record: DetectionRecord) -> str:
    """`<photo stem>` of a crop file `<photo stem>_crop<k>.<ext>` (the file's own stem otherwise)."""
    stem = Path(record.image).stem
    return CROP_SUFFIX.sub("", stem)


def with_reals_following(splits: dict[str, list[DetectionRecord]],
                         photo_ids: dict[str, list[str]]) -> dict[str, list[DetectionRecord]]:
    """The same fakes per split; each real moved to the split of the photo it was cut from."""
    split_of_photo = {Path(photo_id).stem: name for name, ids in photo_ids.items() for photo_id in ids}
    reals = [record for split in splits.values() for record in split if record.label == 0]
    unmatched = [record.id for record in reals if photo_stem(record) not in split_of_photo]
    if unmatched:
        raise SystemExit(f"{len(unmatched)} real images match no photo of the split, e.g. {unmatched[:3]}")
    followed = {name: [record for record in split if record.label == 1] for name, split in splits.items()}
    for record in sorted(reals, key=lambda record: record.id):
        followed[split_of_photo[photo_stem(record)]].append(record)
    return followed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        if not (args.overwrite and (args.out / "split.json").is_file()):
            raise SystemExit(f"{args.out} is not empty; pass --overwrite to replace an earlier split")
        shutil.rmtree(args.out)
    records = load_detection_records(args.src)
    if not all(isinstance(record.image, str) for record in records):
        raise SystemExit(f"{args.src} is not a folder of image files")
    splits = split_records(records, test_fraction=TEST_FRACTION, val_fraction=VAL_FRACTION,
                           seed=args.seed)
    if args.reals_follow is not None:
        splits = with_reals_following(splits, json.loads(args.reals_follow.read_text())["ids"])
    for split_name, split in splits.items():
        write_split(args.out / split_name, split)
    summary = {
        "source": args.src.resolve().name,
        "seed": args.seed,
        "fractions": {"train": round(1 - TEST_FRACTION - VAL_FRACTION, 6), "val": VAL_FRACTION,
                      "test": TEST_FRACTION},
        "ids": {split_name: [record.id for record in split] for split_name, split in splits.items()},
    }
    (args.out / "split.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    for split_name, split in splits.items():
        counts = Counter(record.generator for record in split)
        print(f"{split_name}: {len(split)} " + ", ".join(f"{g}={n}" for g, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
