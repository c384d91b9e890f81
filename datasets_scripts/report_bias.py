"""Print the per-class format / JPEG quality / size report of any detection source, reading file headers only.

Usage: python datasets_scripts/report_bias.py SRC [--layout auto] [--split test] [--json]
Exit status 1 when an attribute differs between real and fake images (a bias a detector could learn).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aigi.data.guards import class_bias_report
from aigi.data.layouts import LAYOUT_NAMES, iter_detection_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder, manifest, Parquet folder or saved dataset")
    parser.add_argument("--layout", choices=LAYOUT_NAMES, default="auto")
    parser.add_argument("--split", default=None, help="only this split of the source")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    report = class_bias_report(iter_detection_records(args.src, layout=args.layout, split=args.split))
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.markdown())
    return 1 if report.warnings() else 0


if __name__ == "__main__":
    raise SystemExit(main())
