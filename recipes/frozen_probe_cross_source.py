"""The frozen-feature probe under the cross-source protocol: FiSeR's timm slot with an EfficientNet-Lite's ImageNet-1k
weights (`--backbone`; frozen, never trained here), `feature_pooling="stages"` (mean and std of every stage's feature
map, L2-normalised) of each input view (`--input-views`: `image`, and `highpass`, the image's residual after a 3x3
blur, which keeps the pixel-level traces and little of the content), and a standardised logistic head, fitted on
each fold's training sources and scored on its held-out sources, with the folds and holdouts of `aigi benchmark
--config recipes/cross_source.yaml`.

Features are extracted once per image (the encoder is frozen, so a fold's detector scores an image exactly as
`features @ w + b`; the shipped checkpoint is checked against the pipeline at the end). With `--cache DIR`, the
protocol's output images (`<protocol>_images.npy`) and each backbone's features are kept there for later runs. The
inverse regularisation C (`--c`) and the fit's weighting (`--weighting`: none, or `source`, every source group of a
class weighing the same) are chosen by the mean cross-source AUROC, the benchmark's selection criterion. Writes
`--output`: `summary.json` (per setting: `summarise_folds`, the holdouts), the chosen setting's held-out scores
`predictions/C<C>_<weighting>/<split>.csv`,
`cross_source.md`; and the detector fitted on the whole pool with the chosen setting, its threshold at the target FPR
of the out-of-fold reals, to `--detector`. With `--pseudo-fakes MANIFEST` (aligned reconstructions of photos:
datasets_scripts/build_autoencoder_pseudo_fakes.py) and `--fit-fakes pseudo|both`, a split's fit also learns from the
reconstructions of its own training photos (never of a held-out one); `pseudo` drops the generator outputs from the
fit (the zero-fake variant). Run after the benchmark has written its fold manifests
(bash recipes/cross_source.sh):

    OMP_NUM_THREADS=2 python recipes/frozen_probe_cross_source.py --output results/cross_source_frozen_probe \
        --detector runs/cross_source/frozen_probe/final --cache data/probe_cache
    OMP_NUM_THREADS=2 python recipes/frozen_probe_cross_source.py --backbone efficientnet_lite0 \
        --input-views image,highpass --c 0.0003,0.001,0.003,0.01,0.1,1 \
        --output results/cross_source_frozen_probe_lite0_highpass \
        --detector runs/cross_source/frozen_probe_lite0_highpass/final --cache data/probe_cache   # the default
"""

import argparse
import csv
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers import pipeline

import aigi  # noqa: F401  (registers the families)
from aigi.image_io import ImageLoadError
from aigi.data.layouts import load_detection_records, read_manifest
from aigi.data.records import load_record_image, one_crop_pixel_values
from aigi.data.sources import source_balanced_weights
from aigi.data.transforms import get_protocol
from aigi.evaluation.cross_source import summarise_folds
from aigi.evaluation.metrics import binary_metrics
from aigi.inference.pipeline import fake_score
from aigi.modeling.fiser import FiSeRConfig, FiSeRForImageClassification, FiSeRImageProcessor, FiSeRModel
from aigi.train.heads import head_state
from aigi.train.imagenet_start import input_normalization, load_imagenet_weights

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def frozen_encoder(backbone: str, image_size: int, input_views: list[str]) -> tuple[FiSeRModel, FiSeRImageProcessor]:
    mean, std = input_normalization(backbone)
    config = FiSeRConfig(backbone=backbone, feature_layer=None, feature_pooling="stages", input_views=input_views,
                         image_size=image_size, image_mean=mean, image_std=std, head="logistic")
    encoder = FiSeRModel(config).eval()
    load_imagenet_weights(encoder.encoder, backbone)
    processor = FiSeRImageProcessor(crop_size={"height": image_size, "width": image_size}, image_mean=mean,
                                    image_std=std)
    return encoder, processor


