"""A picture of a run's `log.jsonl`: every logged loss term against the optimizer step."""

import json
from pathlib import Path

from matplotlib.figure import Figure


def plot_training_log(log_file: str | Path, output_png: str | Path) -> None:
    records = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line.strip()]
    terms = [key for key in records[0] if key not in ("step", "epoch", "samples_per_s")] if records else []
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.add_subplot()
    for term in terms:
        axes.plot([record["step"] for record in records], [record[term] for record in records], label=term)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.set_title(Path(log_file).parent.name)
    if terms:
        axes.legend()
    figure.savefig(output_png, dpi=110)
