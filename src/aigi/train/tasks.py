"""What is trained: RescaleCL rescaling-contrastive pre-training, real/fake classification (any family; GenSign's
detector stage), GenSign's DAIR and signature-extractor stages (`gensign.py`), FiSeR's hierarchical contrastive
encoder (`fiser.py`) and SynerDetect's hierarchical synergistic objective (`synerdetect.py`)."""

import random
from collections.abc import Callable, Sequence

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.image_processing_backends import PilBackend

from ..data.rescaling import rescale_ratios, sample_rescaling_contrast_batch
from ..data.records import DetectionRecord
from ..losses import supervised_contrastive_loss
from ..modeling.cnnspot import CNNSpotConfig
from ..modeling.gensign import GenSignConfig, GenSignForImageClassification
from ..modeling.npr import NPRConfig
from ..modeling.rescalecl import RescaleCLConfig, RescaleCLModel
from ..modeling.univfd import UnivFDConfig, UnivFDForImageClassification, clip_vision_config
from ..registry import FAMILIES
from .args import TrainingArguments
from .fiser import FiSeRContrastiveTask
from .imagenet_start import input_normalization, load_imagenet_weights
from .gensign import DAIRTask, SignatureExtractorCheckpoint, SignatureExtractorTask
from .samples import (
    AugmentedDetectionDataset,
    RealPhotoCrops,
    real_photos,
    sample_seed,
    self_augmentation,
    training_augment,
    training_records,
)
from .synerdetect import SynerDetectTask


