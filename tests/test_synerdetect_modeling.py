import json

import pytest
import torch
from accelerate import init_empty_weights
from huggingface_hub.errors import StrictDataclassError
from transformers import CLIPConfig, CLIPModel

from aigi.modeling.synerdetect import (
    BayarConstrainedConv2d,
    SynerDetectConfig,
    SynerDetectForImageClassification,
    SynerDetectImageProcessor,
    SynerDetectModel,
    matching_scores,
)
from aigi.inference.pipeline import fake_probabilities, fake_score
from detector_tester import DetectorModelTesterMixin, load_without_aigi, random_image

IMAGE_SIZE = 32
TINY_VISION = dict(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2, image_size=24,
                   patch_size=8, projection_dim=12)
# bos/eos 0/2 as in the openai CLIP configs on the Hub; the prompts use their own start/end ids (97/98 here).
TINY_TEXT = dict(vocab_size=99, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=16, projection_dim=12, pad_token_id=1, bos_token_id=0, eos_token_id=2)
TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=[8, 16], layers_per_block=1,
                 down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                 up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], attention_head_dim=2, cross_attention_dim=8,
                 norm_num_groups=4)
TINY_VAE = dict(sample_size=IMAGE_SIZE, in_channels=3, out_channels=3, block_out_channels=[8, 8], layers_per_block=1,
                down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                latent_channels=4, norm_num_groups=4)
TINY_LATENT_SIDE = IMAGE_SIZE // 2  # two VAE blocks downsample 2x


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# The open choices at toy size (the tiny text vocabulary has 99 tokens and 16 positions).
TINY_CHOICES = dict(num_context_tokens=4, class_token_ids=[[5, 7], [6, 7]], prompt_start_token_id=97,
                    prompt_end_token_id=98, tuner_num_heads=2, constrained_conv_patch_size=8, lora_rank=2,
                    lora_alpha=4, gmm_num_components=2)


def tiny_synerdetect_config(**overrides) -> SynerDetectConfig:
    """The paper's classes at toy widths: 1-layer CLIP towers, a 2-block UNet and VAE, 2-step inversion."""
    values = dict(
        vision_config=TINY_VISION, noise_vision_config=TINY_VISION, text_config=TINY_TEXT, unet_config=TINY_UNET,
        vae_config=TINY_VAE, image_size=IMAGE_SIZE, inversion_steps=2, **TINY_CHOICES,
    )
    return SynerDetectConfig(**{**values, **overrides})


def tiny_clip_model() -> CLIPModel:
    return CLIPModel(CLIPConfig(text_config=TINY_TEXT, vision_config=TINY_VISION, projection_dim=12))


