"""The benchmark configs under recipes/: each loads, each training it lists is one `aigi train` accepts, and every
cross-source config scores the same held-out sources as recipes/cross_source.yaml."""

from pathlib import Path

import pytest

from aigi.evaluation.benchmark import STAGE_REFERENCE, for_split, load_config, training_flags
from aigi.train.args import parse_training_arguments

RECIPES = Path(__file__).parents[1] / "recipes"
CONFIGS = sorted(RECIPES.glob("*.yaml"))
SHARED_FOLDS = ("pool", "folds", "seed", "target_fpr")


def trainings(config: dict) -> dict[str, dict]:
    runs = dict(config.get("stages") or {})
    runs.update({name: spec["train"] for name, spec in config["detectors"].items() if "train" in spec})
    return runs


def resolved(values: dict) -> dict:
    """The flags of fold 0's run, with each `{stage:NAME}` a placeholder folder (the stage's output is not needed
    to parse them)."""
    return {key: STAGE_REFERENCE.sub(r"runs/\1/final", value) if isinstance(value, str) else value
            for key, value in for_split(values, "fold0").items()}


def test_every_recipe_config_is_found():
    assert {"cross_source.yaml", "gensign_cross_source.yaml", "synerdetect_offline.yaml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_training_of_a_recipe_parses(path):
    config = load_config(path)
    assert trainings(config)
    for name, values in trainings(config).items():
        flags = {"train_data": config.get("train_data"), **resolved(values), "output_dir": f"runs/{name}"}
        args = parse_training_arguments(training_flags(flags))
        assert args.max_steps == values.get("max_steps", args.max_steps)


CROSS_SOURCE_CONFIGS = [p for p in CONFIGS if "cross_source" in load_config(p) and p.name != "cross_source.yaml"]


@pytest.mark.parametrize("path", CROSS_SOURCE_CONFIGS, ids=lambda path: path.name)
def test_cross_source_recipes_share_the_folds_and_keep_their_own_results(path):
    config, shared = load_config(path), load_config(RECIPES / "cross_source.yaml")
    assert config["output_dir"] == shared["output_dir"]
    assert {key: config["cross_source"][key] for key in SHARED_FOLDS} == {
        key: shared["cross_source"][key] for key in SHARED_FOLDS}
    assert config["results_dir"] != shared["results_dir"]  # an --only run would rewrite the shared leaderboard
    shared_names = set(shared["detectors"])
    for name, spec in config["detectors"].items():
        # A row run on its own is the same entry in both files, or a name the shared file does not use.
        assert name not in shared_names or shared["detectors"][name] == spec


def test_gensign_cross_source_rows_read_their_folds_components():
    config = load_config(RECIPES / "gensign_cross_source.yaml")
    for name in ("gensign_lite0_imagenet", "gensign_lite0_scratch"):
        flags = for_split(config["detectors"][name]["train"], "fold3")
        assert flags["extractor"] == "runs/gensign_cross_source/components/fold3/extractor/final"
        assert flags["self_augmentation_dair"] == "runs/gensign_cross_source/components/fold3/dair/final"
        assert flags["patch_size"] == flags["image_size"]
        assert config["detectors"][name]["holdouts"] is False  # the holdout has no components of its own
    imagenet, scratch = (config["detectors"][name]["train"]
                         for name in ("gensign_lite0_imagenet", "gensign_lite0_scratch"))
    assert imagenet["backbone_pretrained"] and not scratch["backbone_pretrained"]
    assert {k: v for k, v in imagenet.items() if k != "backbone_pretrained"} == {
        k: v for k, v in scratch.items() if k != "backbone_pretrained"}
