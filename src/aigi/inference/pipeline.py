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
from .batchnorm_folding import fold_batchnorm

ON_ERROR_CHOICES = ("report", "raise")
# On a CPU the model runs a batch this many crops at a time: a whole batch's feature maps overflow the caches (the
# bundled EfficientNet-Lite detectors score 30-70% more images/s in chunks of 2-8 than at 32; results/speed/).
CPU_FORWARD_CHUNK = 4
CROP_AGGREGATIONS = ("mean", "max", "median")


class AIImageDetectionPipeline(Pipeline):
    """Scores images as real or AI-generated.

    Inputs: a path, an http(s) URL, raw bytes, a PIL image, or a list of those. Call arguments: `batch_size`,
    `threshold` (default: the model's `config.decision_threshold`), `timeout` for URLs, `on_error`, and
    `protocol`: a named evaluation protocol of `aigi.data.transforms.PROTOCOLS` applied to each decoded image
    before the image processor (e.g. "normalized": centre crop 256 + JPEG q95).

    `num_workers` (>= 1) decodes and preprocesses that many images at once in a thread pool, ahead of the model
    (Pillow and NumPy release the GIL), instead of transformers' DataLoader processes (which it caps at one for
    generators). Outputs keep the input order and are identical to those of `num_workers=0` (the caller's thread).

    `num_crops` and `crop_aggregation` (default: the image processor's, from `preprocessor_config.json`) score up
    to `num_crops` native-resolution crops spread over each image and aggregate their logits ("mean", "max" or
    "median"); `return_crops=True` adds the per-crop evidence to the "fake" entry: `"crops": [{"box": [left, top,
    right, bottom], "score": P(fake) of that crop}, ...]`, boxes in the decoded image's pixels (after `protocol`).

    The model runs in channels-last memory, and scores through `scoring_model`: a copy with each batch norm folded
    into the convolution before it (`aigi.inference.batchnorm_folding`; the same scores up to float rounding, a
    faster forward), made when the pipeline is built; `model` stays as loaded. On a CPU each batch goes through the
    model `CPU_FORWARD_CHUNK` crops at a time (`scoring_logits`).

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
        self.scoring_model = fold_batchnorm(self.model)

    def _sanitize_parameters(self, threshold=None, timeout=None, on_error=None, protocol=None, num_crops=None,
                             crop_aggregation=None, return_crops=None):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        if protocol is not None:
            get_protocol(protocol)
            preprocess_params["protocol"] = protocol
        if timeout is not None:
            preprocess_params["timeout"] = timeout
        if on_error is not None:
            if on_error not in ON_ERROR_CHOICES:
                raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
            preprocess_params["on_error"] = on_error
        if (num_crops is not None or crop_aggregation is not None) and not self.scores_crops():
            raise ValueError(f"{type(self.image_processor).__name__} does not take several crops (num_crops)")
        if num_crops is not None:
            if int(num_crops) < 1:
                raise ValueError(f"num_crops must be at least 1, got {num_crops}")
            preprocess_params["num_crops"] = int(num_crops)
        if crop_aggregation is not None:
            if crop_aggregation not in CROP_AGGREGATIONS:
                raise ValueError(f"crop_aggregation must be one of {CROP_AGGREGATIONS}, got {crop_aggregation!r}")
            forward_params["crop_aggregation"] = crop_aggregation
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"threshold must be in [0, 1], got {threshold}")
            postprocess_params["threshold"] = float(threshold)
        if return_crops is not None:
            postprocess_params["return_crops"] = bool(return_crops)
        return preprocess_params, forward_params, postprocess_params

    def scoring_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Float logits of a batch of processed crops from `scoring_model` (in chunks on a CPU)."""
        chunk = CPU_FORWARD_CHUNK if self.device.type == "cpu" else len(pixel_values)
        return torch.cat([model_logits(self.scoring_model, part) for part in pixel_values.split(chunk)])

    def scores_crops(self) -> bool:
        """Whether the image processor takes `num_crops` (every aigi family's does)."""
        return hasattr(self.image_processor, "aggregate_crop_logits")

    def preprocess(
        self, image, timeout: float | None = None, on_error: str = "report", protocol: str = "raw",
        num_crops: int | None = None,
    ) -> dict[str, Any]:
        try:
            decoded = get_protocol(protocol)(load_image(image, timeout=timeout))
            error = ""
        except ImageLoadError as exc:
            if on_error == "raise":
                raise
            side = self.model.config.image_size
            decoded, error = Image.new("RGB", (side, side)), str(exc)
        options = {"num_crops": num_crops} if num_crops is not None else {}
        inputs = self.image_processor(images=decoded, return_tensors="pt", **options)
        boxes = crop_boxes_in_image(self.image_processor, inputs, *decoded.size)
        # Tensors, so that transformers' collation and un-batching treat them like pixel_values.
        return {"pixel_values": inputs["pixel_values"], "crop_counts": torch.tensor([len(boxes)]),
                "crop_boxes": torch.tensor([boxes]), "error": [error]}

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

    def _forward(self, model_inputs: dict[str, Any], crop_aggregation: str | None = None) -> dict[str, Any]:
        errors, crop_counts = model_inputs.pop("error"), model_inputs.pop("crop_counts")
        logits = self.scoring_logits(model_inputs["pixel_values"])
        fake_index = int(self.model.config.label2id["fake"])
        crop_probabilities = logits.softmax(-1)[:, fake_index]
        if len(logits) > len(crop_counts):
            logits = self.image_processor.aggregate_crop_logits(
                logits, crop_counts.tolist(), fake_index, crop_aggregation or self.image_processor.crop_aggregation
            )
        crop_scores = torch.nn.utils.rnn.pad_sequence(
            torch.split(crop_probabilities, crop_counts.tolist()), batch_first=True, padding_value=float("nan")
        )
        return {"fake_probability": logits.softmax(-1)[:, fake_index], "crop_counts": crop_counts,
                "crop_scores": crop_scores, "crop_boxes": model_inputs["crop_boxes"], "error": errors}

    def postprocess(self, model_outputs: dict[str, Any], threshold: float | None = None, return_crops: bool = False):
        error = model_outputs["error"][0]
        if error:
            return {"error": error}
        if threshold is None:
            threshold = self.model.config.decision_threshold
        fake_probability = float(model_outputs["fake_probability"][0])
        fake = {"label": "fake", "score": fake_probability}
        real = {"label": "real", "score": 1.0 - fake_probability}
        if return_crops:
            count = int(model_outputs["crop_counts"][0])
            fake["crops"] = [
                {"box": [int(side) for side in box], "score": float(score)}
                for box, score in zip(model_outputs["crop_boxes"][0][:count], model_outputs["crop_scores"][0][:count])
            ]
        return [fake, real] if fake_probability >= threshold else [real, fake]