def protocol_images(records: list, protocol: str, cache: Path | None,
                    name: str | None = None) -> tuple[np.ndarray, list[str], list[dict]]:
    """The protocol's output of every readable record as one uint8 array (all the same size: the protocol crops or
    pads), their ids, and the unreadable records; from `cache` (as `name`, default the protocol's) when it holds
    them."""
    name = name or protocol
    if cache is not None and (cache / f"{name}_images.npy").is_file():
        index = json.loads((cache / f"{name}_images.json").read_text())
        return np.load(cache / f"{name}_images.npy", mmap_mode="r"), index["ids"], index["failures"]
    transform = get_protocol(protocol)
    arrays, ids, failures = [], [], []
    for record in tqdm(records, desc=f"{protocol} images", unit="img"):
        try:
            arrays.append(np.asarray(transform(load_record_image(record)).convert("RGB")))
        except ImageLoadError as error:
            failures.append({"id": record.id, "error": str(error)})
            continue
        ids.append(record.id)
    images = np.stack(arrays)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / f"{name}_images.npy", images)
        (cache / f"{name}_images.json").write_text(json.dumps({"ids": ids, "failures": failures}))
    return images, ids, failures


def batched_features(images: np.ndarray, processor: FiSeRImageProcessor, features, desc: str,
                     batch_size: int = 32) -> np.ndarray:
    """`features(pixel_values)` of every image (the processor's one crop), `batch_size` at a time, as one array."""
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch"):
        batch = [Image.fromarray(np.ascontiguousarray(array)) for array in images[start:start + batch_size]]
        with torch.inference_mode():
            chunks.append(features(one_crop_pixel_values(processor, batch)).float().numpy())
    return np.concatenate(chunks)


def stage_features(encoder: FiSeRModel, processor: FiSeRImageProcessor, images: np.ndarray, name: str,
                   cache: Path | None, batch_size: int = 32) -> np.ndarray:
    """The frozen encoder's pooled stage features of `images`, from `cache` when it holds them under `name`."""
    path = cache / f"features_{name}.npy" if cache is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    features = batched_features(images, processor, encoder.image_features, f"{name} features", batch_size)
    if path is not None:
        np.save(path, features)
    return features


def pseudo_fakes_by_photo(manifest: Path) -> dict[str, object]:
    """The pseudo-fake record of every photo (its `real_path`) in a pseudo-fake manifest."""
    with open(manifest, newline="") as handle:
        photo_of = {row["path"]: row["real_path"] for row in csv.DictReader(handle)}
    return {photo_of[record.id]: record for record in read_manifest(manifest)}


def setting_name(c: float, weighting: str) -> str:
    return f"C{c:g}_{weighting}"


