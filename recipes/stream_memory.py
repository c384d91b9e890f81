"""Evidence that `aigi detect --output` streams with constant memory: peak RSS after 1k, ..., N images.

Writes `--count` small generated JPEGs to a temporary folder, scores them with the streaming path of `aigi detect`
(`iter_detection_rows` + `RowWriter`, the same code as `aigi detect FOLDER --output rows.jsonl`) and records the
process's peak resident memory every 1,000 rows. Example (the figures of results/speed/stream_10k.json; the model
is a random-weight ResNet-18 RescaleCL detector, written with SIDE = 64 by the command in results/speed/README.md):

    OMP_NUM_THREADS=2 python recipes/stream_memory.py --model runs/speed/resnet18_64 --count 10000 \
        --output results/speed/stream_10k.json
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from transformers import pipeline

from aigi.inference.speed import peak_rss_mib, write_benchmark_images
from aigi.inference.inputs import FILE_FIELDS, file_entries
from aigi.inference.rows import RowWriter, iter_detection_rows
from aigi.image_io import collect_image_files
from aigi.registry import resolve_model

CHECKPOINT_EVERY = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Detector (bundled name or directory).")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--output", required=True, help="JSON file of the figures.")
    args = parser.parse_args()

    pipe = pipeline("ai-image-detection", model=resolve_model(args.model))
    with tempfile.TemporaryDirectory(prefix="aigi-stream-") as work_dir:
        write_benchmark_images(Path(work_dir) / "images", args.count, args.image_size)
        files = collect_image_files([Path(work_dir) / "images"])
        checkpoints = [{"rows": 0, "peak_rss_mib": peak_rss_mib(), "seconds": 0.0}]
        start = time.perf_counter()
        rows = iter_detection_rows(
            pipe, file_entries(files), batch_size=args.batch_size, num_workers=args.num_workers, total=len(files),
            description="stream",
        )
        errors = 0
        with RowWriter(Path(work_dir) / "rows.jsonl", FILE_FIELDS) as writer:
            for row in rows:
                writer.write(row)
                errors += row["error"] is not None
                if writer.rows % CHECKPOINT_EVERY == 0:
                    checkpoints.append({"rows": writer.rows, "peak_rss_mib": peak_rss_mib(),
                                        "seconds": time.perf_counter() - start})
        rows_file_bytes = (Path(work_dir) / "rows.jsonl").stat().st_size
    by_rows = {checkpoint["rows"]: checkpoint["peak_rss_mib"] for checkpoint in checkpoints}
    report = {
        "model": args.model, "image_size": args.image_size, "count": args.count, "batch_size": args.batch_size,
        "num_workers": args.num_workers, "errors": errors, "rows_file_bytes": rows_file_bytes,
        "checkpoints": checkpoints,
        "peak_rss_growth_mib_from_1k": by_rows[max(by_rows)] - by_rows.get(CHECKPOINT_EVERY, by_rows[0]),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(json.dumps({key: report[key] for key in ("count", "errors", "peak_rss_growth_mib_from_1k")}))
    for checkpoint in checkpoints:
        print(f"{checkpoint['rows']:>6} rows  peak RSS {checkpoint['peak_rss_mib']:.1f} MiB  "
              f"{checkpoint['seconds']:.1f} s")


if __name__ == "__main__":
    main()