def with_trained_lora(model):
    """LoRA deltas that are not zero, as after training."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    return model


def reconstruction_inputs(batch_size: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "reconstruction_noise": torch.randn(batch_size, 4, TINY_LATENT_SIDE, TINY_LATENT_SIDE, generator=generator),
        "reconstruction_timesteps": torch.randint(0, 1000, (batch_size,), generator=generator),
    }


class TestSynerDetect(DetectorModelTesterMixin):
    config_class = SynerDetectConfig
    model_class = SynerDetectForImageClassification
    base_model_class = SynerDetectModel
    processor_class = SynerDetectImageProcessor
    image_size = IMAGE_SIZE

    def tiny_config(self):
        return tiny_synerdetect_config()

    def trained_model(self):
        return with_trained_lora(self.model_class(self.tiny_config())).eval()


def test_paper_configuration_parameter_counts():
    config = SynerDetectConfig()
    with init_empty_weights():
        model = SynerDetectForImageClassification(config)
    base = model.synerdetect

    def count(module, lora: bool | None = None):
        return sum(parameter.numel() for name, parameter in module.named_parameters()
                   if lora is None or ("lora_" in name) == lora)

    # Measured on these classes; the known totals: CLIP ViT-L/14 vision 303.2M, text 123.1M, SD 2.1 UNet 865.9M,
    # VAE 83.7M (the projections to the 768-d joint space are counted apart).
    for tower in (base.visual_encoder, base.noise_encoder):
        assert count(tower.vision_model, lora=False) == 303_179_776
        assert count(tower.visual_projection) == 786_432
        assert count(tower, lora=True) == 24 * 4 * 8 * (1024 + 1024)  # rank 8 on q, k, v, out of 24 layers
    assert count(base.text_encoder.text_model) == 123_060_480
    assert count(base.text_encoder.text_projection) == 589_824
    assert count(base.unet) == 865_910_724
    assert count(base.vae) == 83_653_863
    assert count(base.prompt_tuner) == 5_330_136
    assert count(base.condition_projection) == 768 * 4 * 1024 + 4 * 1024
    assert count(model) == 1_692_773_010
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 11_625_703
    assert base.unet.config.cross_attention_dim == 1024 and base.text_encoder.config.projection_dim == 768
    scheduler = base.inverse_scheduler.config
    assert (scheduler.prediction_type, scheduler.beta_schedule, scheduler.steps_offset) == ("epsilon",
                                                                                            "scaled_linear", 1)
    assert config.inversion_steps == 100 and (config.pot_weight, config.reconstruction_weight) == (0.5, 0.4)


def test_constrained_convolution_kernels_are_prediction_errors():
    convolution = BayarConstrainedConv2d(in_channels=3, out_channels=2, kernel_size=5)
    kernel = convolution.kernel()
    assert kernel.shape == (2, 3, 5, 5)
    torch.testing.assert_close(kernel[:, :, 2, 2], -torch.ones(2, 3))
    torch.testing.assert_close(kernel.sum(dim=(2, 3)), torch.zeros(2, 3), atol=1e-6, rtol=0)
    # Each (output, input) kernel comes from its own free weights (the in != out reshape bug would mix them).
    with torch.no_grad():
        convolution.off_centre_weight[1, 0] = torch.arange(1.0, 25.0)
    kernel = convolution.kernel()
    expected = torch.cat([torch.arange(1.0, 13.0), torch.tensor([-300.0]), torch.arange(13.0, 25.0)]) / 300.0
    torch.testing.assert_close(kernel[1, 0].flatten(), expected)
    constant = torch.full((1, 3, 12, 12), 0.3)
    torch.testing.assert_close(convolution(constant), torch.zeros(1, 2, 12, 12), atol=1e-6, rtol=0)


def test_tuner_refines_context_from_global_and_local_cues():
    torch.manual_seed(0)
    tuner = SynerDetectModel(tiny_synerdetect_config()).prompt_tuner.eval()
    pixel_values, image_embeds = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1, torch.randn(2, 12)
    with torch.no_grad():
        context = tuner(pixel_values, image_embeds)
        other_global = tuner(pixel_values, image_embeds.flip(0))
        other_local = tuner(pixel_values + 0.5 * torch.randn_like(pixel_values), image_embeds)
    assert context.shape == (2, 4, 16)
    assert not torch.allclose(context[0], context[1])
    assert not torch.allclose(context, other_global) and not torch.allclose(context, other_local)


def test_prompts_match_the_clip_text_encoder_on_token_ids():
    """With the context set to the embeddings of token ids, z_t is CLIP's text embedding of those ids."""
    model = SynerDetectModel(tiny_synerdetect_config()).eval()
    context_ids = torch.tensor([10, 11, 12, 13])
    token_embedding = model.text_encoder.get_input_embeddings()
    model.prompt_tuner.forward = lambda pixel_values, image_embeds: token_embedding(context_ids).expand(2, -1, -1)
    with torch.no_grad():
        prompts = model.encode_prompts(torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE), torch.zeros(2, 12))
        for class_index, class_ids in enumerate([[5, 7], [6, 7]]):
            input_ids = torch.tensor([[97, *context_ids.tolist(), *class_ids, 98]])
            expected = model.text_encoder(input_ids=input_ids).text_embeds[0]
            torch.testing.assert_close(prompts[0, class_index], expected)
            torch.testing.assert_close(prompts[1, class_index], expected)