def fit_weights(records: list, weighting: str) -> np.ndarray | None:
    if weighting == "none":
        return None
    if weighting == "source":
        return source_balanced_weights(records)
    raise ValueError(f"weighting must be none or source, got {weighting!r}")


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
    parser.add_argument("--backbone", default=BACKBONES[0], choices=BACKBONES)
    parser.add_argument("--input-views", default="image",
                        help="Comma-separated input views of the encoder (FiSeRConfig.input_views): image, highpass.")
    parser.add_argument("--cache", type=Path, help="Folder that keeps the protocol's images and the features.")
    parser.add_argument("--c", default="0.001,0.003,0.01,0.1,1",
                        help="Inverse regularisation strengths to choose from.")
    parser.add_argument("--weighting", default="none,source",
                        help="Fit weightings to choose from: none, source (every source group of a class weighs the "
                             "same: aigi.data.sources.source_balanced_weights).")
    parser.add_argument("--target-fpr", type=float, default=0.05)
    parser.add_argument("--pseudo-fakes", type=Path,
                        help="Manifest of aligned pseudo-fakes with a `real_path` column naming each one's photo "
                             "(datasets_scripts/build_autoencoder_pseudo_fakes.py); a fit may use those of its "
                             "training photos only (--fit-fakes).")
    parser.add_argument("--fit-fakes", default="generators", choices=("generators", "pseudo", "both"),
                        help="The fakes a fit learns from: the pool's generator outputs, the pseudo-fakes of the "
                             "training photos (the zero-fake variant), or both. Held-out sources are always scored "
                             "on the pool's own images.")
    args = parser.parse_args()
    if args.fit_fakes != "generators" and args.pseudo_fakes is None:
        parser.error(f"--fit-fakes {args.fit_fakes} needs --pseudo-fakes")
    output, runs = Path(args.output), Path(args.runs)
    output.mkdir(parents=True, exist_ok=True)
    folds = sorted((runs / "folds").glob("fold_*"), key=lambda path: int(path.name.split("_")[1]))
    holdouts = sorted((runs / "holdouts").glob("*"))
    splits = {f"fold{k}": folder for k, folder in enumerate(folds)} | {folder.name: folder for folder in holdouts}

    input_views = args.input_views.split(",")
    encoder, processor = frozen_encoder(args.backbone, args.image_size, input_views)
    start = time.time()
    pool = {record.id: record for split in splits.values() for part in ("train", "held_out")
            for record in load_detection_records(str(split / f"{part}.csv"))}
    images, ids, failures = protocol_images(list(pool.values()), args.protocol, args.cache)
    views_name = "" if input_views == ["image"] else "_" + "+".join(input_views)
    features_name = f"{args.backbone}_{args.protocol}_{args.image_size}{views_name}"
    features = stage_features(encoder, processor, images, features_name, args.cache)
    feature_of = dict(zip(ids, features))
    extraction_seconds = time.time() - start
    print(f"features of {len(feature_of)} images in {extraction_seconds:.0f} s ({len(failures)} unreadable)")

    pseudo_fake_of = {}
    if args.pseudo_fakes is not None:
        pseudo_fake_of = pseudo_fakes_by_photo(args.pseudo_fakes)
        # Keyed by the manifest's content: a rebuilt set (same folder, new images) never reuses stale features.
        tag = f"{args.pseudo_fakes.parent.name}_{hashlib.sha1(args.pseudo_fakes.read_bytes()).hexdigest()[:10]}"
        pseudo_images, pseudo_ids, _ = protocol_images(list(pseudo_fake_of.values()), args.protocol, args.cache,
                                                       name=f"{args.protocol}_{tag}")
        pseudo_features = stage_features(encoder, processor, pseudo_images, f"{features_name}_{tag}", args.cache)
        feature_of |= dict(zip(pseudo_ids, pseudo_features))

    def fit_records(records: list) -> list:
        """The records a fit learns from: `records` (a split's training part), with the pseudo-fakes of its photos
        (`--fit-fakes pseudo` or `both`) and without its generator outputs (`pseudo`)."""
        if args.fit_fakes == "generators":
            return records
        pseudo = [pseudo_fake_of[record.id] for record in records if record.id in pseudo_fake_of]
        pseudo = [record for record in pseudo if record.id in feature_of]
        if args.fit_fakes == "pseudo":
            return [record for record in records if record.label == 0] + pseudo
        return records + pseudo

    def part(split: Path, name: str):
        records = [record for record in load_detection_records(str(split / f"{name}.csv")) if record.id in feature_of]
        if name == "train":
            records = fit_records(records)
        return (records, np.stack([feature_of[record.id] for record in records]),
                np.array([record.label for record in records]))

    summaries, settings, held_out = {}, {}, {}
    for weighting in args.weighting.split(","):
        for c in [float(value) for value in args.c.split(",")]:
            key = setting_name(c, weighting)
            settings[key] = {"logistic_c": c, "weighting": weighting}
            predictions = {}
            for split_name, split in splits.items():
                train_records, train_features, train_labels = part(split, "train")
                records, features, labels = part(split, "held_out")
                state, _ = head_state("logistic", train_features, train_labels, logistic_c=c, standardize=True,
                                      sample_weight=fit_weights(train_records, weighting))
                scores = logistic_scores(features, state)
                predictions[split_name] = (labels, scores, [record.generator for record in records])
                held_out[key, split_name] = (records, scores)
            summary = summarise_folds([predictions[f"fold{k}"] for k in range(len(folds))],
                                      target_fpr=args.target_fpr)
            for holdout in holdouts:
                labels, scores, _ = predictions[holdout.name]
                metrics = binary_metrics(labels, scores, threshold=summary["threshold_at_target_fpr"])
                summary.setdefault("holdouts", {})[holdout.name] = {
                    key: metrics.get(key) for key in ("auroc", "ap", "real_acc", "fake_acc")}
            summaries[key] = {**settings[key], **summary}
            print(f"{key}: mean cross-source AUROC {summary['mean_auroc']:.3f}, per fold "
                  + " ".join(f"{fold['auroc']:.3f}" for fold in summary["per_fold"]))
    chosen = max(summaries, key=lambda key: summaries[key]["mean_auroc"])
    best = summaries[chosen]
    folder = output / "predictions" / chosen
    folder.mkdir(parents=True, exist_ok=True)
    for split_name in splits:
        records, scores = held_out[chosen, split_name]
        with open(folder / f"{split_name}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "index", "label", "generator", "score"])
            for index, (record, score) in enumerate(zip(records, scores)):
                writer.writerow([record.id, index, record.label, record.generator, float(score)])

    records = fit_records([record for record in pool.values() if record.id in feature_of])
    features = np.stack([feature_of[record.id] for record in records])
    labels = np.array([record.label for record in records])
    state, fields = head_state("logistic", features, labels, logistic_c=best["logistic_c"], standardize=True,
                               sample_weight=fit_weights(records, best["weighting"]))
    config = FiSeRConfig.from_dict({**encoder.config.to_dict(), **fields, "head": "logistic",
                                    "decision_threshold": best["threshold_at_target_fpr"]})
    detector = FiSeRForImageClassification(config).eval()
    detector.fiser.load_state_dict(encoder.state_dict())
    detector.head.load_state_dict(state)
    detector.save_pretrained(args.detector)
    processor.save_pretrained(args.detector)
    # The saved detector scores as the probe did: check a few images through the pipeline.
    check = records[:: max(1, len(records) // 16)][:16]
    pipe = pipeline("ai-image-detection", model=args.detector)
    piped = [fake_score(output) for output in pipe([record.image for record in check], protocol=args.protocol)]
    probe = logistic_scores(np.stack([feature_of[record.id] for record in check]), state)
    deviation = float(np.max(np.abs(np.array(piped) - probe)))
    if deviation > 1e-4:
        raise SystemExit(f"the saved detector scores differ from the probe's by {deviation}")

    report = {"backbone": args.backbone, "feature_pooling": "stages", "input_views": input_views,
              "fit_fakes": args.fit_fakes, "pseudo_fakes": str(args.pseudo_fakes) if args.pseudo_fakes else None,
              "protocol": args.protocol,
              "image_size": args.image_size, "chosen": chosen, **settings[chosen],
              "rule": "highest mean cross-source AUROC",
              "extraction_seconds": extraction_seconds, "images": len(feature_of),
              "unreadable": failures, "pipeline_check_max_deviation": deviation,
              "detector": str(args.detector), "summaries": summaries}
    (output / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| C | weighting | mean AUROC | ± std | " + " | ".join(f"fold {k}" for k in range(len(folds)))
             + " | pooled AUROC | threshold | real acc | fake acc | "
             + " | ".join(f"{holdout.name} AUROC | {holdout.name} fake acc" for holdout in holdouts) + " |",
             "|---" * (7 + len(folds) + 2 * len(holdouts)) + "|"]
    for key, summary in summaries.items():
        pooled = summary["pooled"]
        cells = [f"{summary['logistic_c']:g}", summary["weighting"] + (" (chosen)" if key == chosen else ""),
                 f"{summary['mean_auroc']:.3f}",
                 f"{summary['std_auroc']:.3f}"] + [f"{fold['auroc']:.3f}" for fold in summary["per_fold"]]
        cells += [f"{pooled['auroc']:.3f}", f"{summary['threshold_at_target_fpr']:.4f}", f"{pooled['real_acc']:.3f}",
                  f"{pooled['fake_acc']:.3f}"]
        for holdout in holdouts:
            values = summary["holdouts"][holdout.name]
            cells += [f"{values['auroc']:.3f}", f"{values['fake_acc']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    (output / "cross_source.md").write_text("\n".join(lines) + "\n")
    print(f"chosen {chosen}; detector (threshold {best['threshold_at_target_fpr']:.4f}) in {args.detector}")


if __name__ == "__main__":
    main()
