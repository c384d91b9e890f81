"""Frozen features of labelled images (for fitted heads and feature-space pictures), and the t-SNE picture."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.records import REAL_GENERATOR, DetectionRecord, load_record_image, one_crop_pixel_values
from ..data.transforms import get_protocol
from ..image_io import ImageLoadError


@dataclass
class ExtractedFeatures:
    """Features `[N, D]` of the records that could be read, in order, with their labels and generators."""

    features: np.ndarray
    labels: np.ndarray
    generators: list[str]
    ids: list[str]
    failures: list[dict]


def extract_features(
    feature_function: Callable[[torch.Tensor], torch.Tensor],
    image_processor,
    records: Sequence[DetectionRecord],
    *,
    protocol: str = "raw",
    batch_size: int = 32,
    description: str = "features",
) -> ExtractedFeatures:
    """`feature_function(pixel_values)` on every record (decoded, `protocol` applied, then the image processor).

    A record that cannot be read is listed in `failures` and skipped; the others keep their order.
    """
    transform = get_protocol(protocol)
    kept: list[DetectionRecord] = []
    failures: list[dict] = []
    chunks: list[np.ndarray] = []
    batch_images: list = []
    batch_records: list[DetectionRecord] = []

    def flush() -> None:
        pixel_values = one_crop_pixel_values(image_processor, batch_images)
        with torch.inference_mode():
            chunks.append(feature_function(pixel_values).float().cpu().numpy())
        kept.extend(batch_records)
        batch_images.clear()
        batch_records.clear()

    for record in tqdm(records, desc=description, unit="img"):
        try:
            batch_images.append(transform(load_record_image(record)))
        except ImageLoadError as error:
            failures.append({"id": record.id, "error": str(error)})
            continue
        batch_records.append(record)
        if len(batch_images) == batch_size:
            flush()
    if batch_images:
        flush()
    if not kept:
        raise ValueError(f"none of the {len(records)} images could be read")
    return ExtractedFeatures(
        features=np.concatenate(chunks), labels=np.array([record.label for record in kept]),
        generators=[record.generator for record in kept], ids=[record.id for record in kept], failures=failures,
    )


def plot_feature_map(features: np.ndarray, generators: Sequence[str], path: str | Path, title: str = "",
                     seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE of `features` (cosine metric), real photos in grey and one colour per generator; returns the
    embedding `[N, 2]` and writes the PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    tsne = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed)
    embedding = tsne.fit_transform(features)
    figure, axis = plt.subplots(figsize=(7, 6))
    names = [REAL_GENERATOR] + sorted({name for name in generators if name != REAL_GENERATOR})
    colours = plt.get_cmap("tab10" if len(names) <= 11 else "tab20")
    for index, name in enumerate(names):
        members = np.array([generator == name for generator in generators])
        if not members.any():
            continue
        if name == REAL_GENERATOR:
            style = {"color": "0.6", "marker": "o", "s": 10}
        else:
            style = {"color": colours((index - 1) % colours.N), "marker": "^", "s": 14}
        label = f"{name} ({members.sum()})"
        axis.scatter(embedding[members, 0], embedding[members, 1], label=label, alpha=0.7, **style)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title or "t-SNE of detector features")
    axis.legend(fontsize=7, markerscale=1.5, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return embedding


def write_feature_map(
    model: str, data: str, output: str | Path, *, split: str | None = None, protocol: str = "normalized",
    max_per_generator: int = 200, seed: int = 0,
) -> int:
    """`aigi feature-map`: the t-SNE picture (`output`, PNG) of `model`'s features on up to `max_per_generator`
    random images of each generator of `data`, and the embedding next to it (`.json`). Returns the image count."""
    import json
    import random

    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from ..data.layouts import load_detection_records
    from ..registry import resolve_model

    model_path = resolve_model(model)
    detector = AutoModelForImageClassification.from_pretrained(model_path).eval()
    processor = AutoImageProcessor.from_pretrained(model_path)
    rng = random.Random(seed)
    by_generator: dict[str, list] = {}
    for record in load_detection_records(data, split=split):
        by_generator.setdefault(record.generator, []).append(record)
    chosen = [record for name in sorted(by_generator) for record in
              rng.sample(by_generator[name], min(max_per_generator, len(by_generator[name])))]
    extracted = extract_features(detector.get_image_features, processor, chosen, protocol=protocol)
    title = f"{Path(model_path).name}: {Path(data).name} ({protocol})"
    embedding = plot_feature_map(extracted.features, extracted.generators, output, title=title, seed=seed)
    Path(output).with_suffix(".json").write_text(json.dumps(
        [{"id": id_, "generator": generator, "x": float(x), "y": float(y)}
         for id_, generator, (x, y) in zip(extracted.ids, extracted.generators, embedding)], indent=1))
    return len(extracted.ids)
