"""Spliced images: does the heat map of per-crop P(fake) point at a generated patch pasted into a real photo?

Builds `--count` spliced images: a real photo of shared/data/external4 (each from another source, a seeded draw)
with one `--patch-size` square replaced by a square of a generator output of shared/data/external3, copied pixel for
pixel (never resized), both squares at seeded random positions. Scores each spliced image, and as a control the
real photo it was made from, with `pipeline("ai-image-detection")` (or `--model`) at `--num-crops` crops with
`return_crops=True`, and writes to `--output`:

- spliced.json: per image and overall, the mean of the heat map (each pixel: the mean P(fake) of the crops that
  cover it, `aigi.inference.heatmaps.crop_heatmap`) inside and outside the spliced square, the same for the real
  photo, each crop's P(fake) before and after splicing with the spliced fraction of its area, and the images' P(fake);
- heatmaps.png: the first `FIGURE_IMAGES` images, spliced and real, with their heat maps;
- README.md: the command, the numbers and the figure.

Run from the repository root (rerun with `--model` when the default detector changes):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python recipes/spliced_heatmaps.py [--model NAME_OR_DIR]
"""

import argparse
import csv
import json
import shlex
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from aigi.image_io import load_image
from aigi.inference.heatmaps import HEATMAP_COLORMAP, crop_heatmap, heatmap_overlay, output_crops
from aigi.inference.pipeline import fake_score
from aigi.inference.scoring import score_sources
from aigi.registry import DEFAULT_DETECTOR, resolve_model

FIGURE_IMAGES = 4


def read_manifest(folder: Path, label: str) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as file:
        return [row for row in csv.DictReader(file) if row["label"] == label]


def draw_sources(data: Path, count: int, rng: np.random.Generator) -> list[tuple[dict, dict]]:
    """`count` (real, fake) manifest rows: reals of `count` different external4 sources (the path's second folder),
    fakes of external3 taking the generators in a shuffled round, each image at most once."""
    reals_by_source: dict[str, list[dict]] = {}
    for row in read_manifest(data / "external4", "real"):
        reals_by_source.setdefault(row["path"].split("/")[1], []).append(row)
    if len(reals_by_source) < count:
        raise SystemExit(f"external4 has reals of {len(reals_by_source)} sources, fewer than --count {count}")
    sources = rng.choice(sorted(reals_by_source), size=count, replace=False)
    reals = [reals_by_source[source][rng.integers(len(reals_by_source[source]))] for source in sources]

    fakes_by_generator: dict[str, list[dict]] = {}
    for row in read_manifest(data / "external3", "fake"):
        fakes_by_generator.setdefault(row["generator"], []).append(row)
    for rows in fakes_by_generator.values():
        rng.shuffle(rows)
    generators = list(rng.permutation(sorted(fakes_by_generator)))
    fakes = []
    while len(fakes) < count:
        if not any(fakes_by_generator.values()):
            raise SystemExit(f"external3 has fewer than --count {count} fakes")
        for generator in generators:
            if fakes_by_generator[generator] and len(fakes) < count:
                fakes.append(fakes_by_generator[generator].pop())
    return list(zip(reals, fakes))


def random_square(rng: np.random.Generator, image: Image.Image, side: int) -> list[int]:
    if side > min(image.size):
        raise SystemExit(f"--patch-size {side} does not fit an image of {image.width}x{image.height}")
    left, top = int(rng.integers(image.width - side + 1)), int(rng.integers(image.height - side + 1))
    return [left, top, left + side, top + side]


def inside_outside(heatmap: np.ndarray, box: list[int]) -> tuple[float, float]:
    """The heat map's mean over the pixels of `box` and over the others (NaN pixels, covered by no crop, left out)."""
    left, top, right, bottom = box
    inside = np.zeros(heatmap.shape, bool)
    inside[top:bottom, left:right] = True
    return float(np.nanmean(heatmap[inside])), float(np.nanmean(heatmap[~inside]))


def spliced_fraction(crop_box: list[int], box: list[int]) -> float:
    width = min(crop_box[2], box[2]) - max(crop_box[0], box[0])
    height = min(crop_box[3], box[3]) - max(crop_box[1], box[1])
    area = (crop_box[2] - crop_box[0]) * (crop_box[3] - crop_box[1])
    return max(0, width) * max(0, height) / area


def mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def summarize(images: list[dict], threshold: float) -> dict:
    crops = [crop for image in images for crop in image["crops"]]
    buckets = {"untouched (0)": lambda fraction: fraction == 0.0,
               "partly spliced (0 to 0.5)": lambda fraction: 0.0 < fraction < 0.5,
               "mostly spliced (0.5 to 1)": lambda fraction: fraction >= 0.5}
    return {
        "images": len(images),
        "mean_inside": mean(image["inside"] for image in images),
        "mean_outside": mean(image["outside"] for image in images),
        "mean_inside_minus_outside": mean(image["inside"] - image["outside"] for image in images),
        "images_inside_above_outside": sum(image["inside"] > image["outside"] for image in images),
        "real_mean_inside": mean(image["real_inside"] for image in images),
        "real_mean_outside": mean(image["real_outside"] for image in images),
        "real_mean_inside_minus_outside": mean(image["real_inside"] - image["real_outside"] for image in images),
        "mean_change_inside": mean(image["inside"] - image["real_inside"] for image in images),
        "images_hottest_crop_most_spliced": sum(image["hottest_crop_most_spliced"] for image in images),
        "crops_by_spliced_fraction": {
            name: {"crops": len(chosen), "mean_p_fake": mean(crop["p_fake"] for crop in chosen),
                   "mean_p_fake_before_splicing": mean(crop["real_p_fake"] for crop in chosen)}
            for name, test in buckets.items()
            for chosen in [[crop for crop in crops if test(crop["spliced_fraction"])]]
        },
        "mean_p_fake_spliced": mean(image["p_fake_spliced"] for image in images),
        "mean_p_fake_real": mean(image["p_fake_real"] for image in images),
        "mean_p_fake_fake": mean(image["p_fake_fake"] for image in images),
        "spliced_at_or_above_threshold": sum(image["p_fake_spliced"] >= threshold for image in images),
        "real_at_or_above_threshold": sum(image["p_fake_real"] >= threshold for image in images),
        "fake_at_or_above_threshold": sum(image["p_fake_fake"] >= threshold for image in images),
    }


