"""The offline SynerDetect configuration (recipes/synerdetect_offline.sh) at toy size: the components recipe's folders
load through the synerdetect task's --clip_model / --diffusion_model, the pixel-space and train_vision_towers config
fields, and the benchmark's per-split flags."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import UNet2DConditionModel
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file

from aigi.evaluation.benchmark import for_split, load_config, training_flags
from aigi.modeling.synerdetect import SynerDetectForImageClassification
from aigi.train import parse_training_arguments, train
from test_synerdetect_modeling import TINY_UNET, tiny_synerdetect_config
from test_training import tiny_arguments

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
PIXEL_UNET = {**TINY_UNET, "in_channels": 3, "out_channels": 3}
SIDE = 16  # toy crop of the 48-px detection folder images

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def components_recipe():
    spec = importlib.util.spec_from_file_location("synerdetect_offline_components",
                                                  RECIPES / "synerdetect_offline_components.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pixel_space_config_reads_pixels_without_a_vae(tmp_path):
    config = tiny_synerdetect_config(pixel_space=True, unet_config=PIXEL_UNET)
    assert config.vae_config is None and config.latent_channels == 3 and config.latent_downsampling == 1
    model = SynerDetectForImageClassification(config).eval()
    assert model.synerdetect.vae is None and not any(".vae." in name for name in model.state_dict())
    pixel_values = torch.rand(2, 3, 32, 32) * 2 - 1
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        torch.testing.assert_close(model.synerdetect.image_latents(pixel_values), pixel_values)
        output = model(pixel_values=pixel_values, labels=torch.tensor([0, 1]),
                       reconstruction_noise=torch.randn(2, 3, 32, 32, generator=generator),
                       reconstruction_timesteps=torch.tensor([10, 900]))
    assert output.noise_maps.shape == output.reconstruction_prediction.shape == (2, 3, 32, 32)
    model.save_pretrained(tmp_path)
    reloaded = SynerDetectForImageClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.pixel_space and reloaded.synerdetect.vae is None
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits)
    with pytest.raises(StrictDataclassError, match="3 in pixel space"):
        tiny_synerdetect_config(pixel_space=True)  # a latent UNet (4 channels) in pixel space


def test_train_vision_towers_trains_both_towers_in_full(tmp_path):
    model = SynerDetectForImageClassification(tiny_synerdetect_config(train_vision_towers=True))
    towers = {name: parameter.requires_grad for name, parameter in model.named_parameters()
              if name.startswith(("synerdetect.visual_encoder.", "synerdetect.noise_encoder."))}
    assert all(towers.values()) and any("lora_" not in name for name in towers)
    frozen = [name for name, parameter in model.named_parameters() if not parameter.requires_grad]
    assert frozen and all(name.startswith(("synerdetect.unet.", "synerdetect.vae.", "synerdetect.text_encoder."))
                          for name in frozen)
    model.save_pretrained(tmp_path)
    reloaded = SynerDetectForImageClassification.from_pretrained(tmp_path)
    assert [name for name, parameter in reloaded.named_parameters() if not parameter.requires_grad] == frozen


def test_components_recipe_saves_folders_the_synerdetect_task_trains_on(detection_folder, tmp_path):
    components = tmp_path / "components"
    record = components_recipe().main([
        "--train_data", str(detection_folder), "--output", str(components), "--image_size", str(SIDE),
        "--clip_width", "16", "--clip_layers", "1", "--clip_patch_size", "8", "--unet_channels", "8", "16",
        "--cross_attention_dim", "8", "--steps", "2", "--batch_size", "4", "--crops_per_image", "1",
    ])
    assert [entry["step"] for entry in record["log"]] == [2] and record["real_crops"] == 8  # the 8 real photos
    assert sorted(path.name for path in (components / "diffusion").iterdir()) == ["scheduler", "unet"]  # no vae/
    scheduler = json.loads((components / "diffusion" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "epsilon" and scheduler["beta_schedule"] == "linear"
    assert (components / "clip" / "config.json").is_file()

    choices = {"pixel_space": True, "train_vision_towers": True, "constrained_conv_patch_size": 8,
               "num_context_tokens": 4, "tuner_num_heads": 2, "gmm_num_components": 2, "lora_rank": 2}
    final = train(parse_training_arguments(tiny_arguments(
        "synerdetect", detection_folder, tmp_path / "run", clip_model=components / "clip",
        diffusion_model=components / "diffusion", synerdetect_config=json.dumps(choices), inversion_steps=2,
        image_size=SIDE, patch_size=SIDE, augment_preset="none", max_steps=2,
    )))
    config = json.loads((final / "config.json").read_text())
    assert config["pixel_space"] and config["vae_config"] is None and config["beta_schedule"] == "linear"
    weights = load_file(str(final / "model.safetensors"))
    assert not any(".vae." in name for name in weights)
    trained_unet = UNet2DConditionModel.from_pretrained(components / "diffusion", subfolder="unet").state_dict()
    for name, value in trained_unet.items():  # the recipe's UNet, loaded and kept frozen
        torch.testing.assert_close(weights[f"synerdetect.unet.{name}"], value, rtol=0, atol=0)
    model = SynerDetectForImageClassification.from_pretrained(final).eval()
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, 3, SIDE, SIDE)).logits.shape == (1, 2)


def test_split_placeholder_and_the_offline_benchmark_config():
    flags = for_split({"clip_model": "components/{split}/clip", "max_steps": 5}, "fold3")
    assert training_flags(flags) == ["--clip_model", "components/fold3/clip", "--max_steps", "5"]
    offline = load_config(RECIPES / "synerdetect_offline.yaml")
    shared = yaml.safe_load((RECIPES / "cross_source.yaml").read_text())
    # Same runs folder, pool and fold assignment as the other detectors, so the held-out sources are theirs.
    assert offline["output_dir"] == shared["output_dir"]
    assert {key: offline["cross_source"][key] for key in ("pool", "folds", "seed", "holdouts", "target_fpr")} == {
        key: shared["cross_source"][key] for key in ("pool", "folds", "seed", "holdouts", "target_fpr")}
    assert offline["results_dir"] != shared["results_dir"]  # its own leaderboard, not a rewrite of theirs
    entry = offline["detectors"]["synerdetect_offline"]
    assert entry["cross_source_only"] and entry["holdouts"] is False
    train_flags = for_split(entry["train"], "fold0")
    assert train_flags["diffusion_model"] == "runs/synerdetect_offline/components/fold0/diffusion"
    assert json.loads(train_flags["synerdetect_config"])["pixel_space"] is True
    assert shared["detectors"]["synerdetect_offline"] == entry
