"""Bundle the default detector into the package: `src/aigi/checkpoints/<name>/` with its calibrated threshold in
config.json, the crops it was chosen with in preprocessor_config.json, its figures in benchmark.json, and
`default.json` naming it.

The candidates are the benchmark's choice (`results.json` of `aigi benchmark`) and the frozen probes run under the
same cross-source folds that are given (`--probe summary.json` of recipes/frozen_probe_cross_source.py; give only
those that meet the speed bar, 30 images/s end to end at batch 32 on 256-px files on 2 CPU cores by `aigi
bench-speed`); the one of highest mean cross-source AUROC is shipped. The scores its threshold was calibrated on go
next to its results (`default_detector_calibration_predictions.csv`: the out-of-fold scores, or an in-source
benchmark's selection scores), so that anyone can recompute it. Run from the repository root:

    python recipes/ship_default_detector.py results/cross_source/results.json \
        --probe results/cross_source_frozen_probe/summary.json \
        --probe results/cross_source_frozen_probe_lite2/summary.json \
        --probe results/cross_source_frozen_probe_lite0_highpass/summary.json
"""

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import aigi  # noqa: F401  (registers the families with the Auto classes)
from aigi.evaluation.benchmark import read_predictions, scoring_name
from aigi.evaluation.metrics import threshold_at_fpr
from aigi.registry import BUNDLED_CHECKPOINTS_DIR, DEFAULT_DETECTOR_FILE, directory_size
from transformers import AutoConfig, AutoImageProcessor

MAX_BYTES = 30_000_000
MODEL_FILES = ("model.safetensors", "preprocessor_config.json")
RECORD_FILES = ("training_args.json", "log.jsonl", "log.png", "process_0.json")


@dataclass
class Candidate:
    choice: dict
    results: dict
    results_file: str
    calibration_files: list[Path]
    record_files: list[Path] = field(default_factory=list)

    @property
    def rank(self) -> float:
        return self.choice.get("cross_source_mean_auroc", -1.0)


def benchmark_candidate(results_file: str) -> Candidate | None:
    results = json.loads(Path(results_file).read_text())
    choice = results["default_detector"]
    if choice is None:
        return None
    row = next(row for row in results["detectors"] if row["name"] == choice["name"])
    output_dir = Path(results["config"]["output_dir"])
    if "cross_source_mean_auroc" in choice:
        scoring = scoring_name(choice["protocol"], int(choice["num_crops"]))
        calibration = [output_dir / "eval" / f"{choice['name']}__fold{fold}" / scoring / "held_out" / "predictions.csv"
                       for fold in range(int(results["config"]["cross_source"]["folds"]))]
    else:
        calibration = [output_dir / "eval" / choice["name"] / "selection" / "predictions.csv"]
    run_dir = output_dir / "runs" / choice["name"]
    return Candidate(choice, row, results_file, calibration, [run_dir / name for name in RECORD_FILES])


def probe_candidate(summary_file: str) -> Candidate:
    summary = json.loads(Path(summary_file).read_text())
    chosen = summary["chosen"]
    folds = summary["summaries"][chosen]
    views = summary.get("input_views", ["image"])
    name = "frozen_probe_" + summary["backbone"].removeprefix("efficientnet_") + "".join(
        f"_{view}" for view in views if view != "image")
    choice = {"name": name, "model_path": summary["detector"],
              "cross_source_mean_auroc": folds["mean_auroc"], "threshold": folds["threshold_at_target_fpr"],
              "target_fpr": folds["target_fpr"], "protocol": summary["protocol"], "num_crops": 1,
              "pooled_out_of_fold": folds["pooled"],
              "rule": f"highest mean cross-source AUROC ({len(folds['per_fold'])} source-disjoint folds) among the "
                      f"benchmark's detectors and the frozen probes that meet the speed bar of 30 images/s end to end "
                      f"on 2 CPU cores (results/cross_source/README.md; setting {chosen} chosen the same way); "
                      f"threshold: "
                      f"{folds['target_fpr']:.0%} FPR on the out-of-fold real photos"}
    predictions = Path(summary_file).parent / "predictions" / chosen
    scoring = {**folds, "protocol": summary["protocol"], "num_crops": 1}
    return Candidate(choice, {"name": choice["name"], "cross_source": {scoring_name(summary["protocol"], 1): scoring}},
                     summary_file, [predictions / f"fold{k}.csv" for k in range(len(folds["per_fold"]))],
                     [Path(summary_file)])


