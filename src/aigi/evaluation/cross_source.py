"""The cross-source protocol: train on K-1 folds of source groups, score the held-out fold, and summarise.

Each source group (a repository or package, real or fake) sits in exactly one fold (`aigi.data.sources`), so the
held-out fold holds cameras, collections and generator runs the detector never saw. This measures detection; a
random split of the same sources ("in-source") measures source recognition and is never used to choose.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..data.layouts import load_detection_records
from ..data.records import LABEL_NAMES
from ..data.sources import GENERATOR_FAMILIES, assign_source_folds, generator_family, source_group
from .metrics import binary_metrics, threshold_at_fpr

MANIFEST_FIELDS = ("path", "label", "generator", "source")


def _write_manifest(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for record in records:
            writer.writerow({
                "path": Path(record.image).resolve().as_posix(), "label": LABEL_NAMES[record.label],
                "generator": record.generator, "source": record.source,
            })


def write_fold_manifests(pool: str, output_dir: str | Path, num_folds: int, seed: int = 0) -> list[dict[str, Any]]:
    """`fold_k/train.csv` (the other folds) and `fold_k/held_out.csv` per fold, under `output_dir`; returns
    `[{"fold": k, "train": path, "held_out": path, "groups": [...]}, ...]`. Existing manifests are reused."""
    records = load_detection_records(pool)
    fold_of_group = assign_source_folds(records, num_folds, seed)
    folds = []
    for fold in range(num_folds):
        directory = Path(output_dir) / f"fold_{fold}"
        train, held_out = directory / "train.csv", directory / "held_out.csv"
        if not (train.is_file() and held_out.is_file()):
            _write_manifest(train, [r for r in records if fold_of_group[source_group(r)] != fold])
            _write_manifest(held_out, [r for r in records if fold_of_group[source_group(r)] == fold])
        groups = sorted(group for group, index in fold_of_group.items() if index == fold)
        folds.append({"fold": fold, "train": str(train), "held_out": str(held_out), "groups": groups})
    return folds


def summarise_folds(
    fold_predictions: list[tuple[np.ndarray, np.ndarray, list[str]]], *, target_fpr: float = 0.05
) -> dict[str, Any]:
    """Per-fold AUROC/AP, their mean and spread, the pooled out-of-fold metrics, a per-generator-family table, and the
    threshold at `target_fpr` on the out-of-fold reals with the fake and real accuracy it gives on every fold.

    `fold_predictions`: per fold, (labels, P(fake), generators) of the held-out images.
    """
    labels = np.concatenate([fold[0] for fold in fold_predictions])
    scores = np.concatenate([fold[1] for fold in fold_predictions])
    generators = [name for fold in fold_predictions for name in fold[2]]
    threshold = threshold_at_fpr(scores[labels == 0], target_fpr)
    per_fold = []
    for index, (fold_labels, fold_scores, _) in enumerate(fold_predictions):
        metrics = binary_metrics(fold_labels, fold_scores, threshold=threshold)
        per_fold.append({"fold": index, "reals": int((fold_labels == 0).sum()), "fakes": int((fold_labels == 1).sum()),
                         **{key: metrics.get(key) for key in ("auroc", "ap", "real_acc", "fake_acc")}})
    aurocs = [fold["auroc"] for fold in per_fold if fold["auroc"] is not None]
    aps = [fold["ap"] for fold in per_fold if fold["ap"] is not None]
    families = {}
    real_mask = labels == 0
    family_of = np.array([generator_family(name) if label == 1 else "real" for name, label in zip(generators, labels)])
    for family in GENERATOR_FAMILIES:
        mask = real_mask | (family_of == family)
        if (family_of == family).any():
            metrics = binary_metrics(labels[mask], scores[mask], threshold=threshold)
            families[family] = {"fakes": int((family_of == family).sum()), "auroc": metrics.get("auroc"),
                                "ap": metrics.get("ap"), "fake_acc": metrics.get("fake_acc")}
    pooled = binary_metrics(labels, scores, threshold=threshold)
    return {
        "mean_auroc": float(np.mean(aurocs)) if aurocs else None,
        "std_auroc": float(np.std(aurocs)) if aurocs else None,
        "mean_ap": float(np.mean(aps)) if aps else None,
        "pooled": {key: pooled.get(key) for key in ("auroc", "ap", "real_acc", "fake_acc")},
        "threshold_at_target_fpr": float(threshold), "target_fpr": target_fpr,
        "per_fold": per_fold, "per_family": families,
        "images": dict(Counter(LABEL_NAMES[int(label)] for label in labels)),
    }


def write_dataset_holdout_manifests(pool: str, output_dir: str | Path, dataset: str) -> dict[str, Any]:
    """`train.csv` / `held_out.csv` under `output_dir/<dataset>/` that hold out one dataset of the pool (its `dataset`
    column) together with every source group it shares with other datasets, so no held-out source is trained on."""
    with open(pool, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if "dataset" not in {key for row in rows[:1] for key in row}:
        raise ValueError(f"{pool} has no 'dataset' column; build it with datasets_scripts/build_training_pool.py")
    if not any(row["dataset"] == dataset for row in rows):
        raise ValueError(f"no dataset {dataset!r} in {pool}")
    records = load_detection_records(pool)
    held_groups = {source_group(record) for record, row in zip(records, rows) if row["dataset"] == dataset}
    directory = Path(output_dir) / dataset
    train, held_out = directory / "train.csv", directory / "held_out.csv"
    if not (train.is_file() and held_out.is_file()):
        _write_manifest(train, [record for record in records if source_group(record) not in held_groups])
        _write_manifest(held_out, [record for record in records if source_group(record) in held_groups])
    return {"holdout": dataset, "train": str(train), "held_out": str(held_out), "groups": sorted(held_groups)}
