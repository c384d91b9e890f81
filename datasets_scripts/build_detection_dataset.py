"""Build a self-contained Hugging Face detection dataset from any layout aigi reads.

Usage: python datasets_scripts/build_detection_dataset.py SRC OUT [--layout auto] [--protocol normalized]
       [--split-test 0.2 --split-val 0.1 --split-by stratified|source --seed 0] [--push-to-hub REPO]

OUT gets a `save_to_disk` DatasetDict, Parquet shards in `data/`, a dataset card (README.md) with the class
bias report, and build_report.json (skipped files, dropped duplicates, per-class format/quality/size histograms).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from huggingface_hub import DatasetCard

from aigi.data.build import build_detection_dataset
from aigi.data.layouts import LAYOUT_NAMES
from aigi.data.splits import SPLIT_STRATEGIES
from aigi.data.transforms import PROTOCOLS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="source folder, manifest (.csv/.jsonl), Parquet folder or saved dataset")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--layout", choices=LAYOUT_NAMES, default="auto", help="source layout (default: detect)")
    parser.add_argument("--source-split", default=None, help="read only this split of the source")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                        help="evaluation protocol baked into the stored images (default: original bytes)")
    parser.add_argument("--split-test", type=float, default=0.0,
                        help="fraction held out as a new 'test' split (default: keep the source's splits)")
    parser.add_argument("--split-val", type=float, default=0.0, help="fraction held out as a new 'val' split")
    parser.add_argument("--split-by", choices=SPLIT_STRATEGIES, default="stratified",
                        help="stratified by (label, generator), or whole sources per split")
    parser.add_argument("--seed", type=int, default=0, help="seed of a new split")
    parser.add_argument("--keep-duplicates", action="store_true", help="do not drop exact pixel duplicates")
    parser.add_argument("--no-parquet", action="store_true", help="skip the Parquet shards")
    parser.add_argument("--pretty-name", default=None, help="dataset card title (default: from SRC)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None,
                        help="also upload the dataset and its card to this Hub dataset repo (needs a token)")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create a private repo")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        if not args.overwrite:
            raise SystemExit(f"{args.out} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(args.out)
    dataset = build_detection_dataset(
        args.src, args.out, layout=args.layout, source_split=args.source_split, protocol=args.protocol,
        test_fraction=args.split_test, val_fraction=args.split_val, split_by=args.split_by, seed=args.seed,
        deduplicate=not args.keep_duplicates, parquet=not args.no_parquet, pretty_name=args.pretty_name,
    )
    report = json.loads((args.out / "build_report.json").read_text(encoding="utf-8"))
    for which in ("original", "stored"):
        for warning in report[f"{which}_bias"]["warnings"]:
            print(f"bias warning ({which} images): {warning}")
    print(f"wrote {', '.join(f'{name}={len(split)}' for name, split in dataset.items())} images to {args.out}")
    if args.push_to_hub:
        dataset.push_to_hub(args.push_to_hub, private=args.private)
        DatasetCard.load(args.out / "README.md").push_to_hub(args.push_to_hub, repo_type="dataset")


if __name__ == "__main__":
    main()
