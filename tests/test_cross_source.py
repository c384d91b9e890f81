"""Source groups, cross-source folds, the training pool build and `aigi benchmark`'s cross-source protocol."""

import csv
import json

import numpy as np
import pytest
import yaml

from aigi.cli import main
from aigi.data.records import DetectionRecord
from aigi.data.sources import (
    assign_source_folds, cross_source_folds, generator_family, source_balanced_weights, source_group,
)
from aigi.evaluation.cross_source import summarise_folds
from helpers import load_script

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _record(index: int, label: int, source: str, generator: str = "real") -> DetectionRecord:
    return DetectionRecord(image=f"{index}.png", label=label, generator=generator, source=source, id=str(index))


def test_the_repository_is_the_group_whatever_the_folder_or_dataset():
    assert source_group(_record(0, 0, "github:owner/repo dataset/train (cats)")) == "github:owner/repo"
    assert source_group(_record(1, 0, "github:owner/repo other/folder")) == "github:owner/repo"
    assert source_group(_record(2, 0, "")) == "id:2"


def test_source_balanced_weights_give_every_group_of_a_class_the_same_weight():
    records = ([_record(i, 0, "github:big/photos") for i in range(8)] + [_record(8, 0, "github:small/photos")]
               + [_record(9 + i, 1, f"github:gen/{i % 2}", "sd") for i in range(6)])
    weights = source_balanced_weights(records)
    labels = np.array([record.label for record in records])
    assert np.isclose(weights[:8].sum(), weights[8]) and np.allclose(weights[:8], weights[0])
    for label in (0, 1):
        assert np.isclose(weights[labels == label].sum(), (labels == label).sum())
    assert np.allclose(weights[9:], 1.0)  # two fake groups of three: already balanced


@pytest.mark.parametrize("generator, family", [
    ("stylegan2_ada", "gan"), ("biggan_deep_128", "gan"), ("gigagan_t2i", "gan"), ("deepfloyd_if", "pixel_diffusion"),
    ("sd1.5", "latent_diffusion"), ("flux1_dev", "latent_diffusion"), ("pixart_sigma", "latent_diffusion"),
    ("infinity_2b", "autoregressive_or_other"), ("gpt_4o_image", "autoregressive_or_other"),
    ("midjourney_v7", "autoregressive_or_other"), ("something_new", "autoregressive_or_other"),
])
def test_generator_families(generator, family):
    assert generator_family(generator) == family


def test_folds_hold_each_group_once_and_balance_both_classes():
    records = [_record(i, 0, f"github:real/r{i % 12}") for i in range(120)]
    records += [_record(1000 + i, 1, f"github:fake/g{i % 8}", f"gen{i % 8}") for i in range(80)]
    records += [_record(5000, 0, "github:mixed/repo"), _record(5001, 1, "github:mixed/repo", "genx")]
    folds = cross_source_folds(records, 4, seed=3)
    held_out_ids = [record.id for _, held_out in folds for record in held_out]
    assert sorted(held_out_ids) == sorted(record.id for record in records)  # every record held out exactly once
    for train, held_out in folds:
        assert not {source_group(r) for r in train} & {source_group(r) for r in held_out}
        assert {r.label for r in held_out} == {0, 1}
        assert 20 <= sum(r.label == 0 for r in held_out) <= 40
    assert assign_source_folds(records, 4, seed=3) == assign_source_folds(list(reversed(records)), 4, seed=3)
    with pytest.raises(ValueError, match="cannot fill"):
        assign_source_folds(records[:2], 4)


def test_fold_summary_threshold_comes_from_the_out_of_fold_reals():
    rng = np.random.default_rng(0)
    folds = []
    for shift in (1.0, 2.0):
        labels = np.array([0] * 50 + [1] * 50)
        scores = 1 / (1 + np.exp(-(rng.normal(size=100) + shift * labels)))
        folds.append((labels, scores, ["real"] * 50 + ["stylegan2"] * 25 + ["sd1.5"] * 25))
    summary = summarise_folds(folds, target_fpr=0.1)
    reals = np.concatenate([scores[labels == 0] for labels, scores, _ in folds])
    assert np.mean(reals >= summary["threshold_at_target_fpr"]) <= 0.1
    assert summary["per_fold"][0]["auroc"] < summary["per_fold"][1]["auroc"]
    assert summary["mean_auroc"] == pytest.approx(np.mean([fold["auroc"] for fold in summary["per_fold"]]))
    assert set(summary["per_family"]) == {"gan", "latent_diffusion"}


