import json
import math
import shutil

import ot
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from aigi.losses import (
    GaussianMixture,
    bures_wasserstein_cost,
    discriminative_contrastive_loss,
    fit_gaussian_mixture,
    prototype_optimal_transport_loss,
    prototype_transport_plan,
    synerdetect_losses,
)
from aigi.modeling.synerdetect import SynerDetectForImageClassification
from aigi.train import parse_training_arguments, train
from aigi.train.synerdetect import InversionCache
from test_synerdetect_modeling import (
    IMAGE_SIZE,
    TINY_CHOICES,
    TINY_UNET,
    TINY_VAE,
    reconstruction_inputs,
    tiny_clip_model,
    tiny_synerdetect_config,
    with_trained_lora,
)
from test_training import tiny_arguments

CROP = 48  # the size of the detection folder's images: with no augmentation every epoch sees the same crops
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                   clip_sample=False, set_alpha_to_one=False, steps_offset=1)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """A tiny CLIPModel folder and a tiny diffusers Stable Diffusion folder (unet/, vae/, scheduler/)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("components")
    tiny_clip_model().save_pretrained(root / "clip")
    UNet2DConditionModel.from_config(TINY_UNET).save_pretrained(root / "sd" / "unet")
    AutoencoderKL.from_config(TINY_VAE).save_pretrained(root / "sd" / "vae")
    DDIMScheduler(**SD_SCHEDULE, prediction_type="epsilon").save_pretrained(root / "sd" / "scheduler")
    DDIMScheduler(**SD_SCHEDULE, prediction_type="v_prediction").save_pretrained(root / "sd_v" / "scheduler")
    return root


def synerdetect_arguments(data, output_dir, components, **overrides) -> list[str]:
    values = dict(
        clip_model=components / "clip", diffusion_model=components / "sd", synerdetect_config=json.dumps(TINY_CHOICES),
        inversion_steps=2, image_size=CROP, patch_size=CROP, augment_preset="none",
    )
    return tiny_arguments("synerdetect", data, output_dir, **{**values, **overrides})


def log_records(output_dir) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]


def test_training_through_the_shared_loop_logs_each_term_and_resumes_exactly(detection_folder, components, tmp_path):
    def run(output_dir, **overrides):
        return train(parse_training_arguments(synerdetect_arguments(detection_folder, output_dir, components,
                                                                    **overrides)))

    final_dir = run(tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    run(interrupted, max_steps=2)
    shutil.rmtree(interrupted / "final")
    run(interrupted, resume_from_checkpoint="latest")
    straight, resumed = load_file(str(final_dir / "model.safetensors")), load_file(str(interrupted / "final" /
                                                                                      "model.safetensors"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)

    log = log_records(tmp_path / "straight")
    assert [record["step"] for record in log] == [1, 2, 3, 4]
    for record in log:
        combined = 0.4 * record["reconstruction"] + 0.6 * (record["contrastive"] + 0.5 * record["transport"])
        assert record["loss"] == pytest.approx(combined, rel=1e-5) and math.isfinite(record["loss"])

    model = AutoModelForImageClassification.from_pretrained(final_dir)
    assert isinstance(model, SynerDetectForImageClassification)
    assert (model.config.inversion_steps, model.config.image_size, model.config.num_context_tokens) == (2, CROP, 4)
    # The frozen UNet and the CLIP text tower are the given components, untouched by training.
    for name, value in UNet2DConditionModel.from_pretrained(components / "sd" / "unet").state_dict().items():
        torch.testing.assert_close(straight[f"synerdetect.unet.{name}"], value, rtol=0, atol=0)
    clip = load_file(str(components / "clip" / "model.safetensors"))
    for name, value in clip.items():
        if name.startswith("text_model."):
            torch.testing.assert_close(straight[f"synerdetect.text_encoder.{name}"], value, rtol=0, atol=0)
    assert any(name.endswith("lora_B.default.weight") and value.abs().sum() > 0 for name, value in straight.items())


def test_inversion_cache_serves_repeated_crops(detection_folder, components, tmp_path):
    cache = tmp_path / "cache"
    train(parse_training_arguments(synerdetect_arguments(
        detection_folder, tmp_path / "run", components, inversion_cache=cache, max_steps=8, checkpointing_steps=8,
    )))
    hits = [record["inversion_cache_hits"] for record in log_records(tmp_path / "run")]
    assert hits == [0.0] * 4 + [1.0] * 4  # 16 images, 4 steps per epoch: the second epoch is served from disk
    assert len(list(cache.glob("*.safetensors"))) == 16


def test_inversion_cache_keys_on_pixels_and_expires_by_age(tmp_path):
    inverted = []

    def invert(pixel_values):
        inverted.append(len(pixel_values))
        return pixel_values[:, :1] * 2

    images = torch.rand(3, 3, 4, 4)
    cache = InversionCache(tmp_path, max_age_steps=2)
    maps, hits = cache.noise_maps(images, step=0, invert=invert)
    assert hits == 0 and inverted == [3]
    torch.testing.assert_close(maps, images[:, :1] * 2)
    changed = images.clone()
    changed[1, 0, 0, 0] += 1e-3
    maps, hits = cache.noise_maps(changed, step=2, invert=invert)
    assert hits == 2 and inverted == [3, 1]
    torch.testing.assert_close(maps, changed[:, :1] * 2)
    assert cache.get(InversionCache.key(images[0]), step=3) is None  # computed at step 0, older than 2 steps
    assert InversionCache(tmp_path).get(InversionCache.key(images[0]), step=1000) is not None


def test_a_v_prediction_diffusion_model_is_refused(detection_folder, components, tmp_path):
    arguments = synerdetect_arguments(detection_folder, tmp_path, components, diffusion_model=components / "sd_v")
    with pytest.raises(ValueError, match="epsilon"):
        train(parse_training_arguments(arguments))


def parameter_groups(model: SynerDetectForImageClassification) -> dict[str, list[torch.nn.Parameter]]:
    base = model.synerdetect
    return {
        "visual_lora": [p for n, p in base.visual_encoder.named_parameters() if "lora_" in n],
        "noise_lora": [p for n, p in base.noise_encoder.named_parameters() if "lora_" in n],
        "noise_adapter": list(base.noise_map_adapter.parameters()),
        "prompt_tuner": list(base.prompt_tuner.parameters()),
        "condition_projection": list(base.condition_projection.parameters()),
    }


def reached_groups(term: torch.Tensor, groups: dict) -> set[str]:
    reached = set()
    for name, parameters in groups.items():
        gradients = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
        if any(gradient is not None and gradient.abs().sum() > 0 for gradient in gradients):
            reached.add(name)
    return reached


@pytest.mark.parametrize("updates_prompt", [False, True])
def test_each_loss_term_reaches_the_parameters_it_should(updates_prompt):
    torch.manual_seed(0)
    config = tiny_synerdetect_config(reconstruction_updates_prompt=updates_prompt)
    model = with_trained_lora(SynerDetectForImageClassification(config)).train()
    labels = torch.tensor([0, 1, 0, 1])
    inputs = reconstruction_inputs(4)
    outputs = model(torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1, labels=labels, **inputs)
    losses = synerdetect_losses(outputs, inputs["reconstruction_noise"], labels, config)
    groups = parameter_groups(model)
    # CMID updates the perceptual encoder (and the projection of c); z_t is detached unless asked otherwise.
    expected_reconstruction = {"visual_lora", "condition_projection"} | ({"prompt_tuner"} if updates_prompt else set())
    assert reached_groups(losses["reconstruction"], groups) == expected_reconstruction
    assert reached_groups(losses["contrastive"], groups) == {"visual_lora", "noise_lora", "noise_adapter",
                                                             "prompt_tuner"}
    assert reached_groups(losses["transport"], groups) == {"visual_lora", "noise_lora", "noise_adapter"}
    losses["loss"].backward()
    base = model.synerdetect
    for frozen in (base.unet, base.vae, base.text_encoder):
        assert all(parameter.grad is None for parameter in frozen.parameters())
    assert all(parameter.grad is None for name, parameter in base.visual_encoder.named_parameters()
               if "lora_" not in name)


def test_one_class_batch_gives_finite_losses_and_gradients():
    torch.manual_seed(0)
    config = tiny_synerdetect_config()
    model = with_trained_lora(SynerDetectForImageClassification(config)).train()
    labels = torch.ones(4, dtype=torch.long)
    inputs = reconstruction_inputs(4)
    outputs = model(torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1, labels=labels, **inputs)
    losses = synerdetect_losses(outputs, inputs["reconstruction_noise"], labels, config)
    assert losses["contrastive"].item() == 0.0  # no negatives: each InfoNCE term is log(exp(s)) - s
    assert all(torch.isfinite(value) for value in losses.values())
    losses["loss"].backward()
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(gradient).all() for gradient in gradients)


def test_gmm_soft_em_recovers_two_clusters_and_survives_identical_samples():
    generator = torch.Generator().manual_seed(0)
    features = torch.cat([torch.randn(6, 2, generator=generator) * 0.1 + torch.tensor([3.0, 0.0]),
                          torch.randn(2, 2, generator=generator) * 0.1 - torch.tensor([3.0, 0.0])])
    mixture = fit_gaussian_mixture(features, num_components=2)
    order = mixture.means[:, 0].argsort(descending=True)
    torch.testing.assert_close(mixture.weights[order], torch.tensor([0.75, 0.25]), atol=1e-4, rtol=0)
    torch.testing.assert_close(mixture.means[order], torch.stack([features[:6].mean(0), features[6:].mean(0)]),
                               atol=1e-4, rtol=0)
    identical = torch.ones(4, 3, requires_grad=True)
    collapsed = fit_gaussian_mixture(identical, num_components=2)
    assert all(torch.isfinite(value).all() for value in (collapsed.weights, collapsed.means, collapsed.variances))
    loss = prototype_optimal_transport_loss(identical, identical * 2, num_components=2, entropy=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(identical.grad).all()
    with pytest.raises(ValueError, match="components"):
        fit_gaussian_mixture(torch.randn(3, 2), num_components=4)


def test_bures_cost_matches_a_hand_computation_and_pot():
    first = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[0.0, 0.0], [1.0, 0.0]]),
                            torch.tensor([[1.0, 4.0], [1.0, 1.0]]))
    second = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[0.0, 1.0], [2.0, 2.0]]),
                             torch.tensor([[4.0, 1.0], [1.0, 9.0]]))
    # ||mu_i - mu_j||^2 + sum_d (sqrt(s_id) - sqrt(s_jd))^2, e.g. C[0, 1] = 8 + (1 - 1)^2 + (2 - 3)^2 = 9.
    expected = torch.tensor([[3.0, 9.0], [3.0, 9.0]])
    cost = bures_wasserstein_cost(first, second)
    torch.testing.assert_close(cost, expected)
    with_matrix_square_roots = ot.gmm.dist_bures_squared(
        first.means.double(), second.means.double(), torch.diag_embed(first.variances.double()),
        torch.diag_embed(second.variances.double()),
    )
    torch.testing.assert_close(cost.double(), with_matrix_square_roots)


def test_transport_plan_marginals_are_the_gmm_weights_and_it_is_differentiable():
    generator = torch.Generator().manual_seed(1)
    visual = torch.cat([torch.randn(6, 4, generator=generator) * 0.1 + 1, torch.randn(2, 4, generator=generator) - 1])
    noise = torch.cat([torch.randn(3, 4, generator=generator) * 0.1 + 2, torch.randn(5, 4, generator=generator) - 2])
    means = visual.clone().requires_grad_(True)
    visual_mixture = fit_gaussian_mixture(means, 2)
    noise_mixture = fit_gaussian_mixture(noise, 2)
    assert not torch.allclose(visual_mixture.weights, noise_mixture.weights)  # non-uniform, different marginals
    plan, cost = prototype_transport_plan(noise_mixture, visual_mixture, entropy=0.1)
    torch.testing.assert_close(plan.sum(dim=1), noise_mixture.weights, atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(dim=0), visual_mixture.weights, atol=1e-5, rtol=0)
    (gradient,) = torch.autograd.grad((plan * cost).sum(), means)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_contrastive_loss_matches_eq7_by_hand():
    generator = torch.Generator().manual_seed(2)
    prompts, visual, noise = (torch.randn(3, 2, 5, generator=generator), torch.randn(3, 5, generator=generator),
                              torch.randn(3, 5, generator=generator))
    labels = torch.tensor([0, 1, 1])
    tau = 0.5
    cosine = torch.nn.functional.cosine_similarity
    terms = []
    for i in range(3):
        anchor = prompts[i, labels[i]]
        negatives = [embedding[j] for j in range(3) if labels[j] != labels[i] for embedding in (visual, noise)]
        for positive in (visual[i], noise[i]):
            score = cosine(anchor, positive, dim=0) / tau
            others = sum(torch.exp(cosine(anchor, negative, dim=0) / tau) for negative in negatives)
            terms.append(-score + torch.log(torch.exp(score) + others))
    expected = torch.stack(terms).mean()
    torch.testing.assert_close(discriminative_contrastive_loss(prompts, visual, noise, labels, tau), expected)


@pytest.mark.parametrize(("flags", "message"), [
    ([], "--clip_model and --diffusion_model"),
    (["--clip_model", "c"], "--clip_model and --diffusion_model"),
    (["--model", "m", "--clip_model", "c"], "drop them"),
    (["--clip_model", "c", "--diffusion_model", "d", "--synerdetect_config", "[1]"], "JSON object"),
    (["--model", "m", "--inversion_steps", "0"], "inversion_steps"),
    (["--model", "m", "--inversion_cache_max_age", "-1"], "max_age"),
])
def test_synerdetect_flags_are_validated(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_training_arguments(["--task", "synerdetect", "--train_data", "d", "--output_dir", "o", *flags])


def test_synerdetect_flags_belong_to_the_synerdetect_task():
    with pytest.raises(ValueError, match="apply to the synerdetect task"):
        parse_training_arguments(["--task", "classify", "--train_data", "d", "--output_dir", "o",
                                  "--inversion_cache", "c"])
