"""Exploratory, not a recipe of a shipped detector: the frozen-probe variants tried on the cross-source folds before
the image + highpass views were made a configuration (results/cross_source/README.md quotes what this prints).

Run after recipes/frozen_probe_cross_source.py has filled `data/probe_cache` (it reuses the normalised images and
the image-view features):

    python recipes/exploratory/probe_variants.py features VARIANT BACKBONE   # highpass, half, shuffle32, npr,
                                                                             # rescale, aug0, aug1
    python recipes/exploratory/probe_variants.py evaluate BACKBONE           # views x C, source-balanced logistic fits
    python recipes/exploratory/probe_variants.py heads BACKBONE              # other fits of the image-view features
    python recipes/exploratory/probe_variants.py normalisations BACKBONE     # other scalings of image + highpass
    python recipes/exploratory/probe_variants.py spectral                    # log power spectra, alone and fused
    python recipes/exploratory/probe_variants.py fusion DETECTOR [DETECTOR ...]  # probe + benchmark rows' scores
    python recipes/exploratory/probe_variants.py robustness BACKBONE         # the two-view probe on re-encoded images
    python recipes/exploratory/probe_variants.py padding                     # shipped probe without padded fakes
    python recipes/exploratory/probe_variants.py features gram BACKBONE      # early stages' channel correlations
    python recipes/exploratory/probe_variants.py gram BACKBONE               # the two views + those correlations
    python recipes/exploratory/probe_variants.py svm BACKBONE                # RBF SVM on the two views' features
    python recipes/exploratory/probe_variants.py ensemble BACKBONE BACKBONE  # mean logit of two-view probes

`half`: the image view average-pooled to half resolution; `shuffle32`: 32-px patches of the crop in a fixed random
order; `npr`: the pixels minus their 2x nearest-neighbour down- and up-sampled copy (NPR's neighbouring-pixel
relations), `rescale`: the same with bilinear resampling; `augV`: each image after a random resize and JPEG/WebP
re-encode (`CodecResizeAugment`, seeded per image and V) before the `normalized` protocol, used to fit only (held-out
images are always the clean ones). `fusion`: the shipped probe's held-out log-odds plus those of `aigi benchmark` rows
(their fold models' `predictions.csv` under runs/cross_source/eval), summed with fixed weights, nothing fitted.
`robustness`: the two-view (image + highpass) probe fitted on the clean training images, scored on held-out images of
which one class or both went through the `aug0` resize + re-encode first: how much it leans on the compression
history that separates the pool's classes (real photos were JPEGs, most fakes PNGs), and what fitting on the
augmented copies too buys back.
`spectral`: the grey image's log power spectrum as 32 radial bins, a 16 x 16 grid
of the centred spectrum and the peaks at multiples of 1/8 of the sampling rate (GAN upsampling traces).
"""

import csv
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
from sklearn.svm import SVC
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parents[1]))
import frozen_probe_cross_source as recipe  # noqa: E402

from aigi.data.layouts import load_detection_records  # noqa: E402
from aigi.data.records import load_record_image  # noqa: E402
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


def all_records() -> list:
    return list({r.id: r for s in splits().values() for part in ("train", "held_out")
                 for r in load_detection_records(str(s / f"{part}.csv"))}.values())


def compute_features(variant: str, backbone: str) -> None:
    records = all_records()
    encoder, processor = recipe.frozen_encoder(backbone, 256, ["image"])
    if variant.startswith("aug"):
        images, ids = augmented_images(records, int(variant[3:]))
        (CACHE / f"features_{backbone}_{variant}_256.json").write_text(json.dumps(ids))
    else:
        images, _, _ = recipe.protocol_images(records, "normalized", CACHE)
    transform = VIEW_INPUTS.get(variant, lambda pixels: pixels)
    np.save(CACHE / f"features_{backbone}_{variant}_256.npy",
            recipe.batched_features(images, processor, lambda pixels: encoder.image_features(transform(pixels)),
                                    variant))