class ProjectionHead(nn.Sequential):
    """The SupCon projection MLP of pre-training; discarded before fine-tuning."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__(nn.Linear(input_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, output_dim))


class RescalingContrastModel(nn.Module):
    """Encoder + SupCon projection head (+ an optional linear head predicting the rescale ratio)."""

    def __init__(self, encoder: RescaleCLModel, num_ratios: int | None = None):
        super().__init__()
        config = encoder.config
        self.encoder = encoder
        self.projection = ProjectionHead(encoder.feature_dim, config.projection_hidden_size, config.projection_dim)
        self.ratio_head = nn.Linear(encoder.feature_dim, num_ratios) if num_ratios else None

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.encoder(patches).pooler_output
        ratio_logits = self.ratio_head(features) if self.ratio_head is not None else None
        return self.projection(features), ratio_logits


class RescaleCLPretrainTask:
    """Rescaling-contrastive pre-training on real photos (labels of the data are ignored; fakes are dropped)."""

    # Channels-last runs Xception's depthwise convolutions about 5x faster on CPU.
    memory_format = torch.channels_last
    find_unused_parameters = False

    def __init__(self, args: TrainingArguments):
        self.args = args
        self.ratios = rescale_ratios(args.max_ratio_denominator)
        self.processor = scratch_processor(args)

    def build_model(self) -> nn.Module:
        if self.args.model:
            encoder = RescaleCLModel.from_pretrained(self.args.model)
        else:
            encoder = RescaleCLModel(scratch_config(self.args))
            if self.args.backbone_pretrained:
                load_imagenet_weights(encoder.encoder, self.args.backbone)
        return RescalingContrastModel(encoder, len(self.ratios) if self.args.ratio_classification_weight else None)

    def build_dataset(self) -> torch.utils.data.Dataset:
        reals = real_photos(self.args.train_data)
        if len(reals) < 2 * self.args.ratios_per_batch:
            raise ValueError(f"rescalecl-pretrain needs real photos; found {len(reals)} in {self.args.train_data}")
        return RealPhotoCrops(reals, crop_size=2 * self.args.patch_size, seed=self.args.seed)

    @staticmethod
    def collate(images: list[torch.Tensor]) -> list[torch.Tensor]:
        return images

    def compute_loss(self, model: nn.Module, images: list[torch.Tensor], step: int, process_index: int):
        generator = torch.Generator().manual_seed(sample_seed(self.args.seed, step, process_index))
        batch = sample_rescaling_contrast_batch(
            images, patch_size=self.args.patch_size, ratios_per_batch=self.args.ratios_per_batch,
            phases_per_ratio=self.args.phases_per_ratio, generator=generator, ratios=self.ratios,
        )
        device = next(model.parameters()).device
        patches = (batch.patches.to(device) - 0.5) / 0.5  # the processor's normalisation (mean = std = 0.5)
        projections, ratio_logits = model(patches.contiguous(memory_format=torch.channels_last))
        supcon = supervised_contrastive_loss(projections, batch.labels.to(device), temperature=self.args.temperature)
        losses = {"supcon": supcon, "loss": supcon}
        if ratio_logits is not None:
            ratio_targets = torch.tensor([self.ratios.index(ratio) for ratio in batch.ratios], device=device)
            losses["ratio_ce"] = nn.functional.cross_entropy(ratio_logits, ratio_targets)
            losses["loss"] = supcon + self.args.ratio_classification_weight * losses["ratio_ce"]
        return losses

    def trainable_parameters(self, model: nn.Module):
        return model.parameters()

    def save_final(self, model: nn.Module, directory: str) -> None:
        model.encoder.save_pretrained(directory)
        self.processor.save_pretrained(directory)


def few_shot_subset(records: Sequence[DetectionRecord], per_class: int, seed: int) -> list[DetectionRecord]:
    rng = random.Random(seed)
    subset = []
    for label in (0, 1):
        members = [record for record in records if record.label == label]
        if len(members) < per_class:
            raise ValueError(f"few-shot needs {per_class} images of label {label}, found {len(members)}")
        subset += rng.sample(members, per_class)
    return subset


class ClassificationTask:
    """Binary real/fake fine-tuning of any registered family (`--model` gives the starting checkpoint, else a
    from-scratch `--family` detector)."""

    memory_format = torch.channels_last
    find_unused_parameters = False

    def __init__(self, args: TrainingArguments):
        self.args = args
        if args.model:
            self.processor = AutoImageProcessor.from_pretrained(args.model)
        else:
            self.processor = scratch_processor(args)

    def build_model(self) -> nn.Module:
        if self.args.model:
            model = AutoModelForImageClassification.from_pretrained(self.args.model)
        else:
            model = scratch_classifier(self.args)
        if self.args.finetune_mode == "linear":
            base = getattr(model, model.base_model_prefix)
            base.requires_grad_(False)
        return model

    def build_dataset(self) -> torch.utils.data.Dataset:
        records = training_records(self.args)
        if self.args.samples_per_class:
            records = few_shot_subset(records, self.args.samples_per_class, self.args.seed)
        return AugmentedDetectionDataset(
            records, self.processor, training_augment(self.args), crop_size=self.args.patch_size, seed=self.args.seed,
            labelled_transform=self_augmentation(self.args),
        )

    collate = None

    def compute_loss(self, model: nn.Module, batch: dict, step: int, process_index: int):
        if self.args.finetune_mode == "linear":
            getattr(_unwrap(model), _unwrap(model).base_model_prefix).eval()  # frozen BatchNorm statistics
        pixel_values = batch["pixel_values"].contiguous(memory_format=torch.channels_last)
        return {"loss": model(pixel_values=pixel_values, labels=batch["labels"]).loss}

    def trainable_parameters(self, model: nn.Module):
        return [parameter for parameter in model.parameters() if parameter.requires_grad]

    def save_final(self, model: nn.Module, directory: str) -> None:
        model.save_pretrained(directory)
        self.processor.save_pretrained(directory)


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


# The timm encoder of each family that has one (what `--backbone_pretrained` loads ImageNet weights into).
TIMM_ENCODERS: dict[str, Callable[[PreTrainedModel], nn.Module]] = {
    "rescalecl": lambda model: model.rescalecl.encoder,
    "gensign": lambda model: model.gensign.rgb_backbone,
    "cnnspot": lambda model: model.cnnspot.encoder,
}
# UnivFD without --clip_model: a small random CLIP ViT, frozen as the paper's ViT-L/14 is, so the probe reads random
# (untrained) features. It exercises the pipeline offline; it is not the paper's detector.
UNIVFD_OFFLINE_VISION_CONFIG = {
    "hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4,
    "patch_size": 16, "projection_dim": 256,
}


def scratch_classifier(args: TrainingArguments) -> PreTrainedModel:
    """A new detector of `args.family`; for GenSign, with the trained `args.extractor` copied in (frozen); for
    UnivFD with `args.clip_model`, on that CLIP's vision tower."""
    if args.family == "univfd" and args.clip_model:
        return UnivFDForImageClassification.from_clip(args.clip_model)
    if args.family == "gensign":
        extractor = SignatureExtractorCheckpoint.from_pretrained(args.extractor) if args.extractor else None
        model = GenSignForImageClassification(gensign_scratch_config(args, extractor))
        if extractor is not None:
            model.gensign.signature_extractor.load_state_dict(extractor.state_dict())
    else:
        model = FAMILIES[args.family].classification_class(scratch_config(args))
    if args.backbone_pretrained:
        load_imagenet_weights(TIMM_ENCODERS[args.family](model), args.backbone)
    return model


