"""FiSeR's training stage: the encoder learns with the hierarchical contrastive loss (coarse real/fake + fine
generator identity); a head is fitted afterwards on its frozen features (`aigi.train.heads`)."""

import json
from collections.abc import Sequence

import torch
from accelerate import PartialState
from accelerate.utils import gather
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, DINOv3ViTModel

from ..data.records import DetectionRecord
from ..losses import hierarchical_contrastive_loss
from ..modeling.fiser import FiSeRConfig, FiSeRImageProcessor, FiSeRModel
from .args import TrainingArguments
from .imagenet_start import input_normalization, load_imagenet_weights
from .samples import AugmentedDetectionDataset, self_augmentation, training_augment, training_records

GENERATORS_FILE = "generators.json"
PSEUDO_FAKE_GENERATOR = "dair_pseudo_fake"  # the fine-term identity of self-augmented images
READOUT_DEPTH = 18 / 24


def generator_vocabulary(records: list[DetectionRecord], extra: Sequence[str] = ()) -> dict[str, int]:
    """Generator name -> id for the fine term (sorted names, with `extra` ones; "real" is one id like any other,
    never used as fine)."""
    names = sorted({record.generator for record in records} | set(extra))
    return {name: index for index, name in enumerate(names)}


class GeneratorLabelledDataset(torch.utils.data.Dataset):
    """Adds `generator_ids` to the items of a detection dataset: the record's generator in `vocabulary`, or
    `PSEUDO_FAKE_GENERATOR` for an item that self-augmentation turned into a pseudo-fake."""

    def __init__(self, dataset, vocabulary: dict[str, int]):
        self.dataset, self.vocabulary = dataset, vocabulary

    @property
    def records(self) -> list[DetectionRecord]:
        return self.dataset.records

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        record = self.dataset.records[index]
        generator = record.generator if item["labels"] == record.label else PSEUDO_FAKE_GENERATOR
        item["generator_ids"] = self.vocabulary[generator]
        return item


def encoder_from_checkpoint(path: str) -> FiSeRModel:
    """A FiSeR encoder from a FiSeR checkpoint (encoder or detector), or wrapping a plain DINOv3 ViT checkpoint
    (e.g. facebook/dinov3-vitl16-pretrain-lvd1689m, FiSeR's starting point)."""
    config = AutoConfig.from_pretrained(path)
    if config.model_type == FiSeRConfig.model_type:
        return FiSeRModel.from_pretrained(path)
    if config.model_type != "dinov3_vit":
        raise ValueError(f"{path} is a {config.model_type!r} checkpoint; FiSeR starts from a DINOv3 ViT or a FiSeR one")
    dinov3 = DINOv3ViTModel.from_pretrained(path)
    # The reference reads block 18 of ViT-L's 24; other depths are read at the same relative depth.
    feature_layer = round(READOUT_DEPTH * dinov3.config.num_hidden_layers)
    fiser_config = FiSeRConfig(dinov3_config=dinov3.config.to_dict(), feature_layer=feature_layer)
    encoder = FiSeRModel(fiser_config)
    encoder.encoder.load_state_dict(dinov3.state_dict())
    return encoder


class FiSeRContrastiveTask:
    """Hierarchical contrastive training of a FiSeR encoder on labelled data with a `generator` column.

    `--model` starts from a DINOv3 or FiSeR checkpoint (the paper fine-tunes DINOv3 ViT-L/16 in full); without it a
    from-scratch timm `--backbone` is trained (the offline configuration). The contrastive bank is the batch,
    gathered across processes when `--gather_contrastive_bank` (the reference's 2 GPUs x 40 images = 80).
    """

    memory_format = torch.channels_last
    find_unused_parameters = False

    def __init__(self, args: TrainingArguments):
        self.args = args
        self.vocabulary: dict[str, int] = {}
        if args.model:
            self.processor = AutoImageProcessor.from_pretrained(args.model)
        else:
            config = scratch_encoder_config(args)
            self.processor = FiSeRImageProcessor(
                crop_size={"height": args.image_size, "width": args.image_size},
                image_mean=config.image_mean, image_std=config.image_std,
            )

    def build_model(self) -> nn.Module:
        if self.args.model:
            model = encoder_from_checkpoint(self.args.model)
        else:
            model = FiSeRModel(scratch_encoder_config(self.args))
            if self.args.backbone_pretrained:
                load_imagenet_weights(model.encoder, self.args.backbone)
        if self.args.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return model

    def build_dataset(self) -> torch.utils.data.Dataset:
        records = training_records(self.args)
        pseudo_fakes = self_augmentation(self.args)
        has_fakes = pseudo_fakes is not None or any(record.label == 1 for record in records)
        if not has_fakes or not any(record.label == 0 for record in records):
            raise ValueError(f"FiSeR training needs real and fake images; {self.args.train_data} lacks one class")
        self.vocabulary = generator_vocabulary(records, extra=[PSEUDO_FAKE_GENERATOR] if pseudo_fakes else [])
        dataset = AugmentedDetectionDataset(
            records, self.processor, training_augment(self.args), crop_size=self.args.patch_size, seed=self.args.seed,
            labelled_transform=pseudo_fakes,
        )
        return GeneratorLabelledDataset(dataset, self.vocabulary)

    collate = None

    def compute_loss(self, model: nn.Module, batch: dict, step: int, process_index: int):
        pixel_values = batch["pixel_values"].contiguous(memory_format=torch.channels_last)
        features = model(pixel_values=pixel_values).pooler_output
        labels, generators = batch["labels"], batch["generator_ids"]
        bank = {}
        if self.args.gather_contrastive_bank and PartialState().num_processes > 1:
            offset = process_index * features.shape[0]
            bank = {
                "bank": gather(features.detach()), "bank_labels": gather(labels),
                "bank_generators": gather(generators),
                "anchor_bank_indices": torch.arange(offset, offset + features.shape[0], device=features.device),
            }
        losses = hierarchical_contrastive_loss(
            features, labels, generators, temperature=self.args.temperature,
            coarse_weight=self.args.coarse_weight, fine_weight=self.args.fine_weight, **bank,
        )
        bank_size = len(bank["bank"]) if bank else len(features)
        return {**losses, "bank_size": torch.tensor(float(bank_size), device=features.device)}

    def trainable_parameters(self, model: nn.Module):
        return model.parameters()

    def save_final(self, model: nn.Module, directory: str) -> None:
        model.save_pretrained(directory)
        self.processor.save_pretrained(directory)
        with open(f"{directory}/{GENERATORS_FILE}", "w") as handle:
            json.dump(self.vocabulary, handle, indent=2)


def scratch_encoder_config(args: TrainingArguments) -> FiSeRConfig:
    """The offline encoder: a timm backbone (from scratch on [-1, 1] inputs, or its ImageNet start with the input
    those weights expect), trained and read at its final layer."""
    mean, std = input_normalization(args.backbone) if args.backbone_pretrained else ([0.5] * 3, [0.5] * 3)
    return FiSeRConfig(
        backbone=args.backbone, feature_layer=None, image_size=args.image_size, image_mean=mean, image_std=std,
    )
