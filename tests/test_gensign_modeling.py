import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoModelForImageClassification, CLIPVisionConfig, CLIPVisionModel

from aigi.modeling.gensign import (
    GenSignConfig,
    GenSignForImageClassification,
    GenSignImageProcessor,
    GenSignModel,
    gensign_signature,
)
from detector_tester import DetectorModelTesterMixin, random_image

IMAGE_SIZE = 32
SMALL_STREAMS = dict(
    signature_backbone="test_efficientnet",
    signature_extractor_width=8,
    signature_extractor_blocks=2,
    head_hidden_size=16,
    image_size=IMAGE_SIZE,
)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def tiny_clip_vision_config(hidden_size: int = 32, image_size: int = 24, **overrides) -> CLIPVisionConfig:
    values = dict(hidden_size=hidden_size, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  image_size=image_size, patch_size=8)
    return CLIPVisionConfig(**{**values, **overrides})


def tiny_clip_config(**overrides) -> GenSignConfig:
    return GenSignConfig(rgb_vision_config=tiny_clip_vision_config(), **{**SMALL_STREAMS, **overrides})


def clip_classifier_with_trained_lora(**overrides) -> GenSignForImageClassification:
    """A CLIP-stream classifier whose LoRA deltas are not zero, as after training."""
    torch.manual_seed(0)
    model = GenSignForImageClassification(tiny_clip_config(**overrides)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    return model


def projection_weights(model: GenSignForImageClassification) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items() if "base_layer.weight" in name}


class TestGenSign(DetectorModelTesterMixin):
    config_class = GenSignConfig
    model_class = GenSignForImageClassification
    base_model_class = GenSignModel
    processor_class = GenSignImageProcessor
    image_size = IMAGE_SIZE

    def tiny_config(self):
        return GenSignConfig(rgb_backbone="test_resnet", rgb_image_mean=[0.5] * 3, rgb_image_std=[0.5] * 3,
                             **SMALL_STREAMS)


def test_paper_configuration_shapes():
    config = GenSignConfig()
    assert config.rgb_vision_config.hidden_size == 1024 and config.rgb_vision_config.patch_size == 14
    assert (config.rgb_lora_rank, config.rgb_lora_alpha, config.rgb_lora_dropout) == (4, 4, 0.1)
    assert config.signature_backbone == "efficientnet_b0" and config.signature_fractional_wrap
    # ViT-L/14 widths with a single layer keep this fast; depth does not change the head or the LoRA layout.
    narrow = GenSignConfig(rgb_vision_config={**config.rgb_vision_config.to_dict(), "num_hidden_layers": 1,
                                              "intermediate_size": 64})
    model = GenSignForImageClassification(narrow)
    first, last = model.classifier[0], model.classifier[2]
    assert (first.in_features, first.out_features, last.out_features) == (2304, 256, 2)
    lora_parameters = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert lora_parameters == 4 * 4 * (1024 + 1024)  # per layer: r * (in + out) for q, k, v and out projections
    assert sum(p.numel() for p in model.gensign.signature_extractor.parameters()) == 596_547


def test_clip_stream_forward_backward_trains_only_lora_and_projection_biases():
    model = GenSignForImageClassification(tiny_clip_config()).train()
    output = model(torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE), labels=torch.tensor([0, 1]))
    assert output.logits.shape == (2, 2)
    output.loss.backward()
    trainable = {name for name, parameter in model.gensign.rgb_backbone.named_parameters() if parameter.requires_grad}
    assert trainable and all("lora_" in name or "base_layer.bias" in name for name in trainable)
    assert any("lora_B" in name and parameter.grad.abs().sum() > 0
               for name, parameter in model.gensign.rgb_backbone.named_parameters())
    assert model.classifier[0].weight.grad is not None
    assert next(model.gensign.signature_backbone.parameters()).grad is not None


def test_signature_extractor_is_frozen_before_and_after_loading(tmp_path):
    model = GenSignForImageClassification(tiny_clip_config())
    model(torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE), labels=torch.tensor([0, 1])).loss.backward()
    extractor = model.gensign.signature_extractor
    assert all(not p.requires_grad and p.grad is None for p in extractor.parameters())
    trainable_before = {name for name, p in model.named_parameters() if p.requires_grad}
    model.save_pretrained(tmp_path)
    reloaded = GenSignForImageClassification.from_pretrained(tmp_path)
    assert {name for name, p in reloaded.named_parameters() if p.requires_grad} == trainable_before


