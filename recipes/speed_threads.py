"""Thread settings on this machine: torch intra-op threads x preprocessing threads, end to end and forward, for one
detector at 256- and 1024-px JPEG inputs, with `aigi.inference.speed.bench_speed` (the measurement of `aigi
bench-speed`). Each setting runs in its own process (torch's thread count is fixed once work has started). Writes one
JSON per setting and `summary.json`, and prints a Markdown table with the 1-minute load average before and after each
run (the numbers mean something only on an otherwise idle machine).

    python recipes/speed_threads.py --output results/speed/threads [--model NAME] [--images 128]

Chosen by it (results/speed/README.md): torch threads = CPUs, preprocessing threads = min(4, CPUs).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from aigi.registry import DEFAULT_DETECTOR

RUN = """
import json, os, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from aigi.inference.speed import bench_speed
load_before = os.getloadavg()[0]
report = bench_speed([sys.argv[2]], images=int(sys.argv[3]), batch_sizes=(1, 32), num_workers=int(sys.argv[4]),
                     input_side=int(sys.argv[5]))
report["environment"]["load_average_1min_before"] = load_before
with open(sys.argv[6], "w") as handle:
    json.dump(report, handle, indent=2)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_DETECTOR, help="default: the bundled default detector")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--torch-threads", default="1,2")
    parser.add_argument("--num-workers", default="0,1,2")
    parser.add_argument("--input-sides", default="256,1024")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    for side in [int(value) for value in args.input_sides.split(",")]:
        for threads in [int(value) for value in args.torch_threads.split(",")]:
            for workers in [int(value) for value in args.num_workers.split(",")]:
                path = args.output / f"side{side}_torch{threads}_workers{workers}.json"
                if not path.is_file():
                    subprocess.run([sys.executable, "-c", RUN, str(threads), args.model, str(args.images),
                                    str(workers), str(side), str(path)], check=True,
                                   env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                report = json.loads(path.read_text())
                [result] = report["models"]
                environment = report["environment"]
                rows.append({"input_side": side, "torch_threads": threads, "num_workers": workers,
                             **{f"{kind}_b{batch}": result[kind][str(batch)]["images_per_s"]
                                for kind in ("forward", "end_to_end") for batch in (1, 32)},
                             "load": f"{environment['load_average_1min_before']:.2f}-"
                                     f"{environment['load_average_1min']:.2f}"})
    (args.output / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| input | torch threads | preprocessing threads | forward b1 | forward b32 | e2e b1 | e2e b32 | "
          "e2e b1 / forward b1 | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(f"| {row['input_side']} px | {row['torch_threads']} | {row['num_workers']} | {row['forward_b1']:.1f} | "
              f"{row['forward_b32']:.1f} | {row['end_to_end_b1']:.1f} | {row['end_to_end_b32']:.1f} | "
              f"{row['end_to_end_b1'] / row['forward_b1']:.2f} | {row['load']} |")


if __name__ == "__main__":
    main()
