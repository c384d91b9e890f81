"""datasets_scripts/build_autoencoder_pseudo_fakes.py at a tiny width and training budget."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from aigi.data.layouts import read_manifest

from helpers import load_script


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple:
    """A pool manifest of two real sources (3 photos each, one smaller than the 256-px crop) and one fake."""
    folder = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    rows = []
    for source in ("github:a/photos", "github:b/photos"):
        for index, (width, height) in enumerate([(300, 280), (260, 320), (200, 180)]):
            name = f"{source.split('/')[0].split(':')[1]}_{index}.jpg"
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / name, quality=90)
            rows.append([name, "real", "", source])
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / "fake.png")
    rows.append(["fake.png", "fake", "some_gan", "github:c/gan"])
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "generator", "source"])
        writer.writerows(rows)
    return folder / "manifest.csv", rows


def test_every_chosen_photo_gets_one_aligned_reconstruction(pool, tmp_path):
    manifest, rows = pool
    script = load_script("build_autoencoder_pseudo_fakes")
    out, report = tmp_path / "out", tmp_path / "report"
    script.main([str(manifest), str(out), "--per-source", "2", "--steps", "2", "--width", "8,8,8,8",
                 "--report-dir", str(report)])

    with open(out / "manifest.csv", newline="") as handle:
        written = list(csv.DictReader(handle))
    photos = {os.path.abspath(manifest.parent / row[0]): row[3] for row in rows if row[1] == "real"}
    assert len(written) == 4  # two photos of each real source, none of the fake
    assert len({row["real_path"] for row in written}) == 4 and all(row["real_path"] in photos for row in written)
    assert sorted(photos[row["real_path"]].split("/")[0] for row in written) == ["github:a"] * 2 + ["github:b"] * 2
    for row in written:
        assert row["source"] == f"aigi:kl-f8-vae reconstructions of {photos[row['real_path']]}"
        with Image.open(out / row["path"]) as image:
            assert image.format == "PNG" and image.size == (256, 256)
    records = list(read_manifest(out / "manifest.csv"))
    assert {record.label for record in records} == {1} and {record.generator for record in records} == {
        "aigi_kl_f8_vae"}
    assert (report / "build_log.json").is_file() and (report / "pairs.png").is_file()


def test_the_photos_are_drawn_per_source_and_reproducibly(pool):
    manifest, _ = pool
    script = load_script("build_autoencoder_pseudo_fakes")
    records = list(read_manifest(manifest))
    first = [record.id for record in script.choose_photos(records, 2, seed=0)]
    assert first == [record.id for record in script.choose_photos(records[::-1], 2, seed=0)]
    assert len(first) == 4 and len(script.choose_photos(records, 10, seed=0)) == 6