def concatenated_csv(files: list[Path]) -> str:
    lines = []
    for file in files:
        file_lines = file.read_text().splitlines()
        lines += file_lines if not lines else file_lines[1:]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results/cross_source/results.json")
    parser.add_argument("--probe", action="append", default=[], help="summary.json of a frozen probe run.")
    args = parser.parse_args()
    candidates = [candidate for candidate in [benchmark_candidate(args.results), *map(probe_candidate, args.probe)]
                  if candidate is not None]
    if not candidates:
        raise SystemExit(f"{args.results} names no default detector")
    best = max(candidates, key=lambda candidate: candidate.rank)
    results_dir = Path(best.results_file).parent
    calibration = results_dir / "default_detector_calibration_predictions.csv"
    calibration.write_text(concatenated_csv(best.calibration_files))
    # Recomputed from the file as written (float64), so that anyone gets this exact threshold back from it.
    labels, scores, _ = read_predictions(calibration)
    choice = {**best.choice, "threshold": threshold_at_fpr(scores[labels == 0], best.choice["target_fpr"])}
    name = "aigi-" + choice["name"].replace("_", "-")
    target = BUNDLED_CHECKPOINTS_DIR / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    source = Path(choice["model_path"])
    for file_name in MODEL_FILES:
        shutil.copy2(source / file_name, target / file_name)
    config = AutoConfig.from_pretrained(source)
    config.decision_threshold = choice["threshold"]
    config.save_pretrained(target)
    if "num_crops" in choice:
        processor = AutoImageProcessor.from_pretrained(source)
        processor.num_crops = int(choice["num_crops"])
        processor.save_pretrained(target)
    # The package holds the modeling code once (aigi.modeling): no remote-code copies or auto_map in the bundle;
    # `aigi export` writes both for the Hub.
    for code_file in target.glob("*.py"):
        code_file.unlink()
    for file_name in ("config.json", "preprocessor_config.json"):
        values = json.loads((target / file_name).read_text())
        values.pop("auto_map", None)
        (target / file_name).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    (target / "benchmark.json").write_text(json.dumps(
        {"default_detector": choice, "results": best.results, "results_file": best.results_file,
         "calibration_predictions": calibration.as_posix(),
         "candidates": [{"name": candidate.choice["name"], "cross_source_mean_auroc": candidate.rank}
                        for candidate in candidates]}, indent=2) + "\n")
    for file in target.iterdir():
        file.chmod(0o644)
    size = directory_size(target)
    if size > MAX_BYTES:
        shutil.rmtree(target)
        raise SystemExit(f"{name} is {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB package budget")
    for other in BUNDLED_CHECKPOINTS_DIR.iterdir():
        if other.is_dir() and other != target:
            shutil.rmtree(other)
    # Its training record, for the model card (model_cards/render_cards.py).
    record_dir = results_dir / "default_detector"
    record_dir.mkdir(exist_ok=True)
    for file in best.record_files:
        if file.is_file():
            shutil.copy2(file, record_dir / file.name)
    DEFAULT_DETECTOR_FILE.write_text(json.dumps({"name": name}, indent=2) + "\n")
    print(f"bundled {name} ({size / 1e6:.2f} MB, threshold {choice['threshold']:.4f}) in {target}")


if __name__ == "__main__":
    main()
