"""Collect the metrics.json files of recipes/fiser_external_local.sh into summary.json, summary.md and a
per-generator bar chart (AUROC of each detector on each test generator).

Usage: python recipes/fiser_summary.py RESULTS_DIR --held-out GENERATOR
"""

import argparse
import json
import statistics
from pathlib import Path

RUNS = {"fiser_full": "FiSeR (coarse + fine)", "fiser_coarse": "coarse only"}
SEED_REPEATS = {"fiser_full_seed1": "FiSeR (coarse + fine), training seed 1",
                "fiser_coarse_seed1": "coarse only, training seed 1"}
HEADS = ("knn", "prototype")
SEEDS = range(5)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--held-out", required=True)
    args = parser.parse_args()
    held_out, summary, lines = args.held_out, {}, []

    lines += ["## Heads on the frozen encoders (AUROC / AP; external and local: normalized, external2: normalized_128)",
              "", f"| encoder | head | external test | local test | {held_out} (held out) | external2 test |",
              "|---|---|---:|---:|---:|---:|"]
    repeats = {run: name for run, name in SEED_REPEATS.items() if (args.results / f"{run}_knn").is_dir()}
    for run, run_name in {**RUNS, **repeats}.items():
        for head in HEADS:
            reports = {name: load(args.results / f"{run}_{head}" / name / "metrics.json")
                       for name in ("external", "local", "external2")}
            row = {name: report["pooled"] for name, report in reports.items()}
            row["held_out"] = reports["local"]["per_generator"][held_out]
            summary[f"{run}_{head}"] = row
            cells = [f"{row[name]['auroc']:.3f} / {row[name]['ap']:.3f}"
                     for name in ("external", "local", "held_out", "external2")]
            lines.append(f"| {run_name} | {head} | " + " | ".join(cells) + " |")

    lines += ["", f"## 10-shot RBF SVM on the frozen encoders (mean ± std over seeds {list(SEEDS)})", "",
              f"| encoder | {held_out} AUROC, 0-shot kNN | {held_out} AUROC, 10-shot SVM | "
              "external2 AUROC, 0-shot kNN | external2 AUROC, 10-shot SVM | external2 AP, 10-shot SVM |",
              "|---|---:|---:|---:|---:|---:|"]
    for run, run_name in RUNS.items():
        held_out_aurocs = [load(args.results / f"{run}_svm10" / f"{held_out}_seed{seed}" / "metrics.json")
                           ["per_generator"][held_out]["auroc"] for seed in SEEDS]
        external2 = [load(args.results / f"{run}_svm10" / f"external2_seed{seed}" / "metrics.json")["pooled"]
                     for seed in SEEDS]
        summary[f"{run}_svm10"] = {
            "held_out_auroc": held_out_aurocs, "external2_auroc": [m["auroc"] for m in external2],
            "external2_ap": [m["ap"] for m in external2],
        }
        zero_shot = summary[f"{run}_knn"]
        lines.append(
            f"| {run_name} | {zero_shot['held_out']['auroc']:.3f} | {mean_std(held_out_aurocs)} | "
            f"{zero_shot['external2']['auroc']:.3f} | {mean_std([m['auroc'] for m in external2])} | "
            f"{mean_std([m['ap'] for m in external2])} |"
        )

    per_generator = {
        f"{run}_{head}": {
            **load(args.results / f"{run}_{head}" / "local" / "metrics.json")["per_generator"],
            **load(args.results / f"{run}_{head}" / "external" / "metrics.json")["per_generator"],
        }
        for run in RUNS for head in HEADS
    }
    summary["per_generator_test_auroc"] = {
        name: {generator: metrics["auroc"] for generator, metrics in rows.items()}
        for name, rows in per_generator.items()
    }
    generators = sorted(next(iter(per_generator.values())))
    lines += ["", "## Per-generator test AUROC (each row: the reals of the same test split + that generator's fakes)",
              "", "| detector | " + " | ".join(generators) + " |", "|---|" + "---:|" * len(generators)]
    for name, rows in per_generator.items():
        lines.append(f"| {name} | " + " | ".join(f"{rows[g]['auroc']:.3f}" for g in generators) + " |")
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.results / "summary.md").write_text("\n".join(lines) + "\n")
    plot_per_generator(per_generator, generators, held_out, args.results / "per_generator_auroc.png")
    print("\n".join(lines))


def plot_per_generator(per_generator: dict, generators: list[str], held_out: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(max(8, len(generators) * 0.9), 4.5))
    width = 0.8 / len(per_generator)
    positions = np.arange(len(generators))
    for index, (name, rows) in enumerate(per_generator.items()):
        axis.bar(positions + index * width, [rows[g]["auroc"] for g in generators], width, label=name)
    axis.axhline(0.5, color="0.5", linestyle=":", linewidth=1)
    axis.set_xticks(positions + width * (len(per_generator) - 1) / 2)
    axis.set_xticklabels([f"{g}\n(held out)" if g == held_out else g for g in generators], rotation=30,
                         ha="right", fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("AUROC")
    axis.set_title("FiSeR offline: per-generator test AUROC (normalized protocol)")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
