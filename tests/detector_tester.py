"""Shared checks every detector family must pass (transformers-style tester mixin on tiny configs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification
from transformers.modeling_outputs import ImageClassifierOutput


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


class DetectorModelTesterMixin:
    """Subclasses set `config_class`, `model_class`, `base_model_class`, `processor_class` and `tiny_config()`."""

    config_class: type
    model_class: type
    base_model_class: type
    processor_class: type
    image_size: int = 32

    def tiny_processor(self):
        side = self.image_size
        return self.processor_class(crop_size={"height": side, "width": side})

    def pixel_values(self, batch_size: int = 2) -> torch.Tensor:
        images = [random_image(self.image_size + 8, self.image_size + 4, seed) for seed in range(batch_size)]
        return self.tiny_processor()(images=images, return_tensors="pt")["pixel_values"]

    def test_config_labels_and_threshold(self):
        config = self.tiny_config()
        assert config.id2label == {0: "real", 1: "fake"}
        assert config.label2id == {"real": 0, "fake": 1}
        assert config.decision_threshold == 0.5
        restored = self.config_class.from_dict(json.loads(config.to_json_string()))
        assert restored.id2label == config.id2label and restored.label2id == config.label2id

    def test_config_is_strict(self):
        with pytest.raises(StrictDataclassError):
            self.config_class(decision_threshold="high")
        with pytest.raises(StrictDataclassError, match="decision_threshold"):
            self.config_class(decision_threshold=1.5)

    def test_forward_logits_and_loss(self):
        model = self.model_class(self.tiny_config()).eval()
        output = model(pixel_values=self.pixel_values(), labels=torch.tensor([0, 1]))
        assert isinstance(output, ImageClassifierOutput)
        assert output.logits.shape == (2, 2)
        assert output.loss is not None and torch.isfinite(output.loss)
        output.loss.backward()
        assert any(parameter.grad is not None for parameter in model.parameters())

    def test_image_features(self):
        model = self.model_class(self.tiny_config()).eval()
        with torch.no_grad():
            features = model.get_image_features(self.pixel_values(3))
        assert features.ndim == 2 and features.shape[0] == 3

    def test_save_and_auto_load_round_trip(self, tmp_path):
        import aigi  # noqa: F401  (registration)

        model = self.model_class(self.tiny_config()).eval()
        model.save_pretrained(tmp_path)
        self.tiny_processor().save_pretrained(tmp_path)
        pixel_values = self.pixel_values()
        reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
        assert type(reloaded) is self.model_class
        with torch.no_grad():
            torch.testing.assert_close(reloaded(pixel_values).logits, model(pixel_values).logits)
        assert type(AutoConfig.from_pretrained(tmp_path)) is self.config_class
        assert type(AutoModel.from_pretrained(tmp_path)) is self.base_model_class
        assert type(AutoImageProcessor.from_pretrained(tmp_path)) is self.processor_class
        saved = json.loads((tmp_path / "config.json").read_text())
        assert set(saved["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
        assert (tmp_path / "model.safetensors").is_file()

    def test_processor_never_resamples(self, tmp_path):
        processor = self.tiny_processor()
        processor.save_pretrained(tmp_path)
        saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
        assert saved["do_resize"] is False and saved["do_center_crop"] is True
        side = self.image_size
        large = random_image(side + 10, side + 6, seed=3)
        out = processor(images=large, return_tensors="pt")["pixel_values"][0]
        assert out.shape == (3, side, side)
        expected = np.asarray(large)[3 : 3 + side, 5 : 5 + side]
        restored = (out.permute(1, 2, 0).numpy() * np.array(processor.image_std) + np.array(processor.image_mean)) * 255
        np.testing.assert_allclose(restored, expected, atol=1e-3)

    def test_processor_reflect_pads_small_images(self):
        processor = self.tiny_processor()
        side = self.image_size
        small = random_image(side - 10, side, seed=4)
        out = processor(images=small, return_tensors="pt")["pixel_values"][0]
        assert out.shape == (3, side, side)
        restored = (out.permute(1, 2, 0).numpy() * np.array(processor.image_std) + np.array(processor.image_mean)) * 255
        pixels = np.asarray(small).astype(np.float64)
        np.testing.assert_allclose(restored[:, 5 : 5 + side - 10], pixels, atol=1e-3)
        np.testing.assert_allclose(restored[:, 4], pixels[:, 1], atol=1e-3)  # mirrored, not zero-filled
