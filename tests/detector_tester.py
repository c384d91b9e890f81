"""Shared checks every detector family must pass (transformers-style tester mixin on tiny configs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline
from transformers.modeling_outputs import ImageClassifierOutput

from aigi.inference.pipeline import fake_probabilities, fake_score


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def load_without_aigi(model_dir: Path, image_path: Path, home: Path) -> dict:
    """What a Hub user without aigi gets: the checkpoint loaded with `trust_remote_code=True` in a fresh Python that
    cannot import aigi, and the stock image-classification pipeline run on one image.

    Returns `{"model", "module", "base", "output"}` (class names, the model's module, the pipeline output).
    """
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["aigi"] = None  # this interpreter must not be able to import aigi
        from transformers import AutoModel, AutoModelForImageClassification, pipeline
        model = AutoModelForImageClassification.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        base = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        classifier = pipeline("image-classification", model={str(model_dir)!r}, trust_remote_code=True)
        output = classifier({str(image_path)!r})
        print(json.dumps({{"model": type(model).__name__, "module": type(model).__module__,
                          "base": type(base).__name__, "output": output}}))
        """
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", HF_HOME=str(home / "hf_home"), OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=home, env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


class DetectorModelTesterMixin:
    """Subclasses set `config_class`, `model_class`, `base_model_class`, `processor_class` and `tiny_config()`;
    `trained_model()` gives the model in the state training leaves it (default: freshly initialised)."""

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

    def trained_model(self):
        return self.model_class(self.tiny_config()).eval()

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

        torch.manual_seed(0)
        model = self.trained_model()
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

    def test_the_batch_norm_folded_copy_scores_as_the_model(self):
        from helpers import with_random_statistics

        from aigi.inference.batchnorm_folding import fold_batchnorm

        torch.manual_seed(0)
        model = with_random_statistics(self.trained_model(), seed=1)
        pixel_values = self.pixel_values()
        with torch.no_grad():
            expected = model(pixel_values=pixel_values).logits
            folded = fold_batchnorm(model)(pixel_values=pixel_values).logits
        assert (folded - expected).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max()))

    def test_pipeline_round_trip(self, tmp_path):
        import aigi  # noqa: F401  (registration)

        torch.manual_seed(0)
        model = self.trained_model()
        model.save_pretrained(tmp_path)
        self.tiny_processor().save_pretrained(tmp_path)
        detector = pipeline("ai-image-detection", model=str(tmp_path))
        assert type(detector.model) is self.model_class
        image = random_image(self.image_size + 6, self.image_size + 2, seed=5)
        output = detector(image)
        assert sorted(entry["label"] for entry in output) == ["fake", "real"]
        pixel_values = self.tiny_processor()(images=image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            expected = float(fake_probabilities(model, pixel_values)[0])
        assert fake_score(output) == pytest.approx(expected, abs=1e-5)

    def test_remote_code_loads_without_aigi(self, tmp_path):
        torch.manual_seed(0)
        model_dir, image_path = tmp_path / "model", tmp_path / "probe.png"
        model = self.trained_model()
        model.save_pretrained(model_dir)
        processor = self.tiny_processor()
        processor.save_pretrained(model_dir)
        image = random_image(self.image_size + 8, self.image_size + 4, seed=9)
        image.save(image_path)
        with torch.no_grad():
            expected = float(fake_probabilities(model, processor(images=image, return_tensors="pt")["pixel_values"])[0])
        result = load_without_aigi(model_dir, image_path, tmp_path)
        assert result["model"] == self.model_class.__name__ and result["base"] == self.base_model_class.__name__
        assert result["module"].startswith("transformers_modules.")
        assert fake_score(result["output"]) == pytest.approx(expected, abs=1e-5)