def compute_stem1_features(backbone: str, view: str, crop: int) -> None:
    """Stage statistics of one view of the centre `crop` px with the encoder's stem convolution at stride 1 instead
    of 2 (Gragnaniello et al. 2021: the first downsampling discards the pixel-level traces), cached."""
    records = all_records()
    encoder, processor = recipe.frozen_encoder(backbone, 256, ["image"])
    encoder.encoder.conv_stem.stride = (1, 1)
    images, _, _ = recipe.protocol_images(records, "normalized", CACHE)
    transform, margin = {"image": lambda pixels: pixels, "highpass": highpass_residual}[view], (256 - crop) // 2

    def features(pixels):
        return encoder.image_features(transform(pixels)[:, :, margin:margin + crop, margin:margin + crop])
    np.save(CACHE / f"features_{backbone}_stem1_{view}{crop}_256.npy",
            recipe.batched_features(images, processor, features, f"stem1 {view} {crop}"))


def compare_stem1(backbone: str, ids: list[str]) -> None:
    """The shipped two views against variants whose high-pass (or image) view is seen with a stride-1 stem."""
    image = load_features(f"{backbone}_normalized_256", ids)
    highpass = load_features(f"{backbone}_highpass_256", ids)
    stem1 = {path.stem.split("_stem1_")[1].removesuffix("_256"): load_features(path.stem.removeprefix("features_"), ids)
             for path in sorted(CACHE.glob(f"features_{backbone}_stem1_*_256.npy"))}
    candidates = {"shipped image + highpass": {k: np.concatenate([image[k], highpass[k]]) for k in ids}}
    for name, features in stem1.items():
        candidates[f"stem1 {name} alone"] = features
        candidates[f"image + stem1 {name}"] = {k: np.concatenate([image[k], features[k]]) for k in ids}
        candidates[f"image + highpass + stem1 {name}"] = {k: np.concatenate([image[k], highpass[k], features[k]])
                                                          for k in ids}
    for name, features in candidates.items():
        for c in (0.0003, 0.001, 0.003):
            cross_source(f"{name} C{c}", features, logistic(c))


def channel_correlations(stage: torch.Tensor) -> torch.Tensor:
    """The upper triangle of each image's channel correlation matrix over the stage's positions (Gram-Net's texture
    statistics, invariant to each channel's scale): `[batch, channels x (channels - 1) / 2]`."""
    flat = stage.flatten(2).float()
    flat = flat - flat.mean(-1, keepdim=True)
    flat = flat / flat.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    rows, cols = torch.triu_indices(stage.shape[1], stage.shape[1], offset=1)
    return (flat @ flat.transpose(1, 2))[:, rows, cols]


def compute_gram_features(backbone: str, stages: int = 3) -> None:
    """Channel correlations of the first `stages` stages of the image and high-pass views, cached per view."""
    records = all_records()
    encoder, processor = recipe.frozen_encoder(backbone, 256, ["image"])
    images, _, _ = recipe.protocol_images(records, "normalized", CACHE)
    for view, transform in (("image", lambda pixels: pixels), ("highpass", highpass_residual)):
        def features(pixels):
            maps = encoder.encoder.forward_intermediates(transform(pixels), intermediates_only=True, stop_early=True,
                                                         indices=list(range(stages)))
            return torch.cat([channel_correlations(stage) for stage in maps], 1)
        np.save(CACHE / f"features_{backbone}_gram_{view}_256.npy",
                recipe.batched_features(images, processor, features, f"gram {view}"))


def rbf_svm(c: float):
    """A source-balanced RBF SVM on the standardised features, gamma 1 / their dimension."""
    def fit(train, labels, test, records):
        train, test = standardised(train, test)
        model = SVC(C=c, gamma=1.0 / train.shape[1]).fit(train, labels, sample_weight=source_balanced_weights(records))
        return model.decision_function(test)
    return fit