def crop_boxes_in_image(image_processor, inputs, width: int, height: int) -> list[list[int]]:
    """(left, top, right, bottom) of each crop the processor took, in the pixels of the `width` x `height` image it
    was given (its centred padding removed, clipped to the image)."""
    crop = getattr(image_processor, "crop_size", None)
    if not getattr(image_processor, "do_center_crop", False) or crop is None:
        return [[0, 0, width, height]]
    crop_height, crop_width = crop["height"], crop["width"]
    if "crop_boxes" in inputs:
        boxes = inputs["crop_boxes"][0]
    else:
        boxes = type(image_processor).crop_boxes(max(height, crop_height), max(width, crop_width), crop_height,
                                                 crop_width, 1) if hasattr(image_processor, "crop_boxes") else \
            [((width - crop_width) // 2, (height - crop_height) // 2, (width + crop_width) // 2,
              (height + crop_height) // 2)]
    top, left = max(0, crop_height - height) // 2, max(0, crop_width - width) // 2
    return [
        [max(0, box_left - left), max(0, box_top - top), min(width, box_right - left), min(height, box_bottom - top)]
        for box_left, box_top, box_right, box_bottom in boxes
    ]


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


def model_logits(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Float logits of a batch of processed images (channels-last, as the pipeline runs the model)."""
    return model(pixel_values=pixel_values.contiguous(memory_format=torch.channels_last)).logits.float()


def fake_probabilities(model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """P(fake) for a batch of processed images, whatever the position of "fake" in the model's labels."""
    return model_logits(model, pixel_values).softmax(-1)[:, int(model.config.label2id["fake"])]


def fake_score(output: list[dict[str, Any]]) -> float:
    """P(fake) from one image's pipeline output."""
    return next(entry["score"] for entry in output if entry["label"] == "fake")
