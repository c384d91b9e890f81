"""The frozen-feature probe under the cross-source protocol: FiSeR's timm slot with EfficientNet-Lite0's ImageNet-1k
weights (frozen, never trained here), `feature_pooling="stages"` (mean and std of every stage's feature map, L2-
normalised), and a standardised logistic head, fitted on each fold's training sources and scored on its held-out
sources, with the folds and holdouts of `aigi benchmark --config recipes/cross_source.yaml`.

Features are extracted once per image (the encoder is frozen, so a fold's detector scores an image exactly as
`features @ w + b`; the shipped checkpoint is checked against the pipeline at the end). The inverse regularisation C is
chosen among `--c` by the mean cross-source AUROC, the selection criterion of the benchmark. Writes `--output`:
`summary.json` (per C: `summarise_folds`, the holdouts), `predictions/<C>/fold<k>.csv`, `cross_source.md`; and the
detector fitted on the whole pool at the chosen C, threshold at the target FPR of the out-of-fold reals, to
`--detector`. Run after the benchmark has written its fold manifests (bash recipes/cross_source.sh):

    OMP_NUM_THREADS=2 python recipes/frozen_probe_cross_source.py --output results/cross_source_frozen_probe \
        --detector runs/cross_source/frozen_probe/final
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

import aigi  # noqa: F401  (registers the families)
from aigi.data.layouts import load_detection_records
from aigi.evaluation.cross_source import summarise_folds
from aigi.evaluation.features import extract_features
from aigi.evaluation.metrics import binary_metrics
from aigi.inference.pipeline import fake_score
from aigi.modeling.fiser import FiSeRConfig, FiSeRForImageClassification, FiSeRImageProcessor, FiSeRModel
from aigi.train.heads import head_state
from aigi.train.imagenet_start import input_normalization, load_imagenet_weights

BACKBONE = "efficientnet_lite0"


def frozen_encoder(image_size: int) -> tuple[FiSeRModel, FiSeRImageProcessor]:
    mean, std = input_normalization(BACKBONE)
    config = FiSeRConfig(backbone=BACKBONE, feature_layer=None, feature_pooling="stages", image_size=image_size,
                         image_mean=mean, image_std=std, head="logistic")
    encoder = FiSeRModel(config).eval()
    load_imagenet_weights(encoder.encoder, BACKBONE)
    processor = FiSeRImageProcessor(crop_size={"height": image_size, "width": image_size}, image_mean=mean,
                                    image_std=std)
    return encoder, processor


def logistic_scores(features: np.ndarray, state: dict) -> np.ndarray:
    """P(fake) of the logistic head (the detector's softmax over [0, w.x + b])."""
    logit = features @ state["linear.weight"].numpy()[0] + float(state["linear.bias"][0])
    return 1.0 / (1.0 + np.exp(-logit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/cross_source", help="The benchmark's output_dir (folds/, holdouts/).")
    parser.add_argument("--output", required=True)
    parser.add_argument("--detector", required=True)
    parser.add_argument("--protocol", default="normalized")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--c", default="0.01,0.1,1", help="Inverse regularisation strengths to choose from.")
    parser.add_argument("--target-fpr", type=float, default=0.05)
    args = parser.parse_args()
    output, runs = Path(args.output), Path(args.runs)
    output.mkdir(parents=True, exist_ok=True)
    folds = sorted((runs / "folds").glob("fold_*"), key=lambda path: int(path.name.split("_")[1]))
    holdouts = sorted((runs / "holdouts").glob("*"))
    splits = {f"fold{k}": folder for k, folder in enumerate(folds)} | {folder.name: folder for folder in holdouts}

    encoder, processor = frozen_encoder(args.image_size)
    start = time.time()
    pool = {record.id: record for split in splits.values() for part in ("train", "held_out")
            for record in load_detection_records(str(split / f"{part}.csv"))}
    extracted = extract_features(encoder.image_features, processor, list(pool.values()), protocol=args.protocol,
                                 description="frozen stage features")
    feature_of = dict(zip(extracted.ids, extracted.features))
    extraction_seconds = time.time() - start
    print(f"features of {len(feature_of)} images in {extraction_seconds:.0f} s ({len(extracted.failures)} unreadable)")

    def part(split: Path, name: str):
        records = [record for record in load_detection_records(str(split / f"{name}.csv")) if record.id in feature_of]
        return (records, np.stack([feature_of[record.id] for record in records]),
                np.array([record.label for record in records]))

    summaries = {}
    for c in [float(value) for value in args.c.split(",")]:
        predictions = {}
        for split_name, split in splits.items():
            _, train_features, train_labels = part(split, "train")
            records, features, labels = part(split, "held_out")
            state, _ = head_state("logistic", train_features, train_labels, logistic_c=c, standardize=True)
            scores = logistic_scores(features, state)
            predictions[split_name] = (labels, scores, [record.generator for record in records])
            folder = output / "predictions" / f"C{c:g}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{split_name}.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["id", "index", "label", "generator", "score"])
                for index, (record, score) in enumerate(zip(records, scores)):
                    writer.writerow([record.id, index, record.label, record.generator, float(score)])
        summary = summarise_folds([predictions[f"fold{k}"] for k in range(len(folds))], target_fpr=args.target_fpr)
        for holdout in holdouts:
            labels, scores, _ = predictions[holdout.name]
            metrics = binary_metrics(labels, scores, threshold=summary["threshold_at_target_fpr"])
            summary.setdefault("holdouts", {})[holdout.name] = {
                key: metrics.get(key) for key in ("auroc", "ap", "real_acc", "fake_acc")}
        summaries[f"{c:g}"] = summary
        print(f"C {c:g}: mean cross-source AUROC {summary['mean_auroc']:.3f}, per fold "
              + " ".join(f"{fold['auroc']:.3f}" for fold in summary["per_fold"]))
    chosen = max(summaries, key=lambda key: summaries[key]["mean_auroc"])
    best = summaries[chosen]

    records = list(pool.values())
    features = np.stack([feature_of[record.id] for record in records if record.id in feature_of])
    labels = np.array([record.label for record in records if record.id in feature_of])
    state, fields = head_state("logistic", features, labels, logistic_c=float(chosen), standardize=True)
    config = FiSeRConfig.from_dict({**encoder.config.to_dict(), **fields, "head": "logistic",
                                    "decision_threshold": best["threshold_at_target_fpr"]})
    detector = FiSeRForImageClassification(config).eval()
    detector.fiser.load_state_dict(encoder.state_dict())
    detector.head.load_state_dict(state)
    detector.save_pretrained(args.detector)
    processor.save_pretrained(args.detector)
    # The saved detector scores as the probe did: check a few images through the pipeline.
    check = [record for record in records[:: max(1, len(records) // 16)] if record.id in feature_of][:16]
    pipe = pipeline("ai-image-detection", model=args.detector)
    piped = [fake_score(output) for output in pipe([record.image for record in check], protocol=args.protocol)]
    probe = logistic_scores(np.stack([feature_of[record.id] for record in check]), state)
    deviation = float(np.max(np.abs(np.array(piped) - probe)))
    if deviation > 1e-4:
        raise SystemExit(f"the saved detector scores differ from the probe's by {deviation}")

    report = {"backbone": BACKBONE, "feature_pooling": "stages", "protocol": args.protocol,
              "image_size": args.image_size, "chosen_c": float(chosen), "rule": "highest mean cross-source AUROC",
              "extraction_seconds": extraction_seconds, "images": len(feature_of),
              "unreadable": extracted.failures, "pipeline_check_max_deviation": deviation,
              "detector": str(args.detector), "summaries": summaries}
    (output / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| C | mean AUROC | ± std | " + " | ".join(f"fold {k}" for k in range(len(folds)))
             + " | pooled AUROC | threshold | real acc | fake acc | "
             + " | ".join(f"{holdout.name} AUROC | {holdout.name} fake acc" for holdout in holdouts) + " |",
             "|---" * (6 + len(folds) + 2 * len(holdouts)) + "|"]
    for key, summary in summaries.items():
        pooled = summary["pooled"]
        cells = [key + (" (chosen)" if key == chosen else ""), f"{summary['mean_auroc']:.3f}",
                 f"{summary['std_auroc']:.3f}"] + [f"{fold['auroc']:.3f}" for fold in summary["per_fold"]]
        cells += [f"{pooled['auroc']:.3f}", f"{summary['threshold_at_target_fpr']:.4f}", f"{pooled['real_acc']:.3f}",
                  f"{pooled['fake_acc']:.3f}"]
        for holdout in holdouts:
            values = summary["holdouts"][holdout.name]
            cells += [f"{values['auroc']:.3f}", f"{values['fake_acc']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    (output / "cross_source.md").write_text("\n".join(lines) + "\n")
    print(f"chosen C {chosen}; detector (threshold {best['threshold_at_target_fpr']:.4f}) in {args.detector}")


if __name__ == "__main__":
    main()
