"""Bundle the benchmark's default detector into the package: `src/aigi/checkpoints/<name>/` with its calibrated
threshold in config.json, the crops it was chosen with in preprocessor_config.json, its benchmark figures in
benchmark.json, and `default.json` naming it. The scores its threshold was calibrated on go next to the results
(`default_detector_calibration_predictions.csv`: the out-of-fold scores of the cross-source protocol, or the
selection scores of an in-source benchmark), so that anyone can recompute it.

Run from the repository root after `aigi benchmark` (recipes/cross_source.sh):
`python recipes/ship_default_detector.py [results/cross_source/results.json]`.
"""

import argparse
import json
import shutil
from pathlib import Path

import aigi  # noqa: F401  (registers the families with the Auto classes)
from aigi.evaluation.benchmark import scoring_name
from aigi.registry import BUNDLED_CHECKPOINTS_DIR, DEFAULT_DETECTOR_FILE, directory_size
from transformers import AutoConfig, AutoImageProcessor

MAX_BYTES = 30_000_000
MODEL_FILES = ("model.safetensors", "preprocessor_config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results/cross_source/results.json")
    args = parser.parse_args()
    results = json.loads(Path(args.results).read_text())
    choice = results["default_detector"]
    if choice is None:
        raise SystemExit(f"{args.results} names no default detector")
    row = next(row for row in results["detectors"] if row["name"] == choice["name"])
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
    config_values = json.loads((target / "config.json").read_text())
    config_values.pop("auto_map", None)
    (target / "config.json").write_text(json.dumps(config_values, indent=2, sort_keys=True) + "\n")
    for file in target.iterdir():
        file.chmod(0o644)
    output_dir = Path(results["config"]["output_dir"])
    calibration = Path(args.results).parent / "default_detector_calibration_predictions.csv"
    write_calibration_scores(output_dir, choice, results["config"], calibration)
    (target / "benchmark.json").write_text(json.dumps(
        {"default_detector": choice, "results": row, "results_file": args.results,
         "calibration_predictions": calibration.as_posix()}, indent=2) + "\n")
    size = directory_size(target)
    if size > MAX_BYTES:
        shutil.rmtree(target)
        raise SystemExit(f"{name} is {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB package budget")
    for other in BUNDLED_CHECKPOINTS_DIR.iterdir():
        if other.is_dir() and other != target:
            shutil.rmtree(other)
    # Its training record, for the model card (model_cards/render_cards.py).
    run_dir = output_dir / "runs" / choice["name"]
    record_dir = Path(args.results).parent / "default_detector"
    record_dir.mkdir(exist_ok=True)
    for file_name in ("training_args.json", "log.jsonl", "log.png", "process_0.json"):
        if (run_dir / file_name).is_file():
            shutil.copy2(run_dir / file_name, record_dir / file_name)
    DEFAULT_DETECTOR_FILE.write_text(json.dumps({"name": name}, indent=2) + "\n")
    print(f"bundled {name} ({size / 1e6:.2f} MB, threshold {choice['threshold']:.4f}) in {target}")


def write_calibration_scores(output_dir: Path, choice: dict, config: dict, path: Path) -> None:
    """The predictions the threshold was set on: every fold's held-out scores under the chosen scoring (the
    cross-source protocol), or the selection data's scores."""
    if "cross_source_mean_auroc" not in choice:
        shutil.copy2(output_dir / "eval" / choice["name"] / "selection" / "predictions.csv", path)
        return
    scoring = scoring_name(choice["protocol"], int(choice["num_crops"]))
    lines = []
    for fold in range(int(config["cross_source"]["folds"])):
        fold_lines = (output_dir / "eval" / f"{choice['name']}__fold{fold}" / scoring / "held_out" /
                      "predictions.csv").read_text().splitlines()
        lines += fold_lines if not lines else fold_lines[1:]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
