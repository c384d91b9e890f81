"""Where in an image the evidence is: per-crop P(fake) (`pipeline(..., return_crops=True)`) as a heat map.

The crops are native-resolution windows of the image (never resized); each pixel's value is the mean P(fake) of the
crops that cover it (NaN where none does). Only the drawing is scaled, to `max_side` pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HEATMAP_COLORMAP = "RdYlGn_r"  # green: real, red: fake


def crop_heatmap(width: int, height: int, crops: list[dict[str, Any]]) -> np.ndarray:
    """`[height, width]` float array: each pixel's mean P(fake) over the crops covering it, NaN where none does."""
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for crop in crops:
        left, top, right, bottom = crop["box"]
        total[top:bottom, left:right] += crop["score"]
        count[top:bottom, left:right] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def output_crops(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-crop evidence of one pipeline output (`return_crops=True`)."""
    crops = next((entry["crops"] for entry in output if "crops" in entry), None)
    if crops is None:
        raise ValueError("the output has no crops: score with return_crops=True")
    return crops


def draw_heatmap(image: Image.Image, output: list[dict[str, Any]], path: str | Path, *, threshold: float,
                 title: str = "", max_side: int = 768) -> Path:
    """A PNG of `image` with its crops' P(fake) overlaid, the crop outlines, and a legend (colour bar)."""
    from matplotlib.figure import Figure

    crops = output_crops(output)
    heatmap = crop_heatmap(*image.size, crops)
    scale = min(1.0, max_side / max(image.size))
    shown = image.convert("RGB")
    if scale < 1.0:  # the drawing only; the scores came from the native pixels
        shown = shown.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    figure = Figure(figsize=(6.4, 6.4 * image.height / image.width + 0.9), layout="constrained")
    axis = figure.subplots()
    extent = (0, image.width, image.height, 0)
    axis.imshow(np.asarray(shown), extent=extent)
    overlay = axis.imshow(np.ma.masked_invalid(heatmap), extent=extent, cmap=HEATMAP_COLORMAP, vmin=0.0, vmax=1.0,
                          alpha=0.45, interpolation="nearest")
    for crop in crops:
        left, top, right, bottom = crop["box"]
        axis.add_patch(_rectangle((left, top), right - left, bottom - top))
    axis.set_axis_off()
    fake_score = next(entry["score"] for entry in output if entry["label"] == "fake")
    verdict = output[0]["label"]
    axis.set_title(f"{title}\n{verdict}: P(fake) {fake_score:.3f} (threshold {threshold:.3f}), {len(crops)} crops"
                   if title else f"{verdict}: P(fake) {fake_score:.3f}", fontsize=9)
    bar = figure.colorbar(overlay, ax=axis, orientation="horizontal", fraction=0.05, pad=0.02)
    bar.set_label("P(fake) of the crops covering each pixel", fontsize=8)
    bar.ax.axvline(threshold, color="black", linewidth=1.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _rectangle(corner, width, height):
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, fill=False, edgecolor="white", linewidth=0.6, alpha=0.7)
