"""Write one manifest listing the images of several labelled sources (e.g. two train splits).

Usage: python datasets_scripts/merge_sources.py OUT.csv SRC [SRC ...] [--exclude-generators a,b]

Each SRC is any layout `aigi.data.load_detection_records` reads (files, not encoded bytes). OUT.csv gets
`path,label,generator,source` with paths relative to its own folder, so the images stay where they are.
`--exclude-generators` drops the fakes of those generators (a leave-one-generator-out training set).
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import Counter
from pathlib import Path

from aigi.data.layouts import load_detection_records
from aigi.data.records import LABEL_NAMES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="manifest CSV to write")
    parser.add_argument("sources", nargs="+", help="labelled sources (folders, manifests)")
    parser.add_argument("--exclude-generators", default="", help="comma-separated generators whose fakes are left out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    excluded = {name.strip() for name in args.exclude_generators.split(",") if name.strip()}
    rows, seen_generators = [], set()
    for source in args.sources:
        for record in load_detection_records(source):
            if not isinstance(record.image, str):
                raise SystemExit(f"{source} holds encoded images, not files; merge only file-based sources")
            seen_generators.add(record.generator)
            if record.label == 1 and record.generator in excluded:
                continue
            rows.append({
                "path": Path(os.path.relpath(Path(record.image).resolve(), args.out.parent.resolve())).as_posix(),
                "label": LABEL_NAMES[record.label], "generator": record.generator,
                "source": record.source or Path(source).name,
            })
    unknown = excluded - seen_generators
    if unknown:
        raise SystemExit(f"no generator named {sorted(unknown)} in the sources")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "generator", "source"])
        writer.writeheader()
        writer.writerows(rows)
    counts = Counter(row["generator"] for row in rows)
    print(f"{args.out}: {len(rows)} images, " + ", ".join(f"{name}={count}" for name, count in sorted(counts.items())))


if __name__ == "__main__":
    main()