def compare_svm(backbone: str, ids: list[str]) -> None:
    features = load_features(f"{backbone}_normalized_256_image+highpass", ids)
    for c in (0.1, 1.0, 10.0):
        cross_source(f"image + highpass, RBF SVM C{c}", features, rbf_svm(c))


def compare_ensemble(backbones: list[str], ids: list[str]) -> None:
    """The mean of the two-view probes' held-out logits over several encoders, each fitted as shipped."""
    features = [load_features(f"{backbone}_normalized_256_image+highpass", ids) for backbone in backbones]
    bounds = np.cumsum([0] + [view[ids[0]].shape[0] for view in features])

    def fit(train, labels, test, records):
        return np.mean([logistic(0.001)(train[:, start:end], labels, test[:, start:end], records)
                        for start, end in zip(bounds[:-1], bounds[1:])], axis=0)
    cross_source(f"mean logit of {' + '.join(backbones)}", {k: np.concatenate([f[k] for f in features]) for k in ids},
                 fit)


def compare_gram(backbone: str, ids: list[str]) -> None:
    """The shipped two-view features with the early stages' channel correlations of either view or both."""
    shipped = load_features(f"{backbone}_normalized_256_image+highpass", ids)
    grams = {view: load_features(f"{backbone}_gram_{view}_256", ids) for view in ("image", "highpass")}
    unit = {view: {k: v / np.linalg.norm(v) for k, v in gram.items()} for view, gram in grams.items()}
    candidates = {
        "gram image+highpass alone": {k: np.concatenate([unit["image"][k], unit["highpass"][k]]) for k in ids},
        "shipped + gram highpass": {k: np.concatenate([shipped[k], unit["highpass"][k]]) for k in ids},
        "shipped + gram image+highpass": {k: np.concatenate([shipped[k], unit["image"][k], unit["highpass"][k]])
                                          for k in ids},
    }
    cross_source("shipped two views C0.001", shipped, logistic(0.001))
    for name, features in candidates.items():
        for c in (0.0003, 0.001, 0.003):
            cross_source(f"{name} C{c}", features, logistic(c))


def load_features(name: str, default_ids: list[str]) -> dict[str, np.ndarray]:
    ids_file = CACHE / f"features_{name}.json"
    return dict(zip(json.loads(ids_file.read_text()) if ids_file.is_file() else default_ids,
                    np.load(CACHE / f"features_{name}.npy")))


def cross_source(label: str, test_features: dict, fit, extra_train: list[dict] = (), clean_in_fit: bool = True,
                 fit_features: dict | None = None) -> dict:
    """Fit on each split's training sources (their `fit_features`, default `test_features`), score its held-out
    ones, print the summary line and return its figures."""
    fit_features = test_features if fit_features is None else fit_features
    predictions = {}
    for name, split in splits().items():
        train = [r for r in load_detection_records(str(split / "train.csv")) if r.id in test_features]
        held = [r for r in load_detection_records(str(split / "held_out.csv")) if r.id in test_features]
        views = ([fit_features] if clean_in_fit else []) + list(extra_train)
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
    return {"mean_auroc": summary["mean_auroc"], "per_fold_auroc": [fold["auroc"] for fold in summary["per_fold"]],
            "pooled_auroc": summary["pooled"]["auroc"], "fake_acc_at_5fpr": summary["pooled"]["fake_acc"],
            "external2_auroc": external2}


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = train.mean(0), train.std(0)
    scale[scale == 0] = 1
    return (train - mean) / scale, (test - mean) / scale


def logistic(c: float, pca: int | None = None, view_factor: tuple[int, float] | None = None):
    """A source-balanced logistic fit of standardised features; `view_factor` (start, factor) scales the features
    from `start` on (the second view) after standardisation, which weighs that view up or down in the penalty."""
    def fit(train, labels, test, records):
        train, test = standardised(train, test)
        if view_factor is not None:
            start, factor = view_factor
            train[:, start:] *= factor
            test[:, start:] *= factor
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


