"""Collect the offline SynerDetect run (recipes/synerdetect_offline.sh) into results/synerdetect/: per-fold training
logs and plots, the components' records, the wall time and peak memory of each stage, and metrics.json (per-fold
AUROC / AP from the benchmark's results.json). Scoring time per fold: the held-out metrics.json's mtime minus the
fold model's (the benchmark scores right after training). Usage: python recipes/synerdetect_offline_report.py"""

import json
import re
import shutil
from pathlib import Path

RUNS, ROOT, RESULTS = Path("runs/cross_source"), Path("runs/synerdetect_offline"), Path("results/synerdetect")


def gnu_time(path: Path) -> dict:
    text = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    seconds = sum(float(part) * 60 ** index for index, part in enumerate(reversed(wall.split(":"))))
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"wall_s": round(seconds, 1), "peak_rss_mb": round(peak / 1024, 1)}


def main() -> None:
    stages, folds = {}, []
    for fold in range(5):
        components = json.loads((ROOT / "components" / f"fold{fold}" / "components.json").read_text())
        run = RUNS / "runs" / f"synerdetect_offline__fold{fold}"
        target = RESULTS / "training" / f"fold{fold}"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("log.jsonl", "log.png", "process_0.json", "benchmark_train.log"):
            shutil.copy2(run / name, target / name)
        (target / "components.json").write_text(json.dumps(components, indent=2) + "\n")
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        metrics_file = RUNS / "eval" / f"synerdetect_offline__fold{fold}" / "normalized_crops1" / "held_out" / "metrics.json"
        scoring_s = metrics_file.stat().st_mtime - (run / "final" / "config.json").stat().st_mtime
        stages[f"fold{fold}"] = {
            "components_process": gnu_time(ROOT / f"time_components_fold{fold}.txt"),
            "unet_train_s": components["train_s"], "real_decode_s": components["decode_s"],
            "unet_final_loss": components["log"][-1]["loss"],
            "synerdetect_train_s": round(json.loads((run / "process_0.json").read_text())["seconds"], 1),
            "synerdetect_final_loss": round(log[-1]["loss"], 4),
            "mean_inversion_cache_hits": round(sum(r.get("inversion_cache_hits", 0) for r in log) / len(log), 3),
            "scoring_s": round(scoring_s, 1),
            "held_out_images": json.loads(metrics_file.read_text())["pooled"]["n"],
        }
    stages["benchmark_process"] = gnu_time(ROOT / "time_benchmark.txt")
    results = json.loads((RESULTS / "results.json").read_text())
    summary = results["detectors"][0]["cross_source"]["normalized_crops1"]
    metrics = {key: summary[key] for key in summary }
    (RESULTS / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (RESULTS / "stages.json").write_text(json.dumps(stages, indent=2) + "\n")
    print(json.dumps(stages, indent=1))
    print(json.dumps({key: metrics[key] for key in metrics if key in ("mean_auroc", "std_auroc", "mean_ap", "per_fold")},
                     indent=1)[:3000])


if __name__ == "__main__":
    main()
