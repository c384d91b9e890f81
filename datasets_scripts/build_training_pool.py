"""Build aigi's source-labelled training pool from every manifest under a data root.

Usage: python datasets_scripts/build_training_pool.py [ROOT] OUT [--folds 5] [--seed 0] [--reserved FILE]

Every `manifest*.csv` / `manifest*.jsonl` under ROOT (default ../shared/data) joins, so sets added later need no code
change. Records keep their `source`; exact pixel duplicates (within and across sets, e.g. a set's two manifests that
list the same files) are kept once; records whose source names a repository, package or image set of the reserved
list (RESERVED_SOURCES.md under ROOT) are refused. OUT gets:

- `manifest.csv`: path (relative to OUT), label, generator, source, dataset, group (the repository: the unit a
  cross-source split never cuts), family (generator family), fold (the cross-source fold of the group);
- `README.md`: a dataset card with per-dataset, per-fold and per-family counts and the class bias report;
- `build_report.json`: manifests read, duplicates and reserved records dropped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from collections import Counter
from pathlib import Path

from aigi.data.guards import DuplicateFilter, class_bias_report, pixel_hash
from aigi.data.layouts import read_manifest
from aigi.data.records import LABEL_NAMES, load_record_image
from aigi.data.sources import assign_source_folds, generator_family, source_group
from aigi.image_io import ImageLoadError

MANIFEST_PATTERN = re.compile(r"^manifest[^/]*\.(csv|jsonl)$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="[ROOT] OUT")
    parser.add_argument("--folds", type=int, default=5, help="cross-source folds (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reserved", type=Path, help="reserved-source list (default ROOT/RESERVED_SOURCES.md)")
    args = parser.parse_args(argv)
    if len(args.paths) > 2:
        parser.error("give at most ROOT and OUT")
    args.root = Path(args.paths[0] if len(args.paths) == 2 else "../shared/data")
    args.out = Path(args.paths[-1])
    return args


def find_manifests(root: Path) -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith((".", "_")))
        found += [Path(directory) / name for name in sorted(files) if MANIFEST_PATTERN.match(name)]
    return found


def reserved_names(path: Path) -> list[str]:
    """Repositories (owner/name), Debian packages and image sets the reserved list names."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    names = re.findall(r"\b[\w.-]+/[\w.-]+\b", text)
    for line in text.splitlines():
        for prefix in ("- Debian packages:", "- Image sets:"):
            if line.startswith(prefix):
                names += [item.split("(")[0].strip() for item in line[len(prefix):].split(",")]
    return sorted({name for name in names if name and not name.startswith("data/")})


def is_reserved(source: str, reserved: list[str]) -> bool:
    lowered = source.lower()
    return any(re.search(rf"(^|[\s:/(]){re.escape(name.lower())}($|[\s/@),])", lowered) for name in reserved)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    reserved = reserved_names(args.reserved or args.root / "RESERVED_SOURCES.md")
    manifests = find_manifests(args.root)
    if not manifests:
        raise SystemExit(f"no manifest*.csv / manifest*.jsonl under {args.root}")
    duplicates, records, dataset_of = DuplicateFilter(), [], {}
    report = {"manifests": [], "reserved": 0, "unreadable": []}
    for manifest in manifests:
        dataset = manifest.parent.relative_to(args.root).as_posix()
        kept = 0
        for record in read_manifest(manifest):
            if is_reserved(record.source, reserved):
                report["reserved"] += 1
                continue
            try:
                image = load_record_image(record)
            except ImageLoadError as error:
                report["unreadable"].append({"path": record.image, "error": str(error)})
                continue
            path = Path(os.path.relpath(Path(record.image).resolve(), args.out.resolve())).as_posix()
            if not duplicates.admit(pixel_hash(image), record_id=path, split="pool", label=record.label):
                continue
            record = type(record)(image=record.image, label=record.label, generator=record.generator,
                                  source=record.source, id=path)
            records.append(record)
            dataset_of[record.id] = dataset
            kept += 1
        report["manifests"].append({"manifest": str(manifest), "kept": kept})
        print(f"{manifest}: {kept} images kept", flush=True)
    fold_of_group = assign_source_folds(records, args.folds, args.seed)
    rows = [{
        "path": record.id, "label": LABEL_NAMES[record.label], "generator": record.generator,
        "source": record.source, "dataset": dataset_of[record.id], "group": source_group(record),
        "family": "real" if record.label == 0 else generator_family(record.generator),
        "fold": fold_of_group[source_group(record)],
    } for record in records]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report.update({"duplicates": duplicates.summary(), "images": len(rows), "folds": args.folds, "seed": args.seed, "reserved_names": reserved})
    (args.out / "build_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(pool_card(rows, class_bias_report(records), args), encoding="utf-8")
    print(f"{args.out}/manifest.csv: {len(rows)} images ({len(duplicates.dropped)} duplicates, "
          f"{report['reserved']} reserved, {len(report['unreadable'])} unreadable dropped)")


def _table(title: str, counts: Counter, keys: list) -> list[str]:
    lines = [f"| {title} | real | fake |", "|---|---:|---:|"]
    lines += [f"| {key} | {counts[(key, 'real')]} | {counts[(key, 'fake')]} |" for key in keys]
    return lines + [""]


def pool_card(rows: list[dict], bias, args: argparse.Namespace) -> str:
    by_dataset = Counter((row["dataset"], row["label"]) for row in rows)
    by_fold = Counter((row["fold"], row["label"]) for row in rows)
    families = Counter(row["family"] for row in rows if row["label"] == "fake")
    groups = {label: len({row["group"] for row in rows if row["label"] == label}) for label in LABEL_NAMES}
    lines = [
        "# aigi training pool (source-labelled)", "",
        f"Built by `python datasets_scripts/build_training_pool.py {args.root} {args.out} --folds {args.folds} "
        f"--seed {args.seed}`: every manifest under the root, exact pixel duplicates kept once, reserved sources "
        "refused. `group` is the repository or package an image came from; each group is in exactly one of the "
        f"{args.folds} cross-source folds (`fold`), so a fold's images come from sources no other fold has.", "",
        f"{len(rows)} images: {groups['real']} real and {groups['fake']} fake source groups.", "",
        *_table("dataset", by_dataset, sorted({row["dataset"] for row in rows})),
        *_table("fold", by_fold, sorted({row["fold"] for row in rows})),
        "| generator family | fake images |", "|---|---:|",
        *[f"| {family} | {count} |" for family, count in sorted(families.items())], "",
        "## Class bias report", "", bias.markdown(), "",
        "Real photos skew to JPEG and fakes to PNG, and sizes differ: train with the same codec and resize "
        "augmentation on both classes (`--augment_preset codec`) and evaluate on normalised copies "
        "(`--protocol normalized`).", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
