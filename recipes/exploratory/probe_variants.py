"""Exploratory, not a recipe of a shipped detector: the frozen-probe variants tried on the cross-source folds before
the image + highpass views were made a configuration (results/cross_source/README.md quotes what this prints).

Run after recipes/frozen_probe_cross_source.py has filled `data/probe_cache` (it reuses the normalised images and
the image-view features):

    python recipes/exploratory/probe_variants.py features VARIANT BACKBONE   # highpass, half, shuffle32, aug0, aug1
    python recipes/exploratory/probe_variants.py evaluate BACKBONE           # views x C, source-balanced logistic fits
    python recipes/exploratory/probe_variants.py heads BACKBONE              # other fits of the image-view features

`half`: the image view average-pooled to half resolution; `shuffle32`: 32-px patches of the crop in a fixed random
order; `augV`: each image after a random resize and JPEG/WebP re-encode (`CodecResizeAugment`, seeded per image and
V) before the `normalized` protocol, used to fit only (held-out images are always the clean ones).
"""

import json
import random
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parents[1]))
import frozen_probe_cross_source as recipe  # noqa: E402

from aigi.data.layouts import load_detection_records  # noqa: E402
from aigi.data.records import load_record_image, one_crop_pixel_values  # noqa: E402
from aigi.data.sources import source_balanced_weights, source_group  # noqa: E402
from aigi.data.transforms import CodecResizeAugment, get_protocol  # noqa: E402
from aigi.evaluation.cross_source import summarise_folds  # noqa: E402
from aigi.evaluation.metrics import binary_metrics  # noqa: E402
from aigi.image_io import ImageLoadError  # noqa: E402
from aigi.modeling.fiser.modeling_fiser import highpass_residual  # noqa: E402

RUNS, CACHE = Path("runs/cross_source"), Path("data/probe_cache")


def splits() -> dict[str, Path]:
    folds = sorted((RUNS / "folds").glob("fold_*"), key=lambda path: int(path.name.split("_")[1]))
    return {f"fold{k}": folder for k, folder in enumerate(folds)} | {h.name: h for h in (RUNS / "holdouts").glob("*")}


def augmented_images(records: list, view: int) -> tuple[np.ndarray, list[str]]:
    path = CACHE / f"aug{view}_images.npy"
    if not path.is_file():
        augment, protocol, arrays, ids = CodecResizeAugment(), get_protocol("normalized"), [], []
        for record in tqdm(records, desc=f"aug{view}"):
            try:
                image = load_record_image(record)
            except ImageLoadError:
                continue
            rng = random.Random(zlib.crc32(f"{record.id}/{view}".encode()))
            arrays.append(np.asarray(protocol(augment(image, rng)).convert("RGB")))
            ids.append(record.id)
        np.save(path, np.stack(arrays))
        (CACHE / f"aug{view}_images.json").write_text(json.dumps({"ids": ids}))
    return np.load(path, mmap_mode="r"), json.loads((CACHE / f"aug{view}_images.json").read_text())["ids"]


