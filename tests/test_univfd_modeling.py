import pytest
import torch
from accelerate import init_empty_weights
from aigi.modeling.univfd import (
    UnivFDConfig,
    UnivFDForImageClassification,
    UnivFDImageProcessor,
    UnivFDModel,
)
from detector_tester import DetectorModelTesterMixin
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file
from test_training import tiny_arguments
from transformers import (
    AutoModelForImageClassification,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from aigi.train import parse_training_arguments, train

pytestmark = pytest.mark.usefixtures("single_torch_thread")

IMAGE_SIZE = 32
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=8,
                   image_size=IMAGE_SIZE, projection_dim=16)


def tiny_univfd_config() -> UnivFDConfig:
    return UnivFDConfig(vision_config=TINY_VISION, image_size=IMAGE_SIZE)


def tiny_clip_model() -> CLIPModel:
    text = dict(vocab_size=99, hidden_size=24, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=16, bos_token_id=97, eos_token_id=98)
    torch.manual_seed(1)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=TINY_VISION, projection_dim=12))


def trainable_names(model) -> list[str]:
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


class TestUnivFD(DetectorModelTesterMixin):
    config_class = UnivFDConfig
    model_class = UnivFDForImageClassification
    base_model_class = UnivFDModel
    processor_class = UnivFDImageProcessor
    image_size = IMAGE_SIZE

    def tiny_config(self):
        return tiny_univfd_config()


def test_paper_configuration_parameter_counts():
    with init_empty_weights():
        model = UnivFDForImageClassification(UnivFDConfig())
    clip = model.univfd.clip
    assert sum(parameter.numel() for parameter in clip.vision_model.parameters()) == 303_179_776  # CLIP ViT-L/14
    assert clip.visual_projection.weight.shape == (768, 1024)
    assert sum(parameter.numel() for parameter in model.classifier.parameters()) == 768 * 2 + 2
    assert trainable_names(model) == ["classifier.weight", "classifier.bias"]


def test_processor_defaults_are_clip_at_224():
    processor = UnivFDImageProcessor()
    assert processor.crop_size.height == 224 and processor.do_resize is False
    assert list(processor.image_mean) == [0.48145466, 0.4578275, 0.40821073]


def test_image_size_must_match_the_clip_tower():
    with pytest.raises(StrictDataclassError, match="image_size"):
        UnivFDConfig(vision_config=TINY_VISION, image_size=48)


def test_training_step_updates_only_the_probe():
    model = UnivFDForImageClassification(tiny_univfd_config())
    model.train()
    assert not model.univfd.clip.training
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.Adam([parameter for parameter in model.parameters() if parameter.requires_grad], lr=0.1)
    model(pixel_values=torch.randn(4, 3, IMAGE_SIZE, IMAGE_SIZE), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    optimizer.step()
    assert [name for name, parameter in model.named_parameters() if parameter.grad is not None] == [
        "classifier.weight", "classifier.bias"
    ]
    for name, value in model.state_dict().items():
        changed = not torch.equal(value, before[name])
        assert changed == name.startswith("classifier."), name


def test_reloaded_backbone_is_frozen_again(tmp_path):
    UnivFDForImageClassification(tiny_univfd_config()).save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert trainable_names(reloaded) == ["classifier.weight", "classifier.bias"]
    assert not reloaded.train().univfd.clip.training


@pytest.mark.parametrize("source", ["clip", "vision"])
def test_from_clip_copies_the_vision_tower_and_projection(source, tmp_path):
    if source == "clip":
        clip = tiny_clip_model().eval()
    else:
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**{**TINY_VISION, "projection_dim": 12})).eval()
    clip.save_pretrained(tmp_path)
    model = UnivFDForImageClassification.from_clip(str(tmp_path), decision_threshold=0.4).eval()
    assert model.config.vision_config.projection_dim == 12 and model.config.decision_threshold == 0.4
    assert model.config.image_size == IMAGE_SIZE and model.classifier.in_features == 12
    embeddings = model.univfd.clip.vision_model.embeddings
    torch.testing.assert_close(embeddings.patch_embedding.weight, clip.vision_model.embeddings.patch_embedding.weight)
    torch.testing.assert_close(embeddings.position_embedding.weight,
                               clip.vision_model.embeddings.position_embedding.weight)
    pixel_values = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        if source == "clip":
            expected = clip.get_image_features(pixel_values=pixel_values).pooler_output  # the projected embedding
        else:
            expected = clip(pixel_values=pixel_values).image_embeds
        torch.testing.assert_close(model.get_image_features(pixel_values), expected)
    assert trainable_names(model) == ["classifier.weight", "classifier.bias"]


def test_training_from_clip_trains_only_the_probe(detection_folder, tmp_path):
    clip = tiny_clip_model()
    clip.save_pretrained(tmp_path / "clip")
    final_dir = train(parse_training_arguments(tiny_arguments(
        "classify", detection_folder, tmp_path / "run", family="univfd", clip_model=tmp_path / "clip",
        image_size=64, max_steps=2, learning_rate=0.05,
    )))
    weights = load_file(str(final_dir / "model.safetensors"))
    for name, value in clip.vision_model.state_dict().items():
        torch.testing.assert_close(weights[f"univfd.clip.vision_model.{name}"], value, rtol=0, atol=0)
    torch.testing.assert_close(weights["univfd.clip.visual_projection.weight"], clip.visual_projection.weight.data)
    fresh = UnivFDForImageClassification.from_clip(str(tmp_path / "clip"))
    assert not torch.equal(weights["classifier.weight"], fresh.classifier.weight.data)
    assert UnivFDImageProcessor.from_pretrained(final_dir).crop_size.height == IMAGE_SIZE  # the CLIP's, not 64


@pytest.mark.parametrize(("flags", "message"), [
    (["--clip_model", "c"], "--clip_model applies"),
    (["--clip_model", "c", "--family", "univfd", "--model", "m"], "--clip_model applies"),
    (["--family", "npr", "--backbone_pretrained", "true"], "--backbone_pretrained applies"),
    (["--family", "univfd", "--image_size", "128", "--patch_size", "64"], "--patch_size must equal --image_size"),
])
def test_baseline_flags_are_validated(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_training_arguments(["--task", "classify", "--train_data", "d", "--output_dir", "o", *flags])