@pytest.mark.parametrize("merge_before_saving", [False, True])
def test_lora_state_survives_save_and_load_without_double_merge(tmp_path, merge_before_saving):
    model = clip_classifier_with_trained_lora()
    pixel_values = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        expected = model(pixel_values).logits
    unmerged_weights = projection_weights(model)
    if merge_before_saving:
        model.gensign.merge_rgb_lora()
    saved_weights = projection_weights(model)
    merged_delta_saved = any(not torch.equal(saved_weights[name], unmerged_weights[name]) for name in saved_weights)
    assert merged_delta_saved == merge_before_saving
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["rgb_lora_merged"] is merge_before_saving

    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    layers = [m for m in reloaded.modules() if hasattr(m, "merged_adapters")]
    assert layers and all(layer.merged is merge_before_saving for layer in layers)
    for name, value in projection_weights(reloaded).items():
        torch.testing.assert_close(value, saved_weights[name])  # nothing added on load
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values).logits, expected)
    reloaded.gensign.merge_rgb_lora()
    reloaded.gensign.merge_rgb_lora()  # idempotent
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values).logits, expected)
    reloaded.gensign.unmerge_rgb_lora()
    for name, value in projection_weights(reloaded).items():
        torch.testing.assert_close(value, unmerged_weights[name])


def test_clip_weights_load_into_the_adapted_tower():
    clip = CLIPVisionModel(tiny_clip_vision_config()).eval()
    model = GenSignModel(tiny_clip_config()).eval()
    model.load_clip_weights(clip.state_dict())
    pixel_values = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    mean = torch.tensor(model.config.rgb_image_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.rgb_image_std).view(1, 3, 1, 1)
    clip_input = ((pixel_values * 0.5 + 0.5 - mean) / std)[..., 4:28, 4:28]  # centre 24 x 24 crop
    with torch.no_grad():
        torch.testing.assert_close(model.rgb_stream(pixel_values)[1], clip(pixel_values=clip_input).pooler_output)
    with pytest.raises(ValueError, match="lacks"):
        model.load_clip_weights({})


def test_fractional_wrap_is_configurable():
    pixel_values = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    wrapped = GenSignModel(tiny_clip_config()).eval()
    plain = GenSignModel(tiny_clip_config(signature_fractional_wrap=False)).eval()
    plain.signature_extractor.load_state_dict(wrapped.signature_extractor.state_dict())
    residual = plain.signature(pixel_values)
    assert residual.min() < 0
    signature = wrapped.signature(pixel_values)
    assert signature.min() >= 0 and signature.max() < 1
    torch.testing.assert_close(signature, residual - torch.floor(residual))


def test_signature_image_has_the_input_size():
    model = GenSignForImageClassification(tiny_clip_config()).eval()
    image = random_image(37, 29, seed=2)
    signature = gensign_signature(model, image)
    assert signature.size == image.size and signature.mode == "RGB"
    assert gensign_signature(model.gensign, image).tobytes() == signature.tobytes()


def test_configuration_rejects_inconsistent_streams():
    with pytest.raises(StrictDataclassError, match="rgb_vision_config"):
        GenSignConfig(rgb_backbone="test_resnet", rgb_vision_config=tiny_clip_vision_config(), image_size=IMAGE_SIZE)
    with pytest.raises(StrictDataclassError, match="CLIP input size"):
        GenSignConfig(rgb_vision_config=tiny_clip_vision_config(image_size=64), image_size=IMAGE_SIZE)
    assert GenSignConfig(rgb_backbone="test_resnet").rgb_vision_config is None


def test_default_processor_centre_crops_256_to_minus_one_one():
    processor = GenSignImageProcessor()
    assert processor.crop_size.height == 256 and processor.do_resize is False
    pixel_values = processor(images=random_image(300, 280), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 256, 256)
    assert pixel_values.min() >= -1 and pixel_values.max() <= 1