def stage_blocks(backbone: str) -> list[tuple[int, int, int]]:
    """(start, end, channels) of every stage's [mean, std] block in a view's stage-pooled features."""
    encoder, _ = recipe.frozen_encoder(backbone, 256, ["image"])
    channels = [info["num_chs"] for info in encoder.encoder.feature_info]
    bounds = np.cumsum([0] + [2 * c for c in channels])
    return [(int(bounds[k]), int(bounds[k + 1]), c) for k, c in enumerate(channels)]


def compare_normalisations(backbone: str, ids: list[str], image: dict, highpass: dict) -> None:
    """Other scalings of the two views' stage statistics than one L2 norm per view, and the high-pass view weighed
    up or down against the image view after standardisation."""
    blocks = stage_blocks(backbone)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def per_stage(features, transform):
        return np.concatenate([transform(features[:, start:start + c], features[:, start + c:end])
                               for start, end, c in blocks], 1)

    transforms = {
        "one L2 norm per view (shipped)": lambda f: f,
        "one L2 norm per stage statistic": lambda f: per_stage(f, lambda m, s: np.concatenate([unit(m), unit(s)], 1)),
        "log of the stds": lambda f: per_stage(f, lambda m, s: np.concatenate([m, np.log(s + 1e-6)], 1)),
        "signed square root": lambda f: np.sign(f) * np.sqrt(np.abs(f)),
        "stage means only": lambda f: per_stage(f, lambda m, s: m),
        "stage stds only": lambda f: per_stage(f, lambda m, s: s),
    }
    both = np.concatenate([np.stack([image[k] for k in ids]), np.stack([highpass[k] for k in ids])], 1)
    width = both.shape[1] // 2
    for name, transform in transforms.items():
        features = dict(zip(ids, np.concatenate([transform(both[:, :width]), transform(both[:, width:])], 1)))
        for c in (0.001, 0.003):
            cross_source(f"{name} C{c}", features, logistic(c))
    for factor in (0.5, 0.7, 1.4, 2.0):
        cross_source(f"high-pass view x{factor} C0.001", dict(zip(ids, both)),
                     logistic(0.001, view_factor=(width, factor)))