SCRATCH_CONFIGS: dict[str, Callable[[TrainingArguments], PreTrainedConfig]] = {
    "rescalecl": lambda args: RescaleCLConfig(
        backbone=args.backbone, backbone_pretrained=args.backbone_pretrained,
        input_highpass=args.input_highpass, image_size=args.image_size,
    ),
    "cnnspot": lambda args: CNNSpotConfig(
        backbone=args.backbone, backbone_pretrained=args.backbone_pretrained, image_size=args.image_size,
    ),
    "univfd": lambda args: UnivFDConfig(
        vision_config={**UNIVFD_OFFLINE_VISION_CONFIG, "image_size": args.image_size}, image_size=args.image_size,
    ),
    "npr": lambda args: NPRConfig(image_size=args.image_size),
}


def scratch_config(args: TrainingArguments) -> PreTrainedConfig:
    """The configuration of a run of `args.family` that does not start from a checkpoint (GenSign: see
    `gensign_scratch_config`)."""
    return SCRATCH_CONFIGS[args.family](args)


def gensign_scratch_config(args: TrainingArguments, extractor: SignatureExtractorCheckpoint | None) -> GenSignConfig:
    """The offline GenSign configuration: timm backbones for both streams, trained in full on [-1, 1] input (or the
    input the RGB stream's ImageNet weights expect)."""
    mean, std = input_normalization(args.backbone) if args.backbone_pretrained else ([0.5] * 3, [0.5] * 3)
    extractor_shape = {}
    if extractor is not None:
        extractor_shape = {"signature_extractor_width": extractor.width,
                           "signature_extractor_blocks": extractor.num_blocks}
    return GenSignConfig(
        rgb_backbone=args.backbone, rgb_image_mean=mean, rgb_image_std=std,
        use_signature_stream=args.use_signature_stream, signature_backbone=args.signature_backbone,
        image_size=args.image_size, **extractor_shape,
    )


def scratch_processor(args: TrainingArguments) -> PilBackend:
    """The image processor of a run that does not start from a checkpoint."""
    side = args.image_size
    if args.family == "univfd" and args.clip_model:
        side = clip_vision_config(AutoConfig.from_pretrained(args.clip_model))["image_size"]  # the tower's fixed size
    normalization = {}
    if args.backbone_pretrained:
        mean, std = input_normalization(args.backbone)
        normalization = {"image_mean": mean, "image_std": std}
    return FAMILIES[args.family].image_processor_class(crop_size={"height": side, "width": side}, **normalization)


def build_task(args: TrainingArguments):
    task_classes = {
        "rescalecl-pretrain": RescaleCLPretrainTask,
        "classify": ClassificationTask,
        "dair": DAIRTask,
        "gensign-extractor": SignatureExtractorTask,
        "fiser": FiSeRContrastiveTask,
        "synerdetect": SynerDetectTask,
    }
    return task_classes[args.task](args)