def test_inversion_is_two_ddim_steps_conditioned_on_the_prompt():
    torch.manual_seed(0)
    model = SynerDetectModel(tiny_synerdetect_config()).eval()
    latents = torch.randn(1, 4, TINY_LATENT_SIDE, TINY_LATENT_SIDE)
    condition = torch.randn(1, 4, 8)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    expected = latents
    with torch.no_grad():
        # SD's "leading" spacing with steps_offset 1: timesteps 1 and 501; before t=1 the alpha of t=0 (not 1).
        for timestep, previous_alpha in ((1, alphas_cumprod[0]), (501, alphas_cumprod[1])):
            noise = model.unet(expected, timestep, encoder_hidden_states=condition).sample
            clean = (expected - (1 - previous_alpha).sqrt() * noise) / previous_alpha.sqrt()
            expected = alphas_cumprod[timestep].sqrt() * clean + (1 - alphas_cumprod[timestep]).sqrt() * noise
        inverted = model.invert(latents, condition)
        other = model.invert(latents, condition + 1)
    torch.testing.assert_close(inverted, expected)
    assert not torch.allclose(inverted, other)


def test_reconstruction_noises_latents_as_eq2():
    torch.manual_seed(0)
    model = SynerDetectModel(tiny_synerdetect_config()).eval()
    pixel_values = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    inputs = reconstruction_inputs(2)
    seen = {}
    hook = model.unet.register_forward_pre_hook(lambda module, args: seen.update(sample=args[0]))
    with torch.no_grad():
        model(pixel_values, labels=torch.tensor([0, 1]), noise_maps=torch.zeros(2, 4, 16, 16), **inputs)
    hook.remove()
    alpha = model.inverse_scheduler.alphas_cumprod[inputs["reconstruction_timesteps"]].view(-1, 1, 1, 1)
    latents = model.image_latents(pixel_values)
    expected = alpha.sqrt() * latents + (1 - alpha).sqrt() * inputs["reconstruction_noise"]
    torch.testing.assert_close(seen["sample"], expected)


def test_logits_are_matching_scores_over_temperature_and_cached_noise_maps_skip_inversion():
    torch.manual_seed(0)
    model = with_trained_lora(SynerDetectForImageClassification(tiny_synerdetect_config())).eval()
    pixel_values = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    with torch.no_grad():
        output = model(pixel_values)
        cached = model(pixel_values, noise_maps=output.noise_maps)
        maps = model.synerdetect.invert_images(pixel_values)
    assert output.noise_maps.shape == (2, 4, TINY_LATENT_SIDE, TINY_LATENT_SIDE)
    torch.testing.assert_close(maps, output.noise_maps)
    torch.testing.assert_close(cached.logits, output.logits)
    cosine = torch.nn.functional.cosine_similarity
    for class_index in (0, 1):
        score = (cosine(output.image_embeds, output.prompt_embeds[:, class_index])
                 + cosine(output.noise_embeds, output.prompt_embeds[:, class_index]))
        torch.testing.assert_close(output.logits[:, class_index] * 0.07, score)
    torch.testing.assert_close(
        matching_scores(output.image_embeds, output.noise_embeds, output.prompt_embeds), output.logits * 0.07
    )


def test_alternative_prompt_and_upsampling_choices():
    pixel_values = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    outputs = {}
    alternatives = {"inversion_prompt": "fake", "reconstruction_prompt": "mean", "noise_map_upsampling": "bilinear"}
    for choices in ({}, alternatives):
        torch.manual_seed(0)
        model = SynerDetectModel(tiny_synerdetect_config(**choices)).eval()
        with torch.no_grad():
            # "mean" needs no labels for the reconstruction; "label" (the default) does.
            outputs[bool(choices)] = model(pixel_values, labels=None if choices else torch.tensor([0, 1]),
                                           **reconstruction_inputs(2))
    default, alternative = outputs[False], outputs[True]
    assert not torch.allclose(default.noise_maps, alternative.noise_maps)  # inverted under another prompt
    assert not torch.allclose(default.reconstruction_prediction, alternative.reconstruction_prediction)
    assert torch.isfinite(alternative.noise_embeds).all()
    label_prompt = SynerDetectModel(tiny_synerdetect_config()).eval()
    with pytest.raises(ValueError, match="no labels"):
        label_prompt(pixel_values, **reconstruction_inputs(2))