def spectral_features(images: np.ndarray, bins: int = 32, grid: int = 16, period: int = 8) -> np.ndarray:
    """Log power spectrum of the grey images: radial bins, a coarse grid of the centred spectrum and the peaks at
    multiples of 1/`period` of the sampling rate over their neighbourhood, each without its per-image mean."""
    size = images.shape[1]
    frequencies = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
    ring = np.minimum((radius / 0.5 * bins).astype(int), bins).ravel()
    ring_sizes = np.bincount(ring, minlength=bins + 1)[:bins]
    near = (-2, -1, 1, 2)
    chunks = []
    for start in tqdm(range(0, len(images), 64), desc="spectra"):
        grey = np.asarray(images[start:start + 64], dtype=np.float64).mean(-1)
        grey -= grey.mean((1, 2), keepdims=True)
        power = np.log(np.abs(np.fft.fft2(grey)) ** 2 + 1e-3)
        radial = np.stack([np.bincount(ring, weights=p.ravel(), minlength=bins + 1)[:bins] for p in power]) / ring_sizes
        cells = size // grid
        coarse = np.fft.fftshift(power, axes=(1, 2)).reshape(len(grey), grid, cells, grid, cells).mean((2, 4))
        coarse = coarse.reshape(len(grey), -1)
        peaks = []
        for y in range(0, size, size // period):
            for x in range(0, size, size // period):
                if y or x:
                    around = power[:, [(y + d) % size for d in near]][:, :, [(x + d) % size for d in near]]
                    peaks.append(power[:, y, x] - around.mean((1, 2)))
        chunks.append(np.concatenate([radial - radial.mean(1, keepdims=True), coarse - coarse.mean(1, keepdims=True),
                                      np.stack(peaks, 1)], 1))
    return np.concatenate(chunks).astype(np.float32)


def compare_spectral(ids: list[str], backbone: str = "efficientnet_lite0") -> None:
    images = np.load(CACHE / "normalized_images.npy", mmap_mode="r")
    spectra = spectral_features(images)
    parts = {"radial": slice(0, 32), "grid": slice(32, 288), "peaks": slice(288, None), "all": slice(0, None)}
    for name, columns in parts.items():
        for c in (0.01, 0.1, 1):
            cross_source(f"spectral {name} C{c}", dict(zip(ids, spectra[:, columns])), logistic(c))
    image = load_features(f"{backbone}_normalized_256", ids)
    highpass = load_features(f"{backbone}_highpass_256", ids)
    fused = {k: np.concatenate([image[k], highpass[k], spectra[i]]) for i, k in enumerate(ids)}
    cross_source("image + highpass + spectral all C0.001", fused, logistic(0.001))


PROBE_PREDICTIONS = Path("results/cross_source_frozen_probe_lite0_highpass/predictions/C0.001_source")


def log_odds(scores: np.ndarray) -> np.ndarray:
    scores = np.clip(scores, 1e-6, 1 - 1e-6)
    return np.log(scores / (1 - scores))


def compare_fusions(detectors: list[str]) -> None:
    """Each fold's probe log-odds plus w x each benchmark row's, for a few fixed w (0: the probe alone)."""
    def scores_by_id(path: Path) -> dict[str, tuple[int, float, str]]:
        with open(path, newline="") as handle:
            return {row["id"]: (int(row["label"]), float(row["score"]), row["generator"])
                    for row in csv.DictReader(handle)}

    for weight in (0.0, 0.25, 0.5, 1.0):
        predictions = {}
        for k in range(5):
            probe = scores_by_id(PROBE_PREDICTIONS / f"fold{k}.csv")
            ids = sorted(probe)
            labels = np.array([probe[i][0] for i in ids])
            total = log_odds(np.array([probe[i][1] for i in ids]))
            for detector in detectors:
                other = scores_by_id(RUNS / "eval" / f"{detector}__fold{k}" / "normalized_crops1" / "held_out"
                                     / "predictions.csv")
                total = total + weight * log_odds(np.array([other[i][1] for i in ids]))
            predictions[k] = (labels, 1 / (1 + np.exp(-total)), [probe[i][2] for i in ids])
        summary = summarise_folds([predictions[k] for k in range(5)])
        print(f"probe + {weight} x ({' + '.join(detectors)}): mean {summary['mean_auroc']:.3f} folds "
              + " ".join(f"{fold['auroc']:.3f}" for fold in summary["per_fold"]), flush=True)


def compare_padding() -> None:
    """The shipped probe's held-out folds with and without the fakes smaller than 256 px (external2's 192 and 128-px
    GAN and SD outputs), which the `normalized` protocol reflect-pads while no real photo of the pool is padded: does
    the probe rank by the padding?"""
    small = set()
    for record in all_records():
        with Image.open(record.image) as image:
            if min(image.size) < 256:
                small.add(str(Path(record.image).resolve()))
    for name, keep in (("every held-out image", lambda label, padded: True),
                       ("without the padded fakes", lambda label, padded: not padded),
                       ("padded fakes only", lambda label, padded: label == 0 or padded)):
        predictions = []
        for k in range(5):
            with open(PROBE_PREDICTIONS / f"fold{k}.csv", newline="") as handle:
                rows = [row for row in csv.DictReader(handle)
                        if keep(int(row["label"]), str(Path(row["id"]).resolve()) in small)]
            predictions.append((np.array([int(row["label"]) for row in rows]),
                                np.array([float(row["score"]) for row in rows]), [row["generator"] for row in rows]))
        summary = summarise_folds(predictions)
        print(f"{name:24s} mean {summary['mean_auroc']:.3f} folds "
              + " ".join(f"{fold['auroc']:.3f} ({fold['fakes']} fakes)" for fold in summary["per_fold"]))


def compare_robustness(backbone: str, ids: list[str]) -> None:
    """Held-out scores of the clean and the augmented-too fits when the fakes, the reals or both are re-encoded;
    written to `robustness.json` beside the two-view probe's results (the shipped probe's configuration: image +
    highpass, C 0.001, source-balanced), which model_cards/render_cards.py quotes in the default detector's card."""
    encoder, processor = recipe.frozen_encoder(backbone, 256, ["image", "highpass"])
    clean = load_features(f"{backbone}_normalized_256_image+highpass", ids)
    records = all_records()
    fake_ids = {r.id for r in records if r.label == 1}
    augmented_images_, augmented_ids = augmented_images(records, 0)
    augmented = dict(zip(augmented_ids, recipe.stage_features(
        encoder, processor, augmented_images_, f"{backbone}_aug0_256_image+highpass", CACHE)))
    clean = {k: v for k, v in clean.items() if k in augmented}
    results = {}
    for fit_name, extra in (("clean", []), ("clean_and_reencoded", [augmented])):
        for held_out, reals, fakes in (("clean", clean, clean), ("fakes_reencoded", clean, augmented),
                                       ("reals_reencoded", augmented, clean), ("both_reencoded", augmented, augmented)):
            test = {k: (fakes if k in fake_ids else reals)[k] for k in clean}
            results.setdefault(fit_name, {})[held_out] = cross_source(
                f"{fit_name} fit, held out {held_out}", test, logistic(0.001), extra, fit_features=clean)
    output = Path(f"results/cross_source_frozen_probe_{backbone.removeprefix('efficientnet_')}_highpass")
    (output / "robustness.json").write_text(json.dumps({
        "command": f"python recipes/exploratory/probe_variants.py robustness {backbone}",
        "probe": {"backbone": backbone, "input_views": ["image", "highpass"], "logistic_c": 0.001,
                  "weighting": "source", "protocol": "normalized"},
        "reencode": "CodecResizeAugment seeded per image (aug0): random resize 0.5-1.5x, JPEG/WebP q60-100, "
                    "before the protocol",
        "results": results,
    }, indent=2) + "\n")


def main() -> None:
    torch.set_num_threads(1)
    command, *rest = sys.argv[1:]
    if command == "features":
        if rest[0] == "stem1":
            compute_stem1_features(rest[1], rest[2], int(rest[3]))
        elif rest[0] == "gram":
            compute_gram_features(rest[1])
        else:
            compute_features(*rest)
        return
    if command == "fusion":
        compare_fusions(rest)
        return
    if command == "padding":
        compare_padding()
        return
    ids = json.loads((CACHE / "normalized_images.json").read_text())["ids"]
    if command == "ensemble":
        compare_ensemble(rest, ids)
        return
    if command == "spectral":
        compare_spectral(ids)
        return
    backbone = rest[0]
    commands = {"stem1": compare_stem1, "gram": compare_gram, "svm": compare_svm, "robustness": compare_robustness}
    if command in commands:
        commands[command](backbone, ids)
        return
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
    if command == "normalisations":
        compare_normalisations(backbone, ids, image, views["highpass"])
        return
    if "highpass" in views:
        for name in ("npr", "rescale"):
            if name in views:
                views[f"image+{name}"] = {k: np.concatenate([image[k], views[name][k]]) for k in image}
                views[f"image+highpass+{name}"] = {
                    k: np.concatenate([image[k], views["highpass"][k], views[name][k]]) for k in image}
        for name in ("image", "half"):
            if name in views:
                views[f"{name}+highpass"] = {k: np.concatenate([views[name][k], views["highpass"][k]]) for k in image}
        blocks = stage_blocks(backbone)
        for stages in range(2, len(blocks)):
            end = blocks[stages - 1][1]
            kept = {k: v[:end] / np.linalg.norm(v[:end]) for k, v in views["highpass"].items()}
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