def shuffle_patches(pixel_values: torch.Tensor, patch: int) -> torch.Tensor:
    batch, channels, height, width = pixel_values.shape
    n = height // patch
    tiles = pixel_values.reshape(batch, channels, n, patch, n, patch).permute(0, 2, 4, 1, 3, 5)
    order = torch.from_numpy(np.random.default_rng(0).permutation(n * n))
    tiles = tiles.reshape(batch, n * n, channels, patch, patch)[:, order]
    tiles = tiles.reshape(batch, n, n, channels, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return tiles.reshape(batch, channels, height, width)


def rescale_residual(pixel_values: torch.Tensor, mode: str) -> torch.Tensor:
    """Pixels minus their 2x down- then up-sampled copy (`nearest`: NPR's neighbouring-pixel relations), times 4."""
    half = torch.nn.functional.interpolate(pixel_values, scale_factor=0.5, mode=mode)
    return 4.0 * (pixel_values - torch.nn.functional.interpolate(half, scale_factor=2, mode=mode))


VIEW_INPUTS = {"highpass": highpass_residual, "half": lambda pixels: torch.nn.functional.avg_pool2d(pixels, 2),
               "shuffle32": lambda pixels: shuffle_patches(pixels, 32),
               "npr": lambda pixels: rescale_residual(pixels, "nearest"),
               "rescale": lambda pixels: rescale_residual(pixels, "bilinear")}


def compute_features(variant: str, backbone: str) -> None:
    records = list({r.id: r for s in splits().values() for part in ("train", "held_out")
                    for r in load_detection_records(str(s / f"{part}.csv"))}.values())
    encoder, processor = recipe.frozen_encoder(backbone, 256, ["image"])
    if variant.startswith("aug"):
        images, ids = augmented_images(records, int(variant[3:]))
        (CACHE / f"features_{backbone}_{variant}_256.json").write_text(json.dumps(ids))
    else:
        images, _, _ = recipe.protocol_images(records, "normalized", CACHE)
    transform = VIEW_INPUTS.get(variant, lambda pixels: pixels)
    chunks = []
    for start in tqdm(range(0, len(images), 32), desc=variant):
        batch = [Image.fromarray(np.ascontiguousarray(array)) for array in images[start:start + 32]]
        pixels = one_crop_pixel_values(processor, batch)
        with torch.inference_mode():
            chunks.append(encoder.image_features(transform(pixels)).float().numpy())
    np.save(CACHE / f"features_{backbone}_{variant}_256.npy", np.concatenate(chunks))


def load_features(name: str, default_ids: list[str]) -> dict[str, np.ndarray]:
    ids_file = CACHE / f"features_{name}.json"
    return dict(zip(json.loads(ids_file.read_text()) if ids_file.is_file() else default_ids,
                    np.load(CACHE / f"features_{name}.npy")))


def cross_source(label: str, test_features: dict, fit, extra_train: list[dict] = (), clean_in_fit: bool = True):
    """Fit on each split's training sources, score its held-out ones, print the summary line."""
    predictions = {}
    for name, split in splits().items():
        train = [r for r in load_detection_records(str(split / "train.csv")) if r.id in test_features]
        held = [r for r in load_detection_records(str(split / "held_out.csv")) if r.id in test_features]
        views = ([test_features] if clean_in_fit else []) + list(extra_train)
        features = np.concatenate([np.stack([view[r.id] for r in train]) for view in views])
        labels = np.tile([r.label for r in train], len(views))
        logits = fit(features, labels, np.stack([test_features[r.id] for r in held]), train * len(views))
        predictions[name] = (np.array([r.label for r in held]), 1 / (1 + np.exp(-logits)), [r.generator for r in held])
    summary = summarise_folds([predictions[f"fold{k}"] for k in range(5)])
    external2 = binary_metrics(*predictions["external2"][:2])["auroc"]
    print(f"{label:38s} mean {summary['mean_auroc']:.3f} folds "
          + " ".join(f"{fold['auroc']:.3f}" for fold in summary["per_fold"])
          + f" pooled {summary['pooled']['auroc']:.3f} fake_acc {summary['pooled']['fake_acc']:.3f}"
          + f" external2 {external2:.3f}", flush=True)


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = train.mean(0), train.std(0)
    scale[scale == 0] = 1
    return (train - mean) / scale, (test - mean) / scale


def logistic(c: float, pca: int | None = None):
    def fit(train, labels, test, records):
        train, test = standardised(train, test)
        if pca:
            projection = PCA(pca, whiten=True, random_state=0).fit(train)
            train, test = projection.transform(train), projection.transform(test)
        model = LogisticRegression(C=c, max_iter=5000).fit(train, labels,
                                                           sample_weight=source_balanced_weights(records))
        return model.decision_function(test)
    return fit


def group_mean_logistic(c: float):
    def fit(train, labels, test, records):
        train, test = standardised(train, test)
        groups = np.array([source_group(r) for r in records])
        names = sorted(set(groups))
        means = np.stack([train[groups == g].mean(0) for g in names])
        group_labels = np.array([labels[groups == g][0] for g in names])
        model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(means, group_labels)
        return model.decision_function(test)
    return fit


def group_bagged_logistic(c: float, rounds: int = 20):
    def fit(train, labels, test, records):
        train, test = standardised(train, test)
        groups = np.array([source_group(r) for r in records])
        names, weights = np.array(sorted(set(groups))), source_balanced_weights(records)
        rng, total = np.random.default_rng(0), 0
        for _ in range(rounds):
            keep = np.isin(groups, rng.choice(names, int(0.7 * len(names)), replace=False))
            total = total + LogisticRegression(C=c, max_iter=3000).fit(
                train[keep], labels[keep], sample_weight=weights[keep]).decision_function(test)
        return total / rounds
    return fit


def main() -> None:
    torch.set_num_threads(1)
    command, *rest = sys.argv[1:]
    if command == "features":
        compute_features(*rest)
        return
    backbone = rest[0]
    ids = json.loads((CACHE / "normalized_images.json").read_text())["ids"]
    image = load_features(f"{backbone}_normalized_256", ids)
    if command == "heads":
        for c in (0.001, 0.003, 0.01):
            cross_source(f"logistic C{c}", image, logistic(c))
        for components in (32, 128):
            for c in (0.003, 0.03):
                cross_source(f"PCA {components} + logistic C{c}", image, logistic(c, components))
        for c in (0.01, 0.1, 1):
            cross_source(f"group-mean logistic C{c}", image, group_mean_logistic(c))
        cross_source("group-bagged logistic C0.003", image, group_bagged_logistic(0.003))
        return
    views = {"image": image} | {variant: load_features(f"{backbone}_{variant}_256", ids) for variant in VIEW_INPUTS
                                if (CACHE / f"features_{backbone}_{variant}_256.npy").is_file()}
    if "highpass" in views:
        for name in ("image", "half"):
            if name in views:
                views[f"{name}+highpass"] = {k: np.concatenate([views[name][k], views["highpass"][k]]) for k in image}
        encoder, _ = recipe.frozen_encoder(backbone, 256, ["image"])
        stage_channels = [info["num_chs"] for info in encoder.encoder.feature_info]
        bounds = np.cumsum([0] + [2 * channels for channels in stage_channels])
        for stages in range(2, len(stage_channels)):
            kept = {k: v[: bounds[stages]] / np.linalg.norm(v[: bounds[stages]]) for k, v in views["highpass"].items()}
            views[f"image+highpass stages<{stages}"] = {k: np.concatenate([image[k], kept[k]]) for k in image}
    augmented = [load_features(f"{backbone}_aug{v}_256", ids) for v in range(2)
                 if (CACHE / f"features_{backbone}_aug{v}_256.npy").is_file()]
    for c in (0.001, 0.003, 0.01):
        for name, features in views.items():
            cross_source(f"{name} C{c}", features, logistic(c))
        if augmented:
            cross_source(f"image, fit + augmented C{c}", image, logistic(c), augmented)
            cross_source(f"image, fit on augmented only C{c}", image, logistic(c), augmented, clean_in_fit=False)


if __name__ == "__main__":
    main()
