"""The `ai-image-detection` pipeline task: P(fake) per image, with a decision threshold."""

from typing import Any

import torch
from PIL import Image
from transformers import Pipeline
from transformers.pipelines.base import no_collate_fn, pad_collate_fn
from transformers.pipelines.pt_utils import PipelineIterator

from ..data.transforms import get_protocol
from ..image_io import ImageLoadError, load_image
from .batching import chunked, preprocess_in_threads

ON_ERROR_CHOICES = ("report", "raise")


class AIImageDetectionPipeline(Pipeline):
    """Scores images as real or AI-generated.

    Inputs: a path, an http(s) URL, raw bytes, a PIL image, or a list of those. Call arguments: `batch_size`,
    `threshold` (default: the model's `config.decision_threshold`), `timeout` for URLs, `on_error`, and
    `protocol`: a named evaluation protocol of `aigi.data.transforms.PROTOCOLS` applied to each decoded image
    before the image processor (e.g. "normalized": centre crop 256 + JPEG q95).

    `num_workers` (>= 1) decodes and preprocesses that many images at once in a thread pool, ahead of the model
    (Pillow and NumPy release the GIL), instead of transformers' DataLoader processes (which it caps at one for
    generators). Outputs keep the input order and are identical to those of `num_workers=0` (the caller's thread).

    Output per image: `[{"label": "fake", "score": p}, {"label": "real", "score": 1 - p}]` where p = P(fake).
    The first entry is the verdict at the threshold; with the default threshold of 0.5 it is also the higher
    score. An input that cannot be decoded gives `{"error": "<message>"}` in its place when `on_error="report"`
    (the default, so one bad file never loses the rest of a batch) or raises `ImageLoadError` with "raise".
    """

    _load_image_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_processor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.to(memory_format=torch.channels_last)

    def _sanitize_parameters(self, threshold=None, timeout=None, on_error=None, protocol=None):
        preprocess_params, postprocess_params = {}, {}
        if protocol is not None:
            get_protocol(protocol)
            preprocess_params["protocol"] = protocol
        if timeout is not None:
            preprocess_params["timeout"] = timeout
        if on_error is not None:
            if on_error not in ON_ERROR_CHOICES:
                raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
            preprocess_params["on_error"] = on_error
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"threshold must be in [0, 1], got {threshold}")
            postprocess_params["threshold"] = float(threshold)
        return preprocess_params, {}, postprocess_params

    def preprocess(
        self, image, timeout: float | None = None, on_error: str = "report", protocol: str = "raw"
    ) -> dict[str, Any]:
        try:
            decoded = get_protocol(protocol)(load_image(image, timeout=timeout))
            error = ""
        except ImageLoadError as exc:
            if on_error == "raise":
                raise
            side = self.model.config.image_size
            decoded, error = Image.new("RGB", (side, side)), str(exc)
        inputs = self.image_processor(images=decoded, return_tensors="pt")
        return {"pixel_values": inputs["pixel_values"], "error": [error]}

    def get_inference_context(self):
        return torch.inference_mode

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        if num_workers < 1:
            return super().get_iterator(inputs, 0, batch_size, preprocess_params, forward_params, postprocess_params)
        lookahead = 2 * max(batch_size, num_workers)
        preprocessed = preprocess_in_threads(
            self.preprocess, inputs, preprocess_params, num_workers=num_workers, lookahead=lookahead
        )
        collate = no_collate_fn if batch_size == 1 else pad_collate_fn(self.tokenizer, self.image_processor)
        batches = (collate(batch) for batch in chunked(preprocessed, batch_size))
        model_iterator = PipelineIterator(batches, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        errors = model_inputs.pop("error")
        return {"fake_probability": fake_probabilities(self.model, model_inputs["pixel_values"]), "error": errors}

    def postprocess(self, model_outputs: dict[str, Any], threshold: float | None = None):
        error = model_outputs["error"][0]
        if error:
            return {"error": error}
        if threshold is None:
            threshold = self.model.config.decision_threshold
        fake_probability = float(model_outputs["fake_probability"][0])
        fake = {"label": "fake", "score": fake_probability}
        real = {"label": "real", "score": 1.0 - fake_probability}
        return [fake, real] if fake_probability >= threshold else [real, fake]


def register_pipeline_task() -> None:
    from transformers import AutoModelForImageClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    from ..registry import default_detector_path

    default_path = default_detector_path()
    PIPELINE_REGISTRY.register_pipeline(
        "ai-image-detection",
        pipeline_class=AIImageDetectionPipeline,
        pt_model=AutoModelForImageClassification,
        # The bundled default detector: `pipeline("ai-image-detection")` works offline with no model argument.
        default={"model": (default_path, None)} if default_path else None,
        type="image",
    )


def fake_probabilities(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """P(fake) for a batch of processed images, whatever the position of "fake" in the model's labels."""
    logits = model(pixel_values=pixel_values.contiguous(memory_format=torch.channels_last)).logits.float()
    return logits.softmax(-1)[:, int(model.config.label2id["fake"])]


def fake_score(output: list[dict[str, Any]]) -> float:
    """P(fake) from one image's pipeline output."""
    return next(entry["score"] for entry in output if entry["label"] == "fake")