def test_frozen_parts_before_and_after_loading(tmp_path):
    model = SynerDetectForImageClassification(tiny_synerdetect_config())
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    frozen_prefixes = ("synerdetect.unet.", "synerdetect.vae.", "synerdetect.text_encoder.")
    assert trainable and not any(name.startswith(frozen_prefixes) for name in trainable)
    towers = [name for name in trainable if name.startswith(("synerdetect.visual_encoder", "synerdetect.noise_enc"))]
    assert towers and all("lora_" in name for name in towers)
    model.save_pretrained(tmp_path)
    reloaded = SynerDetectForImageClassification.from_pretrained(tmp_path)
    assert {name for name, parameter in reloaded.named_parameters() if parameter.requires_grad} == trainable


def test_component_weights_load_into_the_towers():
    torch.manual_seed(0)
    clip = tiny_clip_model().eval()
    model = SynerDetectModel(tiny_synerdetect_config()).eval()
    donor = SynerDetectModel(tiny_synerdetect_config())
    model.load_component_weights(clip.state_dict(), donor.unet.state_dict(), donor.vae.state_dict())
    pixel_values = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    clip_input = ((pixel_values * 0.5 + 0.5 - mean) / std)[..., 4:28, 4:28]
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(pixel_values), clip.get_image_features(clip_input).pooler_output)
        input_ids = torch.tensor([[97, 5, 7, 98]])
        torch.testing.assert_close(model.text_encoder(input_ids=input_ids).text_embeds,
                                   clip.get_text_features(input_ids).pooler_output)
    for name, value in donor.unet.state_dict().items():
        torch.testing.assert_close(model.unet.state_dict()[name], value)
    with pytest.raises(ValueError, match="lacks"):
        model.load_component_weights({}, donor.unet.state_dict(), donor.vae.state_dict())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"image_size": 34}, "multiple of 4"),
    ({"class_token_ids": [[5], [150]]}, "vocabulary"),
    ({"class_token_ids": [[5], [6, 7]]}, "same length"),
    ({"prompt_end_token_id": 99}, "vocabulary"),
    ({"inversion_prompt": "label"}, "inversion_prompt"),
    ({"num_context_tokens": 14}, "positions"),
    ({"noise_vision_config": {**TINY_VISION, "projection_dim": 8}}, "projection_dim"),
])
def test_configuration_rejects_inconsistent_choices(overrides, message):
    with pytest.raises(StrictDataclassError, match=message):
        tiny_synerdetect_config(**overrides)


def test_default_processor_centre_crops_256_to_minus_one_one():
    processor = SynerDetectImageProcessor()
    assert processor.crop_size.height == 256 and processor.do_resize is False
    pixel_values = processor(images=random_image(300, 280), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 256, 256)
    assert pixel_values.min() >= -1 and pixel_values.max() <= 1


def test_remote_code_loads_without_aigi(tmp_path):
    torch.manual_seed(0)
    model_dir, image_path = tmp_path / "model", tmp_path / "probe.png"
    model = with_trained_lora(SynerDetectForImageClassification(tiny_synerdetect_config())).eval()
    model.save_pretrained(model_dir)
    processor = SynerDetectImageProcessor(crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor.save_pretrained(model_dir)
    random_image(IMAGE_SIZE + 4, IMAGE_SIZE + 4, seed=9).save(image_path)
    with torch.no_grad():
        pixel_values = processor(images=random_image(IMAGE_SIZE + 4, IMAGE_SIZE + 4, seed=9), return_tensors="pt")
        expected = float(fake_probabilities(model, pixel_values["pixel_values"])[0])
    assert json.loads((model_dir / "config.json").read_text())["auto_map"]["AutoModel"].startswith("modeling_syner")
    result = load_without_aigi(model_dir, image_path, tmp_path)
    assert result["model"] == "SynerDetectForImageClassification" and result["base"] == "SynerDetectModel"
    assert result["module"].startswith("transformers_modules.")
    assert fake_score(result["output"]) == pytest.approx(expected, abs=1e-5)
