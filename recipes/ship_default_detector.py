"""Bundle the benchmark's default detector into the package: `src/aigi/checkpoints/<name>/` with its calibrated
threshold in config.json, its benchmark figures in benchmark.json, and `default.json` naming it.

Run from the repository root after `aigi benchmark` (recipes/benchmark_external_local.sh):
`python recipes/ship_default_detector.py [results/benchmark/results.json]`.
"""

import argparse
import json
import shutil
from pathlib import Path

import aigi  # noqa: F401  (registers the families with the Auto classes)
from aigi.registry import BUNDLED_CHECKPOINTS_DIR, DEFAULT_DETECTOR_FILE, directory_size
from transformers import AutoConfig

MAX_BYTES = 30_000_000
MODEL_FILES = ("model.safetensors", "preprocessor_config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results/benchmark/results.json")
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
    # The package holds the modeling code once (aigi.modeling): no remote-code copies or auto_map in the bundle;
    # `aigi export` writes both for the Hub.
    for code_file in target.glob("*.py"):
        code_file.unlink()
    config_values = json.loads((target / "config.json").read_text())
    config_values.pop("auto_map", None)
    (target / "config.json").write_text(json.dumps(config_values, indent=2, sort_keys=True) + "\n")
    for file in target.iterdir():
        file.chmod(0o644)
    (target / "benchmark.json").write_text(json.dumps(
        {"default_detector": choice, "results": row, "results_file": args.results}, indent=2) + "\n")
    size = directory_size(target)
    if size > MAX_BYTES:
        shutil.rmtree(target)
        raise SystemExit(f"{name} is {size / 1e6:.1f} MB, over the {MAX_BYTES / 1e6:.0f} MB package budget")
    for other in BUNDLED_CHECKPOINTS_DIR.iterdir():
        if other.is_dir() and other != target:
            shutil.rmtree(other)
    # The calibration scores, so that anyone can recompute the threshold (tests/test_default_detector.py does).
    selection = Path(results["config"]["output_dir"]) / "eval" / choice["name"] / "selection" / "predictions.csv"
    shutil.copy2(selection, Path(args.results).parent / "default_detector_selection_predictions.csv")
    # Its training record, for the model card (model_cards/render_cards.py).
    run_dir = Path(results["config"]["output_dir"]) / "runs" / choice["name"]
    record_dir = Path(args.results).parent / "default_detector"
    record_dir.mkdir(exist_ok=True)
    for file_name in ("training_args.json", "log.jsonl", "log.png", "process_0.json"):
        if (run_dir / file_name).is_file():
            shutil.copy2(run_dir / file_name, record_dir / file_name)
    DEFAULT_DETECTOR_FILE.write_text(json.dumps({"name": name}, indent=2) + "\n")
    print(f"bundled {name} ({size / 1e6:.2f} MB, threshold {choice['threshold']:.4f}) in {target}")


if __name__ == "__main__":
    main()
