"""`aigi benchmark --config FILE`: train (or load) every listed detector, plus its zero-fake variant, evaluate each
on each dataset and protocol, and write `leaderboard.md`, `results.json` and plots. Resumable: a finished training,
head fit or evaluation is found on disk and not repeated; a failed one is reported and the others go on.

The YAML (or JSON) config, paths relative to the working directory:

```yaml
output_dir: runs/benchmark          # training runs (runs/<name>/) and evaluations (eval/<name>/<dataset>/)
results_dir: results/benchmark      # leaderboard.md, results.json, plots (default: output_dir)
train_data: runs/train.csv          # default --train_data of every training below
jobs: 2                             # trainings side by side, each with threads_per_job intra-op threads
threads_per_job: 1
stages:                             # shared prerequisites, trained once, in order; "{stage:NAME}" is NAME's final/
  dair: {task: dair, patch_size: 96, max_steps: 400}
zero_fake:                          # added to the training flags of each trained detector's zero-fake variant
  self_augmentation_dair: "{stage:dair}"
  p_aug: 0.5
datasets:                           # protocols: one name, a comma-separated list, or "robustness"
  external: {data: runs/external_split/test, protocols: robustness}
  local: {data: runs/local_split/test, protocols: normalized, held_out: [conv_vae]}
selection:                          # the default detector: best of the trained ones here, never on a test split
  data: runs/val.csv
  protocol: normalized
  target_fpr: 0.05                  # its threshold: this FPR on the selection data's real images
  max_size_mb: 30
detectors:
  npr: {train: {task: classify, family: npr, image_size: 128, patch_size: 64, max_steps: 300}}
  fiser: {train: {task: fiser, backbone: resnet10t}, head: {head: knn, protocol: normalized}}
  synerdetect: {model: runs/synerdetect/final}      # evaluated only (never a zero-fake or default candidate)
```

With `cross_source` (the protocol every choice is made by), each trained detector is also trained on K-1 folds of
the pool's source groups and scored on the held-out fold, once per fold, and on each `holdouts` dataset (its own
sources held out); the default detector is the one with the highest mean cross-source AUROC, its threshold the
`target_fpr` quantile of the out-of-fold real scores, and the `datasets` and `selection` numbers, which come from
the sources of training, are labelled "in-source" and never choose:

```yaml
train_data: data/pool/manifest.csv  # the detector shipped is trained on the whole pool
cross_source:
  pool: data/pool/manifest.csv      # datasets_scripts/build_training_pool.py
  folds: 5
  protocol: normalized              # or scorings: [{protocol: native, num_crops: 8}, ...], one evaluation each
  num_crops: [1]                    # one evaluation per crop setting of the image processor
  target_fpr: 0.05
  holdouts: [external2]             # a whole dataset of the pool (and every source group it shares) held out
```

In a trained detector's flags, `{split}` is the name of the split it is trained for (`fold0`, ..., a holdout's
name, or `pool` for the whole-pool training), so that per-split inputs can be passed, e.g. SynerDetect's diffusion
model trained on the real photos of that split's training sources (`recipes/synerdetect_offline.yaml`).

A detector with a `head` fits it (`aigi fit-head`) on its training data after training; its zero-fake variant fits
it on the real photos plus one DAIR reconstruction of each (`pseudo_fakes/`), so no generator output is used.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import roc_curve

from .cross_source import summarise_folds, write_dataset_holdout_manifests, write_fold_manifests
from .metrics import binary_metrics, threshold_at_fpr

ZERO_FAKE_SUFFIX = "zero_fake"
STAGE_REFERENCE = re.compile(r"\{stage:([A-Za-z0-9_.-]+)\}")
SPLIT_REFERENCE = "{split}"
POOL_SPLIT = "pool"
FINAL = "final"


@dataclass
class DetectorEntry:
    """One leaderboard row: a detector as listed, or its zero-fake variant."""

    name: str
    base: str
    variant: str  # "standard" or "zero-fake"
    train: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    model: str | None = None
    status: str = "pending"
    error: str | None = None
    model_path: str | None = None
    size_mb: float | None = None
    evaluations: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] | None = None
    cross_source: dict[str, Any] | None = None
    # Only cross-validated (a comparison arm): no detector is trained on the whole pool, so it is never the default.
    cross_source_only: bool = False
    holdouts: bool = True

    @property
    def trains_here(self) -> bool:
        return self.train is not None


def load_config(path: str | Path) -> dict[str, Any]:
    text = Path(path).read_text()
    config = json.loads(text) if Path(path).suffix == ".json" else yaml.safe_load(text)
    for key in ("output_dir", "detectors"):
        if key not in config:
            raise ValueError(f"{path}: the benchmark config needs '{key}'")
    config.setdefault("datasets", {})
    if not config["datasets"] and "cross_source" not in config:
        raise ValueError(f"{path}: the benchmark config needs 'datasets' or 'cross_source'")
    for name, spec in config["detectors"].items():
        if ("train" in spec) == ("model" in spec):
            raise ValueError(f"detector {name!r}: give exactly one of 'train' (trained here) or 'model' (loaded)")
        if "head" in spec and "train" not in spec:
            raise ValueError(f"detector {name!r}: a 'head' is fitted after a training; it needs 'train'")
    return config


def for_split(values: dict[str, Any], split: str) -> dict[str, Any]:
    """Training flags with every `{split}` in a string value replaced by the split's name."""
    return {key: value.replace(SPLIT_REFERENCE, split) if isinstance(value, str) else value
            for key, value in values.items()}


