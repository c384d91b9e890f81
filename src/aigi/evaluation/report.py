"""Evaluation reports: metrics.json, metrics.md, predictions.csv, ROC and score-histogram plots for one protocol;
robustness.json, robustness.md and robustness.png comparing several protocols."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from aigi.data.transforms import describe_protocol, protocol_family
from aigi.evaluation.metrics import generator_masks, grouped_metrics, normalize_generators

# Above this many generators the histogram figure shows only the pooled panel.
MAX_HISTOGRAM_GENERATORS = 6

_TABLE_COLUMNS = (
    ("n", "n"),
    ("AUROC", "auroc"),
    ("AP", "ap"),
    ("Acc", "acc"),
    ("real-acc", "real_acc"),
    ("fake-acc", "fake_acc"),
    ("TPR@5%FPR", "tpr_at_5fpr"),
    ("EER", "eer"),
    ("ECE", "ece"),
)
_MISSING = "–"


def _format_cell(value: float | int | None) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def format_markdown_table(result: dict[str, Any]) -> str:
    """Markdown table of a ``grouped_metrics``/``write_report`` result: one row per
    generator, then the pooled row; None is shown as "–"."""
    header = "| generator | " + " | ".join(title for title, _ in _TABLE_COLUMNS) + " |"
    divider = "|---|" + "---:|" * len(_TABLE_COLUMNS)
    rows = [*result["per_generator"].items(), ("pooled", result["pooled"])]
    lines = [header, divider]
    for name, metrics in rows:
        cells = [_format_cell(metrics[key]) for _, key in _TABLE_COLUMNS]
        escaped_name = name.replace("|", r"\|")
        lines.append(f"| {escaped_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_predictions(
    path: Path,
    labels: np.ndarray,
    scores: np.ndarray,
    generators: list[str],
    ids: Sequence[str] | None,
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = ["index", "label", "generator", "score"]
        writer.writerow(["id", *columns] if ids is not None else columns)
        for index, (label, generator, score) in enumerate(zip(labels, generators, scores)):
            row = [index, int(label), generator, float(score)]
            writer.writerow([str(ids[index]), *row] if ids is not None else row)


def _subsets(
    labels: np.ndarray, generators: list[str], result: dict[str, Any]
) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """(name, row mask, metrics) for the pooled set, first, and each generator."""
    pooled = ("pooled", np.ones(labels.size, dtype=bool), result["pooled"])
    masks = generator_masks(labels, generators)
    return [pooled, *((name, masks[name], result["per_generator"][name]) for name in masks)]


def _roc_figure(
    labels: np.ndarray,
    scores: np.ndarray,
    subsets: list[tuple[str, np.ndarray, dict[str, Any]]],
    title: str,
) -> Figure:
    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    for position, (name, mask, metrics) in enumerate(subsets):
        if metrics["auroc"] is None:
            continue
        fpr, tpr, _ = roc_curve(labels[mask], scores[mask])
        is_pooled = position == 0
        style = {"color": "black", "linewidth": 2.5} if is_pooled else {"linewidth": 1.5}
        axes.plot(fpr, tpr, label=f"{name} (AUROC {metrics['auroc']:.3f})", **style)
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate (reals flagged fake)",
        ylabel="true positive rate (fakes caught)",
        title=title or "ROC",
    )
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(0.5, 0.5, "ROC undefined: needs real and fake images", ha="center")
    return figure


def _plot_score_histogram(
    axes: Axes, labels: np.ndarray, scores: np.ndarray, bins: np.ndarray, threshold: float, name: str
) -> None:
    for label, class_name, color in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
        class_scores = scores[labels == label]
        if class_scores.size:
            axes.hist(
                class_scores,
                bins=bins,
                density=True,
                alpha=0.5,
                color=color,
                label=f"{class_name} (n={class_scores.size})",
            )
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axes.set(title=name, xlabel="score = P(fake)", ylabel="density")
    axes.legend(fontsize="small")


def _histogram_figure(
    labels: np.ndarray,
    scores: np.ndarray,
    subsets: list[tuple[str, np.ndarray, dict[str, Any]]],
    threshold: float,
    title: str,
) -> Figure:
    generator_count = len(subsets) - 1
    # One generator's panel would repeat the pooled one; many would be unreadable.
    panels = subsets if 1 < generator_count <= MAX_HISTOGRAM_GENERATORS else subsets[:1]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    bins = np.linspace(float(scores.min(initial=0.0)), float(scores.max(initial=1.0)), 41)
    for axes, (name, mask, _) in zip(grid.flat, panels):
        _plot_score_histogram(axes, labels[mask], scores[mask], bins, threshold, name)
    for unused in grid.flat[len(panels) :]:
        unused.set_axis_off()
    if title:
        figure.suptitle(title)
    return figure


def write_report(
    output_dir: str | Path,
    labels: ArrayLike,
    scores: ArrayLike,
    generators: Sequence[str | None],
    threshold: float = 0.5,
    title: str = "",
    ids: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an evaluation report into ``output_dir`` and return its metrics.

    Files: ``metrics.json`` (``{"pooled", "per_generator", "threshold"}`` plus the scoring ``settings``
    given, e.g. ``num_crops``; strict JSON with null for undefined metrics), ``metrics.md``, ``predictions.csv`` (columns
    ``index,label,generator,score``, preceded by ``id`` when ``ids`` is given), ``roc.png``
    and ``score_histogram.png``. Per-generator entries use all reals plus that generator's
    fakes (see ``grouped_metrics``).
    """
    result: dict[str, Any] = {
        **grouped_metrics(labels, scores, generators, threshold),
        "threshold": float(threshold),
        **(settings or {}),
    }
    # grouped_metrics has validated the inputs, so these conversions are safe.
    label_array = np.asarray(labels, dtype=np.int64)
    score_array = np.asarray(scores, dtype=np.float64)
    generator_names = normalize_generators(generators)
    if ids is not None and len(ids) != label_array.size:
        raise ValueError(f"ids has {len(ids)} entries, labels has {label_array.size}")

    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(
        json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    heading = f"# {title}\n\n" if title else ""
    (directory / "metrics.md").write_text(
        f"{heading}{format_markdown_table(result)}\n\n"
        f"Decision threshold: {threshold:.3f} (score >= threshold is fake). "
        "Each generator row uses all real images plus that generator's fakes.\n",
        encoding="utf-8",
    )
    _write_predictions(
        directory / "predictions.csv", label_array, score_array, generator_names, ids
    )
    subsets = _subsets(label_array, generator_names, result)
    _roc_figure(label_array, score_array, subsets, title).savefig(directory / "roc.png", dpi=120)
    _histogram_figure(label_array, score_array, subsets, threshold, title).savefig(
        directory / "score_histogram.png", dpi=120
    )
    return result


def robustness_summary(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Protocol -> family, description, pooled AUROC, AP, accuracy at the threshold and per-generator AUROC,
    from the ``write_report`` result of each protocol (in the given order)."""
    return {
        protocol: {
            "family": protocol_family(protocol),
            "description": describe_protocol(protocol),
            "auroc": result["pooled"]["auroc"],
            "ap": result["pooled"]["ap"],
            "acc": result["pooled"]["acc"],
            "threshold": result["threshold"],
            "per_generator_auroc": {name: metrics["auroc"] for name, metrics in result["per_generator"].items()},
        }
        for protocol, result in results.items()
    }


def format_robustness_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown table of a ``robustness_summary``: one row per protocol, pooled metrics then AUROC per generator."""
    generators = sorted({name for row in summary.values() for name in row["per_generator_auroc"]})
    titles = ["protocol", "AUROC", "AP", "Acc", *(f"AUROC {name}" for name in generators)]
    header = "| " + " | ".join(title.replace("|", r"\|") for title in titles) + " |"
    lines = [header, "|---|" + "---:|" * (len(titles) - 1)]
    for protocol, row in summary.items():
        per_generator = [row["per_generator_auroc"].get(name) for name in generators]
        cells = [_format_cell(value) for value in (row["auroc"], row["ap"], row["acc"], *per_generator)]
        lines.append(f"| {protocol} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _robustness_figure(summary: dict[str, dict[str, Any]], title: str) -> Figure:
    """AUROC and AP bars per protocol, protocols grouped by degradation family."""
    families = list(dict.fromkeys(row["family"] for row in summary.values()))
    positions: dict[str, float] = {}
    groups: list[tuple[str, list[float]]] = []
    position = 0.0
    for family in families:
        members = [protocol for protocol, row in summary.items() if row["family"] == family]
        groups.append((family, [position + index for index in range(len(members))]))
        positions.update({protocol: position + index for index, protocol in enumerate(members)})
        position += len(members) + 0.6  # a gap between families
    figure = Figure(figsize=(max(6.0, 0.7 * len(positions) + 2.0), 4.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.38
    for offset, key, label in ((-width / 2, "auroc", "AUROC"), (width / 2, "ap", "AP")):
        heights = [math.nan if summary[protocol][key] is None else summary[protocol][key] for protocol in positions]
        axes.bar([x + offset for x in positions.values()], heights, width, label=label)
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (AUROC)")
    for family, xs in groups:
        axes.text(sum(xs) / len(xs), 1.04, family, ha="center", va="bottom", fontsize="small")
    axes.set_xticks(list(positions.values()), list(positions), rotation=40, ha="right")
    axes.set_yticks(np.linspace(0.0, 1.0, 6))
    axes.set(ylim=(0, 1.12), ylabel="pooled metric", title=title or "robustness")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def write_robustness_report(output_dir: str | Path, results: dict[str, dict[str, Any]], title: str = "") -> dict:
    """Write ``robustness.json`` (the ``robustness_summary``), ``robustness.md`` and ``robustness.png`` into
    ``output_dir`` from the ``write_report`` result of each protocol; returns the summary."""
    summary = robustness_summary(results)
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "robustness.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    heading = f"# {title}\n\n" if title else ""
    threshold = next(iter(summary.values()))["threshold"]  # one threshold for every protocol
    descriptions = "\n".join(f"- `{protocol}`: {row['description']}" for protocol, row in summary.items())
    (directory / "robustness.md").write_text(
        f"{heading}{format_robustness_table(summary)}\n\n"
        f"Accuracy at the decision threshold {threshold:.3f} "
        "(score >= threshold is fake). Each generator's AUROC uses all real images plus that generator's fakes. "
        "Every protocol is applied identically to real and fake images.\n\n"
        f"Protocols:\n\n{descriptions}\n",
        encoding="utf-8",
    )
    _robustness_figure(summary, title).savefig(directory / "robustness.png", dpi=120)
    return summary
