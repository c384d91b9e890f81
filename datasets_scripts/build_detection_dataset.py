"""Build a self-contained Hugging Face detection dataset from any layout aigi can read.

Usage: python datasets_scripts/build_detection_dataset.py SRC OUT [--protocol normalized]
       [--split-test 0.2 --seed 0]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import datasets

from aigi.data.sources import dataset_card, load_detection_records, records_to_dataset, split_records
from aigi.data.transforms import PROTOCOLS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="source folder, manifest CSV or saved HF dataset")
    parser.add_argument("out", type=Path, help="output folder for save_to_disk")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                        help="evaluation protocol baked into the stored images (default: original bytes)")
    parser.add_argument("--split-test", type=float, default=0.0,
                        help="fraction held out as a 'test' split, stratified by (label, generator)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    parser.add_argument("--source-split", default=None,
                        help="split to read when SRC is a saved DatasetDict (default: test or the only one)")
    parser.add_argument("--pretty-name", default=None, help="dataset card title (default: from SRC)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        if not args.overwrite:
            raise SystemExit(f"{args.out} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(args.out)
    records = load_detection_records(args.src, split=args.source_split)
    if args.split_test > 0:
        splits = split_records(records, test_fraction=args.split_test, seed=args.seed)
        del splits["val"]
        dataset = datasets.DatasetDict({
            name: records_to_dataset(split, args.protocol) for name, split in splits.items()
        })
    else:
        splits = {"all": records}
        dataset = records_to_dataset(records, args.protocol)
    dataset.save_to_disk(str(args.out))
    pretty_name = args.pretty_name or f"aigi detection data: {args.src.resolve().name}"
    card = dataset_card(splits, pretty_name=pretty_name, protocol=args.protocol)
    (args.out / "README.md").write_text(card, encoding="utf-8")
    print(f"wrote {sum(len(split) for split in splits.values())} images to {args.out}")


if __name__ == "__main__":
    main()