def training_flags(values: dict[str, Any]) -> list[str]:
    """`{"max_steps": 10, "dair_channels": [8, 16]}` -> `["--max_steps", "10", "--dair_channels", "8", "16"]`."""
    flags = []
    for key, value in values.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, bool):
            flags.append("true" if value else "false")
        elif isinstance(value, (list, tuple)):
            flags.extend(str(item) for item in value)
        else:
            flags.append(str(value))
    return flags


class Benchmark:
    def __init__(self, config: dict[str, Any], only: list[str] | None = None):
        self.config = config
        self.output_dir = Path(config["output_dir"])
        self.results_dir = Path(config.get("results_dir") or self.output_dir)
        self.jobs = int(config.get("jobs", 1))
        self.threads_per_job = int(config.get("threads_per_job", 1))
        self.entries = self._entries(only)

    def _entries(self, only: list[str] | None) -> list[DetectorEntry]:
        entries = []
        zero_fake = self.config.get("zero_fake")
        for name, spec in self.config["detectors"].items():
            if only and name not in only:
                continue
            entries.append(DetectorEntry(name=name, base=name, variant="standard", train=spec.get("train"),
                                         head=spec.get("head"), model=spec.get("model"),
                                         cross_source_only=bool(spec.get("cross_source_only", False)),
                                         holdouts=bool(spec.get("holdouts", True))))
            if zero_fake and "train" in spec and spec.get("zero_fake", True):
                entries.append(DetectorEntry(
                    name=f"{name}_{ZERO_FAKE_SUFFIX}", base=name, variant="zero-fake",
                    train={**spec["train"], **zero_fake, "real_only": True}, head=spec.get("head"),
                ))
        return entries

    # Paths and references -------------------------------------------------------------------------------------
    def run_dir(self, name: str) -> Path:
        return self.output_dir / "runs" / name

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            return STAGE_REFERENCE.sub(lambda match: str(self.run_dir(match.group(1)) / FINAL), value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    # Training -------------------------------------------------------------------------------------------------
    def train_run(self, name: str, values: dict[str, Any]) -> Path:
        """Train one run in a subprocess (resuming its latest checkpoint); returns its final/ folder."""
        run_dir = self.run_dir(name)
        final = run_dir / FINAL
        if (final / "config.json").is_file():
            return final
        values = {"train_data": self.config.get("train_data"), **values, "output_dir": str(run_dir)}
        values = {key: self.resolve(value) for key, value in values.items()}
        if (run_dir / "checkpoints").is_dir():
            values["resume_from_checkpoint"] = "latest"
        run_dir.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, "OMP_NUM_THREADS": str(self.threads_per_job), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "aigi.train", *training_flags(values)]
        log_file = run_dir / "benchmark_train.log"
        with log_file.open("a") as log:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        if completed.returncode != 0 or not (final / "config.json").is_file():
            tail = log_file.read_text().strip().splitlines()[-5:]
            raise RuntimeError(f"training {name} failed (exit {completed.returncode}): " + " | ".join(tail))
        return final

    def pseudo_fake_set(self, train_data: str, dair: str) -> Path:
        """The real photos of `train_data` plus one DAIR reconstruction of each: a manifest with no generator output."""
        manifest = self.output_dir / "pseudo_fakes" / "manifest.csv"
        if not manifest.is_file():
            write_pseudo_fake_manifest(train_data, dair, manifest)
        return manifest

    def prepare(self, entry: DetectorEntry) -> None:
        """Train (and fit the head of) one trained entry, or check a loaded one; sets status, path and size."""
        try:
            if entry.cross_source_only:
                if not self.config.get("cross_source"):
                    raise ValueError("cross_source_only needs the config's cross_source section")
                entry.status = "ready"
                return
            if entry.trains_here:
                final = self.train_run(entry.name, for_split(entry.train, POOL_SPLIT))
                if entry.head:
                    final = self.fit_head(entry, final)
            else:
                final = Path(self.resolve(entry.model))
                if not (final / "config.json").is_file():
                    raise FileNotFoundError(f"{final} holds no detector (no config.json)")
            entry.model_path = str(final)
            entry.size_mb = round(sum(f.stat().st_size for f in final.rglob("*") if f.is_file()) / 1e6, 2)
            entry.status = "ready"
        except Exception as error:  # a failed detector is reported, the benchmark goes on
            entry.status, entry.error = "failed", f"{type(error).__name__}: {error}"

    def fit_head(self, entry: DetectorEntry, encoder: Path, run_name: str | None = None,
                 train_data: str | None = None) -> Path:
        from ..train.heads import fit_head

        output = self.run_dir(f"{run_name or entry.name}_{entry.head['head']}")
        if (output / "config.json").is_file():
            return output
        options = dict(entry.head)
        head = options.pop("head")
        data = train_data or self.resolve(entry.train.get("train_data") or self.config.get("train_data"))
        if entry.variant == "zero-fake":
            data = str(self.pseudo_fake_set(data, self.resolve(entry.train["self_augmentation_dair"])))
        fit_head(str(encoder), data, output, head=head, **options)
        return output

    # Evaluation -----------------------------------------------------------------------------------------------
    def evaluate(self, entry: DetectorEntry, dataset: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.evaluate_model(entry.model_path, entry.name, dataset, spec)

    def evaluate_model(self, model_path: str, name: str, dataset: str, spec: dict[str, Any]) -> dict[str, Any]:
        from .runner import evaluate_detector, evaluate_robustness

        protocols = _protocols(spec)
        output = self.output_dir / "eval" / name / dataset
        data, split = self.resolve(spec["data"]), spec.get("split")
        crops = {"num_crops": int(spec["num_crops"])} if int(spec.get("num_crops", 1)) != 1 else {}
        results = {}
        for protocol in protocols:
            metrics_file = (output / protocol if len(protocols) > 1 else output) / "metrics.json"
            if not metrics_file.is_file():
                if len(protocols) > 1:
                    evaluate_robustness(model_path, data, str(output), protocols=protocols, split=split, **crops)
                else:
                    evaluate_detector(model_path, data, str(output), protocol=protocol, split=split, **crops)
            results[protocol] = {**json.loads(metrics_file.read_text()),
                                 "predictions": str(metrics_file.parent / "predictions.csv")}
        return results

    def select(self, entry: DetectorEntry) -> None:
        """Pooled metrics on the selection data, and the threshold for `target_fpr` on its real images."""
        spec = self.config["selection"]
        protocol = spec.get("protocol", "normalized")
        evaluation = self.evaluate(entry, "selection", {"data": spec["data"], "protocols": protocol,
                                                         "split": spec.get("split")})[protocol]
        labels, scores, _ = read_predictions(evaluation["predictions"])
        entry.selection = {
            **evaluation["pooled"],
            "threshold_at_target_fpr": threshold_at_fpr(scores[labels == 0], float(spec.get("target_fpr", 0.05))),
            "target_fpr": float(spec.get("target_fpr", 0.05)),
            "protocol": protocol,
        }

    def cross_validate(self, entry: DetectorEntry) -> None:
        """Train on each fold's training sources (and each holdout's), score the held-out sources, summarise."""
        spec = self.config["cross_source"]
        holdouts = self.holdouts if entry.holdouts else []
        splits = [(f"fold{fold['fold']}", fold) for fold in self.folds] + list(holdouts)
        predictions: dict[str, dict[int, Any]] = {}
        for split_name, split in splits:
            run_name = f"{entry.name}__{split_name}"
            final = self.train_run(run_name, {**for_split(entry.train, split_name), "train_data": split["train"]})
            if entry.head:
                final = self.fit_head(entry, final, run_name=run_name, train_data=split["train"])
            for protocol, crops in scorings(spec):
                evaluation = self.evaluate_model(
                    str(final), f"{run_name}/{scoring_name(protocol, crops)}", "held_out",
                    {"data": split["held_out"], "protocols": protocol, "num_crops": crops},
                )[protocol]
                predictions.setdefault(split_name, {})[(protocol, crops)] = read_predictions(evaluation["predictions"])
        target_fpr = float(spec.get("target_fpr", 0.05))
        summaries = {}
        for protocol, crops in scorings(spec):
            summary = summarise_folds([predictions[f"fold{fold['fold']}"][(protocol, crops)] for fold in self.folds],
                                      target_fpr=target_fpr)
            for name, _ in holdouts:
                labels, scores, _ = predictions[name][(protocol, crops)]
                metrics = binary_metrics(labels, scores, threshold=summary["threshold_at_target_fpr"])
                summary.setdefault("holdouts", {})[name] = {
                    key: metrics.get(key) for key in ("auroc", "ap", "real_acc", "fake_acc")}
            summaries[scoring_name(protocol, crops)] = {**summary, "num_crops": crops, "protocol": protocol}
        entry.cross_source = summaries

    def process(self, entry: DetectorEntry) -> None:
        """Cross-validate one trained entry over sources (when the config asks), then prepare it and evaluate it on
        every dataset (and the selection data when it trains here)."""
        try:
            if self.config.get("cross_source") and entry.trains_here:
                self.cross_validate(entry)
        except Exception as error:
            entry.status, entry.error = "failed", f"cross-source: {type(error).__name__}: {error}"
            traceback.print_exc()
            return
        self.prepare(entry)
        if entry.status != "ready":
            return
        try:
            for dataset, spec in self.config["datasets"].items() if entry.model_path else ():
                entry.evaluations[dataset] = self.evaluate(entry, dataset, spec)
            if self.config.get("selection") and entry.trains_here and entry.model_path:
                self.select(entry)
            entry.status = "ok"
        except Exception as error:
            entry.status, entry.error = "failed", f"{type(error).__name__}: {error}"
            traceback.print_exc()

    def run(self) -> dict[str, Any]:
        import torch

        # Evaluations run in this process, `jobs` at a time: one intra-op thread budget per job.
        torch.set_num_threads(self.threads_per_job)
        self.prepare_cross_source()
        stages: dict[str, Future] = {}
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            # Stages are queued first, in order, so a job waiting for one never holds up the stage itself.
            for name, values in (self.config.get("stages") or {}).items():
                stages[name] = pool.submit(self._after_stages, stages, values, self.train_run, name, values)
            entries = [pool.submit(self._process_after_stages, stages, entry) for entry in self.entries]
            for name, future in stages.items():
                try:
                    future.result()
                except Exception as error:
                    print(f"benchmark: stage {name} failed: {error}", file=sys.stderr)
            for future in entries:
                future.result()
        return self.write_results()

    def prepare_cross_source(self) -> None:
        """The fold and holdout manifests (written once under output_dir, reused afterwards)."""
        self.folds, self.holdouts = [], []
        spec = self.config.get("cross_source")
        if not spec:
            return
        pool = self.resolve(spec["pool"])
        self.folds = write_fold_manifests(pool, self.output_dir / "folds", int(spec.get("folds", 5)),
                                          int(spec.get("seed", 0)))
        self.holdouts = [(name, write_dataset_holdout_manifests(pool, self.output_dir / "holdouts", name))
                         for name in spec.get("holdouts") or []]

    def _process_after_stages(self, stages: dict[str, Future], entry: DetectorEntry) -> None:
        try:
            self._after_stages(stages, {**(entry.train or {}), "model": entry.model}, lambda: None)
        except Exception as error:
            entry.status, entry.error = "failed", f"a stage it needs failed: {type(error).__name__}: {error}"
            return
        self.process(entry)

    @staticmethod
    def _after_stages(stages: dict[str, Future], values: dict[str, Any], function, *args):
        """Wait for the stages that `values` refers to (a failed one fails this job too), then run `function`."""
        for name in sorted({match for value in values.values() for match in STAGE_REFERENCE.findall(str(value))}):
            if name not in stages:
                raise ValueError(f"'{{stage:{name}}}' names no stage listed before it")
            stages[name].result()
        return function(*args)

    # Results --------------------------------------------------------------------------------------------------
    def default_choice(self) -> dict[str, Any] | None:
        if self.config.get("cross_source"):
            return self.cross_source_choice()
        spec = self.config.get("selection")
        if not spec:
            return None
        max_size = float(spec.get("max_size_mb", 30))
        candidates = [entry for entry in self.entries if entry.status == "ok" and entry.trains_here
                      and entry.selection and entry.selection["auroc"] is not None and entry.size_mb <= max_size]
        if not candidates:
            return None
        best = max(candidates, key=lambda entry: entry.selection["auroc"])
        return {"name": best.name, "model_path": best.model_path, "size_mb": best.size_mb,
                "selection_auroc": best.selection["auroc"], "threshold": best.selection["threshold_at_target_fpr"],
                "target_fpr": best.selection["target_fpr"], "selection_data": spec["data"],
                "protocol": best.selection["protocol"],
                "rule": f"highest pooled AUROC on the selection data among detectors trained here of <= {max_size} MB"}

    def cross_source_choice(self) -> dict[str, Any] | None:
        """The trained detector (and crop setting) of highest mean cross-source AUROC within the size limit; its
        threshold is the target FPR on the out-of-fold real photos."""
        max_size = float(self.config["cross_source"].get("max_size_mb", 30))
        candidates = [(summary["mean_auroc"], entry, summary) for entry in self.entries
                      if entry.status == "ok" and entry.cross_source and entry.model_path
                      and entry.size_mb <= max_size
                      for summary in entry.cross_source.values() if summary["mean_auroc"] is not None]
        if not candidates:
            return None
        _, best, summary = max(candidates, key=lambda candidate: candidate[0])
        return {"name": best.name, "model_path": best.model_path, "size_mb": best.size_mb,
                "cross_source_mean_auroc": summary["mean_auroc"], "num_crops": summary["num_crops"],
                "threshold": summary["threshold_at_target_fpr"], "target_fpr": summary["target_fpr"],
                "protocol": summary["protocol"], "pooled_out_of_fold": summary["pooled"],
                "rule": f"highest mean cross-source AUROC ({len(self.folds)} source-disjoint folds) among detectors "
                        f"trained here of <= {max_size} MB; threshold: {summary['target_fpr']:.0%} FPR on the "
                        "out-of-fold real photos"}

    def write_results(self) -> dict[str, Any]:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        datasets = self.config["datasets"]
        results = {
            "config": self.config,
            "detectors": [summarise(entry, datasets) for entry in self.entries],
            "default_detector": self.default_choice(),
        }
        (self.results_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        (self.results_dir / "leaderboard.md").write_text(format_leaderboard(results))
        if self.config.get("cross_source"):
            (self.results_dir / "cross_source.md").write_text(format_cross_source(results))
            write_cross_source_plot(results, self.results_dir / "cross_source_folds.png")
        write_plots(self.entries, datasets, self.results_dir)
        self.copy_reports()
        return results

    def copy_reports(self) -> None:
        """The JSON and Markdown reports of this config's evaluations into results_dir/eval/ (predictions and plots
        stay in output_dir, which other configs may share)."""
        if self.results_dir == self.output_dir:
            return
        names = {entry.name for entry in self.entries}
        for report in sorted((self.output_dir / "eval").rglob("*")):
            evaluation = report.relative_to(self.output_dir / "eval").parts[0]
            if report.suffix in (".json", ".md") and evaluation.split("__")[0] in names:
                target = self.results_dir / report.relative_to(self.output_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(report, target)


def scorings(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """(protocol, num_crops) of each cross-source evaluation: `scorings` when given, else `protocol` with each of
    `num_crops`."""
    if "scorings" in spec:
        return [(str(item.get("protocol", "normalized")), int(item.get("num_crops", 1))) for item in spec["scorings"]]
    value = spec.get("num_crops", [1])
    return [(str(spec.get("protocol", "normalized")), int(item))
            for item in (value if isinstance(value, list) else [value])]


def scoring_name(protocol: str, crops: int) -> str:
    return f"{protocol}_crops{crops}"


def scoring_label(summary: dict[str, Any]) -> str:
    crops = summary["num_crops"]
    return f"{summary['protocol']}, {crops} crop{'s' if crops > 1 else ''}"


def format_cross_source(results: dict[str, Any]) -> str:
    """The cross-source table: per detector and crop setting, mean and per-fold AUROC, pooled out-of-fold metrics at
    the out-of-fold threshold, each generator family, and each holdout dataset."""
    rows = [(row, summary) for row in results["detectors"] for summary in (row.get("cross_source") or {}).values()]
    if not rows:
        return "No detector finished the cross-source protocol.\n"
    folds = len(rows[0][1]["per_fold"])
    families = sorted({family for _, summary in rows for family in summary["per_family"]})
    holdouts = sorted({name for _, summary in rows for name in summary.get("holdouts", {})})
    titles = (["detector", "scoring", "mean AUROC", "± std", "mean AP"] + [f"fold {k}" for k in range(folds)]
              + ["pooled AUROC", "threshold", "real acc", "fake acc"] + [f"{family} AUROC" for family in families]
              + [f"{name} held out AUROC" for name in holdouts] + [f"{name} fake acc" for name in holdouts])
    lines = ["| " + " | ".join(titles) + " |", "|---|---:|" + "---:|" * (len(titles) - 2)]
    for row, summary in sorted(rows, key=lambda item: -(item[1]["mean_auroc"] or 0)):
        cells = [row["name"], scoring_label(summary), _cell(summary["mean_auroc"]), _cell(summary["std_auroc"]),
                 _cell(summary["mean_ap"])]
        cells += [_cell(fold["auroc"]) for fold in summary["per_fold"]]
        pooled = summary["pooled"]
        cells += [_cell(pooled["auroc"]), f"{summary['threshold_at_target_fpr']:.3f}", _cell(pooled["real_acc"]),
                  _cell(pooled["fake_acc"])]
        cells += [_cell(summary["per_family"].get(family, {}).get("auroc")) for family in families]
        cells += [_cell(summary.get("holdouts", {}).get(name, {}).get("auroc")) for name in holdouts]
        cells += [_cell(summary.get("holdouts", {}).get(name, {}).get("fake_acc")) for name in holdouts]
        lines.append("| " + " | ".join(cells) + " |")
    spec = results["config"]["cross_source"]
    notes = [
        "",
        f"Cross-source protocol: the pool `{spec['pool']}` split into {folds} folds of whole source groups (a "
        "repository or package, real or fake, is in exactly one fold); each fold is scored by a detector trained on "
        "the other folds, under each scoring (an evaluation protocol, then that many crops of the image processor). "
        "Mean AUROC: over the folds (the selection criterion). Pooled: all out-of-fold scores together. Threshold: "
        f"{float(spec.get('target_fpr', 0.05)):.0%} FPR on the out-of-fold reals; real and fake accuracy at it. A "
        "family's AUROC: all out-of-fold reals against that family's out-of-fold fakes. Holdout: the dataset and "
        "every source group it shares held out of training, scored at the same threshold.",
    ]
    return "\n".join(lines + notes) + "\n"


def write_cross_source_plot(results: dict[str, Any], path: Path) -> None:
    rows = [(f"{row['name']} ({scoring_label(summary)})", summary)
            for row in results["detectors"] for summary in (row.get("cross_source") or {}).values()]
    if not rows:
        return
    figure = Figure(figsize=(max(6, 1.2 * len(rows) + 3), 4))
    axis = figure.subplots()
    folds = len(rows[0][1]["per_fold"])
    width = 0.8 / (folds + 1)
    for k in range(folds):
        values = [summary["per_fold"][k]["auroc"] or 0 for _, summary in rows]
        axis.bar(np.arange(len(rows)) + k * width, values, width, label=f"fold {k}")
    axis.bar(np.arange(len(rows)) + folds * width, [summary["mean_auroc"] or 0 for _, summary in rows], width,
             color="black", label="mean")
    axis.set_xticks(np.arange(len(rows)) + 0.4, [label for label, _ in rows], rotation=20, ha="right", fontsize=8)
    axis.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    axis.set_ylim(0.3, 1.0)
    axis.set_ylabel("AUROC on unseen sources")
    axis.set_title("Cross-source AUROC per fold")
    axis.legend(fontsize=7, ncol=folds + 1)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _protocols(spec: dict[str, Any]) -> list[str]:
    from .runner import parse_protocols

    return parse_protocols(str(spec.get("protocols", "normalized")))


def first_protocol(spec: dict[str, Any]) -> str:
    return _protocols(spec)[0]


def summarise(entry: DetectorEntry, datasets: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard numbers of one entry: per dataset, the pooled metrics of its first protocol, the
    per-generator AUROC, the held-out generators' AUROC and, with several protocols, the mean AUROC over them."""
    summary = {"name": entry.name, "base": entry.base, "variant": entry.variant, "trains_here": entry.trains_here,
               "status": entry.status, "error": entry.error, "model_path": entry.model_path,
               "size_mb": entry.size_mb, "selection": entry.selection, "cross_source": entry.cross_source,
               "datasets": {}}
    for dataset, evaluations in entry.evaluations.items():
        protocol = first_protocol(datasets[dataset])
        main = evaluations[protocol]
        held_out = datasets[dataset].get("held_out") or []
        per_generator = {name: metrics["auroc"] for name, metrics in main["per_generator"].items()}
        row = {"protocol": protocol, **{key: main["pooled"][key] for key in ("auroc", "ap", "acc", "ece", "n")},
               "per_generator_auroc": per_generator,
               "held_out_auroc": {name: per_generator.get(name) for name in held_out}}
        if len(evaluations) > 1:
            row["robustness_auroc"] = {name: result["pooled"]["auroc"] for name, result in evaluations.items()}
            values = [value for value in row["robustness_auroc"].values() if value is not None]
            row["mean_robustness_auroc"] = float(np.mean(values)) if values else None
        summary["datasets"][dataset] = row
    return summary


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def format_leaderboard(results: dict[str, Any]) -> str:
    datasets = results["config"]["datasets"]
    titles = ["detector", "variant", "MB"]
    for dataset, spec in datasets.items():
        titles += [f"{dataset} AUROC", f"{dataset} AP", f"{dataset} ECE"]
        if results["config"].get("cross_source"):
            titles[-3:] = [f"{title} (in-source)" for title in titles[-3:]]
        titles += [f"{dataset} AUROC {name} (held out)" for name in spec.get("held_out") or []]
        if len(_protocols(spec)) > 1:
            titles.append(f"{dataset} mean AUROC over {len(_protocols(spec))} protocols")
    cross_source = bool(results["config"].get("cross_source"))
    if cross_source:
        titles += ["cross-source mean AUROC"]
    titles += ["selection AUROC (in-source)" if cross_source else "selection AUROC", "status"]
    lines = ["| " + " | ".join(titles) + " |", "|---|---|" + "---:|" * (len(titles) - 3) + "---|"]
    for row in results["detectors"]:
        cells = [row["name"], row["variant"], _cell(row["size_mb"]).rstrip("0").rstrip(".") if row["size_mb"] else "–"]
        for dataset, spec in datasets.items():
            values = row["datasets"].get(dataset, {})
            cells += [_cell(values.get("auroc")), _cell(values.get("ap")), _cell(values.get("ece"))]
            cells += [_cell(values.get("held_out_auroc", {}).get(name)) for name in spec.get("held_out") or []]
            if len(_protocols(spec)) > 1:
                cells.append(_cell(values.get("mean_robustness_auroc")))
        if cross_source:
            best = max((summary["mean_auroc"] or 0 for summary in (row.get("cross_source") or {}).values()),
                       default=None)
            cells.append(_cell(best))
        cells.append(_cell((row["selection"] or {}).get("auroc")))
        cells.append(row["status"] if row["status"] == "ok" else f"{row['status']}: {row['error']}")
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    protocols = ", ".join(f"{name}: `{first_protocol(spec)}`" for name, spec in datasets.items())
    notes = [
        "",
        f"Pooled metrics per dataset under its first protocol ({protocols}); a per-generator AUROC uses all reals of "
        "the dataset plus that generator's fakes. 'held out': generators no training run saw. zero-fake: trained on "
        "the real photos with DAIR pseudo-fakes as the only fakes. ECE: 15-bin expected calibration error of P(fake).",
    ]
    choice = results.get("default_detector")
    if choice and cross_source:
        notes.append(
            f"\nDefault detector by the rule ({choice['rule']}): **{choice['name']}** scored "
            f"{scoring_label(choice)} (mean cross-source AUROC {choice['cross_source_mean_auroc']:.3f}, threshold "
            f"{choice['threshold']:.4f}). Columns marked in-source score sources that training also saw: they "
            "measure source recognition and never choose. Per fold: `cross_source.md`."
        )
    elif choice:
        notes.append(
            f"\nDefault detector by the selection rule ({choice['rule']}, selection data `{choice['selection_data']}`,"
            f" protocol `{choice['protocol']}`): **{choice['name']}** (selection AUROC {choice['selection_auroc']:.3f},"
            f" threshold {choice['threshold']:.4f} for {choice['target_fpr']:.0%} FPR on the selection reals)."
        )
    return "\n".join(lines + notes) + "\n"


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(row["label"]) for row in rows])
    scores = np.array([float(row["score"]) for row in rows])
    return labels, scores, [row["generator"] for row in rows]


def write_plots(entries: list[DetectorEntry], datasets: dict[str, Any], directory: Path) -> None:
    """Per dataset: per-generator AUROC bars and ROC overlays; with several protocols, robustness curves."""
    done = [entry for entry in entries if entry.status == "ok"]
    if not done:
        return
    for dataset, spec in datasets.items():
        protocol = first_protocol(spec)
        evaluations = {entry.name: entry.evaluations[dataset] for entry in done if dataset in entry.evaluations}
        if not evaluations:
            continue
        _per_generator_bars(evaluations, protocol, f"{dataset} ({protocol})").savefig(
            directory / f"per_generator_auroc_{dataset}.png", dpi=120)
        _roc_overlay(evaluations, protocol, f"{dataset} ({protocol})").savefig(directory / f"roc_{dataset}.png", dpi=120)
        if len(_protocols(spec)) > 1:
            _robustness_curves(evaluations, f"{dataset}: robustness").savefig(
                directory / f"robustness_{dataset}.png", dpi=120)


def _per_generator_bars(evaluations: dict[str, Any], protocol: str, title: str) -> Figure:
    generators = sorted({name for result in evaluations.values() for name in result[protocol]["per_generator"]})
    groups = [*generators, "pooled"]
    figure = Figure(figsize=(max(7.0, 0.9 * len(groups) * max(1, len(evaluations)) / 3 + 3), 4.8), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(evaluations)
    for index, (name, result) in enumerate(evaluations.items()):
        values = [(result[protocol]["per_generator"].get(group) or {}).get("auroc") if group != "pooled"
                  else result[protocol]["pooled"]["auroc"] for group in groups]
        heights = [np.nan if value is None else value for value in values]
        axes.bar(np.arange(len(groups)) + (index - (len(evaluations) - 1) / 2) * width, heights, width, label=name)
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(np.arange(len(groups)), groups, rotation=35, ha="right")
    axes.set(ylim=(0, 1.02), ylabel="AUROC (reals + that generator's fakes)", title=title)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def _roc_overlay(evaluations: dict[str, Any], protocol: str, title: str) -> Figure:
    figure = Figure(figsize=(6.4, 5.2), layout="constrained")
    axes = figure.add_subplot()
    for name, result in evaluations.items():
        labels, scores, _ = read_predictions(result[protocol]["predictions"])
        if labels.min() == labels.max():
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        auroc = result[protocol]["pooled"]["auroc"]
        axes.plot(fpr, tpr, label=f"{name} ({auroc:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axes.set(xlabel="false-positive rate (reals called fake)", ylabel="true-positive rate (fakes caught)", title=title)
    axes.legend(loc="lower right", fontsize="small")
    return figure


def _robustness_curves(evaluations: dict[str, Any], title: str) -> Figure:
    protocols = list(next(iter(evaluations.values())))
    figure = Figure(figsize=(max(6.5, 0.7 * len(protocols) + 3), 4.6), layout="constrained")
    axes = figure.add_subplot()
    for name, result in evaluations.items():
        values = [result.get(protocol, {}).get("pooled", {}).get("auroc") for protocol in protocols]
        axes.plot(range(len(protocols)), [np.nan if value is None else value for value in values], marker="o",
                  label=name)
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(range(len(protocols)), protocols, rotation=35, ha="right")
    axes.set(ylim=(0, 1.02), ylabel="pooled AUROC", title=title)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure


def write_pseudo_fake_manifest(train_data: str, dair: str, manifest: Path, crop: int = 256, seed: int = 0) -> None:
    """Each real photo of `train_data` (centre-cropped to `crop`) and its reconstruction by the frozen DAIR under a
    random architecture, as PNGs, listed in a CSV manifest (generator `dair_pseudo_fake`)."""
    import random

    import torch
    from tqdm.auto import tqdm

    from ..dair import DAIR
    from ..data.records import load_record_image
    from ..data.transforms import center_crop_or_pad
    from ..image_io import ImageLoadError
    from ..train.fiser import PSEUDO_FAKE_GENERATOR
    from ..train.samples import real_photos

    dair_model = DAIR.from_pretrained(dair).eval()
    rng = random.Random(seed)
    folder = manifest.parent
    (folder / "real").mkdir(parents=True, exist_ok=True)
    (folder / "fake").mkdir(exist_ok=True)
    rows = []
    for index, record in enumerate(tqdm(real_photos(train_data), desc="DAIR pseudo-fakes", unit="img")):
        try:
            image = center_crop_or_pad(load_record_image(record), crop)
        except ImageLoadError:
            continue
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        with torch.inference_mode():
            reconstruction = dair_model(pixels, architecture=dair_model.sample_architecture(rng))[0].clamp(0, 1)
        real_name, fake_name = f"real/{index:05d}.png", f"fake/{index:05d}.png"
        image.save(folder / real_name)
        fake = np.round(reconstruction.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(fake).save(folder / fake_name)
        rows += [{"path": real_name, "label": "real", "generator": "real", "source": record.source},
                 {"path": fake_name, "label": "fake", "generator": PSEUDO_FAKE_GENERATOR, "source": record.source}]
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "generator", "source"])
        writer.writeheader()
        writer.writerows(rows)


def run_benchmark(config_path: str, only: list[str] | None = None) -> dict[str, Any]:
    return Benchmark(load_config(config_path), only=only).run()