def _write_pool_tree(root, detection_folder, distinct: bool = False):
    """Two 'datasets' under root, each a manifest naming sources (one repository shared by both); set_b lists the
    same files as set_a, or mirrored copies of them with `distinct`."""
    from PIL import Image, ImageOps

    for dataset, (offset, shared) in {"set_a": (0, "github:shared/repo"), "set_b": (1, "github:shared/repo")}.items():
        folder = root / dataset
        folder.mkdir(parents=True)
        rows = []
        for path in sorted(detection_folder.rglob("*.*")):
            if path.suffix not in (".jpg", ".png"):
                continue
            if distinct and dataset == "set_b":
                copy = folder / path.parent.name / path.name
                copy.parent.mkdir(exist_ok=True)
                ImageOps.mirror(Image.open(path)).save(copy)
                path = copy
            index = len(rows)
            label = "real" if path.parent.name == "real" else "fake"
            source = shared if index % 5 == offset else f"github:{dataset}/{label}{index % 3}"
            rows.append({"path": str(path), "label": label,
                         "generator": "real" if label == "real" else path.parent.name, "source": source})
        with (folder / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (root / "RESERVED_SOURCES.md").write_text("- github: someone/reserved\n")


def test_pool_build_joins_every_manifest_drops_duplicates_and_assigns_folds(detection_folder, tmp_path):
    script = load_script("build_training_pool")
    is_reserved, build_pool = script.is_reserved, script.main

    _write_pool_tree(tmp_path / "shared", detection_folder)
    build_pool([str(tmp_path / "shared"), str(tmp_path / "pool"), "--folds", "2"])
    rows = list(csv.DictReader((tmp_path / "pool" / "manifest.csv").open()))
    assert len(rows) == 16  # set_b lists the same pixels as set_a: kept once
    folds_of_group = {}
    for row in rows:
        folds_of_group.setdefault(row["group"], set()).add(row["fold"])
    assert all(len(folds) == 1 for folds in folds_of_group.values())
    report = json.loads((tmp_path / "pool" / "build_report.json").read_text())
    assert report["duplicates"]["dropped"] == 16
    assert "someone/reserved" in report["reserved_names"]
    assert is_reserved("github:someone/reserved images/", ["someone/reserved"])
    assert not is_reserved("github:someone/reserved-not images/", ["someone/reserved"])
    assert "Class bias report" in (tmp_path / "pool" / "README.md").read_text()


TINY_TRAINING = {
    "task": "classify", "family": "cnnspot", "backbone": "test_resnet", "image_size": 32, "patch_size": 32,
    "max_steps": 2, "per_device_batch_size": 4, "checkpointing_steps": 2, "logging_steps": 1, "num_workers": 0,
    "seed": 0, "sampling": "balanced", "lr_scheduler": "cosine", "warmup_steps": 1,
}


def test_benchmark_cross_source_trains_per_fold_and_chooses_by_it(detection_folder, tmp_path):
    build_pool = load_script("build_training_pool").main

    _write_pool_tree(tmp_path / "shared", detection_folder, distinct=True)
    build_pool([str(tmp_path / "shared"), str(tmp_path / "pool"), "--folds", "2"])
    pool = str(tmp_path / "pool" / "manifest.csv")
    config = {
        "output_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"), "train_data": pool,
        "jobs": 1,
        "cross_source": {"pool": pool, "folds": 2, "protocol": "normalized", "num_crops": [1], "target_fpr": 0.25,
                         "holdouts": ["set_a"]},
        "detectors": {"cnn": {"train": TINY_TRAINING},
                      "cnn_arm": {"train": {**TINY_TRAINING, "seed": 1}, "cross_source_only": True,
                                  "holdouts": False}},
    }
    config_file = tmp_path / "benchmark.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["benchmark", "--config", str(config_file)]) == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    rows = {row["name"]: row for row in results["detectors"]}
    assert rows["cnn"]["status"] == "ok" and rows["cnn_arm"]["status"] == "ok"
    summary = rows["cnn"]["cross_source"]["normalized_crops1"]
    assert len(summary["per_fold"]) == 2 and "set_a" in summary["holdouts"]
    assert "holdouts" not in rows["cnn_arm"]["cross_source"]["normalized_crops1"]
    assert rows["cnn_arm"]["model_path"] is None  # a comparison arm is never trained on the whole pool
    for fold in range(2):
        held = {r["path"] for r in csv.DictReader(open(tmp_path / "runs" / "folds" / f"fold_{fold}" / "held_out.csv"))}
        train = {r["path"] for r in csv.DictReader(open(tmp_path / "runs" / "folds" / f"fold_{fold}" / "train.csv"))}
        assert held and train and not held & train
    choice = results["default_detector"]
    assert choice["name"] == "cnn" and choice["threshold"] == summary["threshold_at_target_fpr"]
    assert "cross-source" in choice["rule"]
    assert (tmp_path / "results" / "cross_source.md").is_file()
    assert (tmp_path / "results" / "cross_source_folds.png").is_file()