def draw_figure(pictures: list[tuple[Image.Image, Image.Image]], images: list[dict], threshold: float,
                path: Path) -> None:
    """Per image: the spliced image, its heat map and the real photo's, the spliced square outlined."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    figure = Figure(figsize=(7.5, 2.6 * len(images) + 0.8), layout="constrained")
    axes = figure.subplots(len(images), 3, squeeze=False)
    for row, ((spliced, real), image) in enumerate(zip(pictures, images)):
        panels = [
            (spliced, f"spliced: {image['generator']} into\n{image['real_source']}"),
            (heatmap_overlay(spliced, [{"box": crop["box"], "score": crop["p_fake"]} for crop in image["crops"]],
                             max(spliced.size)),
             f"spliced, P(fake) {image['p_fake_spliced']:.3f}\ninside {image['inside']:.3f}, "
             f"outside {image['outside']:.3f}"),
            (heatmap_overlay(real, [{"box": crop["box"], "score": crop["real_p_fake"]} for crop in image["crops"]],
                             max(real.size)),
             f"real photo, P(fake) {image['p_fake_real']:.3f}\ninside {image['real_inside']:.3f}, "
             f"outside {image['real_outside']:.3f}"),
        ]
        left, top, right, bottom = image["box"]
        for axis, (picture, title) in zip(axes[row], panels):
            axis.imshow(np.asarray(picture))
            axis.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                     edgecolor="white", linestyle="--", linewidth=1.2))
            for crop in image["crops"]:
                crop_left, crop_top, crop_right, crop_bottom = crop["box"]
                axis.add_patch(Rectangle((crop_left - 0.5, crop_top - 0.5), crop_right - crop_left,
                                         crop_bottom - crop_top, fill=False, edgecolor="black", linewidth=0.4))
            axis.set_title(title, fontsize=7)
            axis.set_axis_off()
    bar = figure.colorbar(ScalarMappable(Normalize(0.0, 1.0), colormaps[HEATMAP_COLORMAP]), ax=axes,
                          orientation="horizontal", fraction=0.03, pad=0.01)
    bar.set_label("P(fake) of the crops covering each pixel (black line: threshold; dashed: the spliced square)",
                  fontsize=7)
    bar.ax.axvline(threshold, color="black", linewidth=1.5)
    figure.savefig(path, dpi=90)


def write_readme(path: Path, result: dict, command: str) -> None:
    overall, settings = result["overall"], result["settings"]
    buckets = overall["crops_by_spliced_fraction"]

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        "# Spliced images: does the heat map point at the generated patch?",
        "",
        f"{overall['images']} images, each a real photo of `shared/data/external4` (each of another source) with one "
        f"{settings['patch_size']}x{settings['patch_size']} square replaced by a square of a generator output of "
        "`shared/data/external3`, copied at native resolution (never resized), both squares at seeded random "
        f"positions. Detector: `{settings['model']}` (threshold {settings['threshold']:.3f}), scored through "
        f"`pipeline(\"ai-image-detection\")` with `num_crops={settings['num_crops']}, return_crops=True`: "
        f"{settings['crops_per_image']} crops of {settings['crop_size']} px per image. Inside / outside: the mean of "
        "the heat map (each pixel: the mean P(fake) of the crops covering it) over the spliced square / over the rest "
        "of the image; the real photo it was made from, scored the same way, is the control.",
        "",
        "```bash",
        command,
        "```",
        "",
        "Per image and per crop: `spliced.json`.",
        "",
        "| | inside | outside | inside - outside |",
        "|---|---|---|---|",
        f"| spliced | {number(overall['mean_inside'])} | {number(overall['mean_outside'])} | "
        f"{number(overall['mean_inside_minus_outside'])} |",
        f"| real photo (control) | {number(overall['real_mean_inside'])} | {number(overall['real_mean_outside'])} | "
        f"{number(overall['real_mean_inside_minus_outside'])} |",
        "",
        f"- Inside above outside in {overall['images_inside_above_outside']} of {overall['images']} spliced images; "
        f"splicing moved the inside mean by {number(overall['mean_change_inside'])} on average.",
        f"- The hottest crop is the most spliced one in {overall['images_hottest_crop_most_spliced']} of "
        f"{overall['images']} images.",
        "- Crops by the spliced fraction of their area, mean P(fake) after / before splicing: "
        + "; ".join(f"{name}: {number(bucket['mean_p_fake'])} / {number(bucket['mean_p_fake_before_splicing'])} "
                    f"({bucket['crops']} crops)" for name, bucket in buckets.items()) + ".",
        f"- Whole-image P(fake) (the {settings['crops_per_image']} crops aggregated): spliced "
        f"{number(overall['mean_p_fake_spliced'])} ({overall['spliced_at_or_above_threshold']} at or above the "
        f"threshold), real photos {number(overall['mean_p_fake_real'])} ({overall['real_at_or_above_threshold']}), "
        f"the generator outputs the patches came from {number(overall['mean_p_fake_fake'])} "
        f"({overall['fake_at_or_above_threshold']}). In-source: the bundled default detector was fitted on the "
        "whole training pool, these real photos and generator outputs included.",
        "",
        "| real photo | generator | square | inside | outside | real inside | real outside | P(fake) spliced | "
        "P(fake) real |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {image['real_source']} | {image['generator']} | {image['box']} | {image['inside']:.3f} | "
          f"{image['outside']:.3f} | {image['real_inside']:.3f} | {image['real_outside']:.3f} | "
          f"{image['p_fake_spliced']:.3f} | {image['p_fake_real']:.3f} |" for image in result["images"]),
        "",
        f"![The first {FIGURE_IMAGES} spliced images, their heat maps and those of the real photos](heatmaps.png)",
        "",
        "Caveats: the heat map is as coarse as the crop grid (here "
        f"{settings['crops_per_image']} crops of {settings['crop_size']} px on {settings['image_size']} px images), "
        "so a square that straddles crops shares them with real pixels; most reals are JPEG and the patches are "
        "PNG or JPEG crops of other images, so a crop may also respond to the seam or to a change of compression "
        f"rather than to generation; {overall['images']} images give a smoke number, not an estimate.",
        "",
    ]
    wrapped = [
        line if line.startswith(("|", "```", "!", "OMP_")) else
        textwrap.fill(line, 120, subsequent_indent="  " if line.startswith("- ") else "")
        for line in lines
    ]
    path.write_text("\n".join(wrapped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundled name or folder (default: the default detector)")
    parser.add_argument("--data", default="../shared/data", help="folder of external3/ and external4/")
    parser.add_argument("--output", default="results/spliced")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--num-crops", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from transformers import pipeline

    rng = np.random.default_rng(args.seed)
    data, output = Path(args.data), Path(args.output)
    pairs = draw_sources(data, args.count, rng)
    reals = [load_image(data / "external4" / real_row["path"]) for real_row, _ in pairs]
    fakes = [load_image(data / "external3" / fake_row["path"]) for _, fake_row in pairs]
    patch_boxes = [random_square(rng, fake, args.patch_size) for fake in fakes]
    boxes = [random_square(rng, real, args.patch_size) for real in reals]
    spliced = [real.copy() for real in reals]
    for picture, fake, patch_box, box in zip(spliced, fakes, patch_boxes, boxes):
        picture.paste(fake.crop(patch_box), box[:2])

    model = resolve_model(args.model)
    pipe = pipeline("ai-image-detection", model=model)
    threshold = float(pipe.model.config.decision_threshold)

    def score(pictures):
        return score_sources(pipe, pictures, batch_size=8, num_workers=0, num_crops=args.num_crops,
                             return_crops=True, progress=False)

    spliced_outputs, real_outputs, fake_outputs = score(spliced), score(reals), score(fakes)
    images = []
    for index, (real_row, fake_row) in enumerate(pairs):
        crops, real_crops = output_crops(spliced_outputs[index]), output_crops(real_outputs[index])
        width, height = spliced[index].size
        inside, outside = inside_outside(crop_heatmap(width, height, crops), boxes[index])
        real_inside, real_outside = inside_outside(crop_heatmap(width, height, real_crops), boxes[index])
        crop_rows = [
            {"box": crop["box"], "p_fake": crop["score"], "real_p_fake": real_crop["score"],
             "spliced_fraction": spliced_fraction(crop["box"], boxes[index])}
            for crop, real_crop in zip(crops, real_crops)
        ]
        hottest = max(crop_rows, key=lambda crop: crop["p_fake"])
        images.append({
            "real": real_row["path"], "real_source": real_row["path"].split("/")[1], "fake": fake_row["path"],
            "generator": fake_row["generator"], "box": boxes[index], "patch_box_in_fake": patch_boxes[index],
            "inside": inside, "outside": outside, "real_inside": real_inside, "real_outside": real_outside,
            "hottest_crop_most_spliced": hottest["spliced_fraction"] == max(crop["spliced_fraction"]
                                                                             for crop in crop_rows),
            "p_fake_spliced": fake_score(spliced_outputs[index]), "p_fake_real": fake_score(real_outputs[index]),
            "p_fake_fake": fake_score(fake_outputs[index]), "crops": crop_rows,
        })

    crop_size = pipe.image_processor.crop_size
    sizes = sorted({f"{picture.width}x{picture.height}" for picture in spliced})
    crop_counts = sorted({len(image["crops"]) for image in images})
    result = {
        "settings": {
            "model": args.model or DEFAULT_DETECTOR, "threshold": threshold, "num_crops": args.num_crops,
            "crops_per_image": crop_counts[0] if len(crop_counts) == 1 else crop_counts,
            "crop_size": f"{crop_size['width']}x{crop_size['height']}", "image_size": ", ".join(sizes),
            "patch_size": args.patch_size, "count": args.count, "seed": args.seed,
            "reals": "shared/data/external4", "fakes": "shared/data/external3",
        },
        "overall": summarize(images, threshold),
        "images": images,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "spliced.json").write_text(json.dumps(result, indent=2) + "\n")
    draw_figure(list(zip(spliced, reals))[:FIGURE_IMAGES], images[:FIGURE_IMAGES], threshold, output / "heatmaps.png")
    command = shlex.join(["OMP_NUM_THREADS=1", "HF_HUB_OFFLINE=1", ".venv/bin/python", "recipes/spliced_heatmaps.py",
                          *sys.argv[1:]])
    write_readme(output / "README.md", result, command)
    print(json.dumps(result["overall"], indent=2))


if __name__ == "__main__":
    main()
