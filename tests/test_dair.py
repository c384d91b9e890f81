import json
import random
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from aigi.dair import (
    ACTIVATIONS,
    DAIR,
    NORMS,
    SUB_BLOCK_OPERATIONS,
    UPSAMPLERS,
    ContextConditionedDynamicConv,
    DAIRArchitecture,
    DAIRConfig,
    ReconstructionLoss,
    SelfAugmentation,
    lpips_vgg_weights_path,
)
from detector_tester import random_image

TINY_CONFIG = DAIRConfig(channels=(8, 8, 16, 16))


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def dair() -> DAIR:
    torch.manual_seed(0)
    return DAIR(TINY_CONFIG).eval()


@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def test_sampling_covers_every_operator():
    samples = [DAIRArchitecture.sample(seed) for seed in range(300)]
    stages = [stage for sample in samples for stage in sample.stages]
    blocks = [block for stage in stages for block in stage.sub_blocks]
    assert {sample.start_level for sample in samples} == {1, 2, 3}
    assert {stage.upsampler for stage in stages} == set(UPSAMPLERS)
    assert {len(stage.sub_blocks) for stage in stages} == {1, 2}
    assert {block.norm for block in blocks} == set(NORMS)
    assert {block.activation for block in blocks} == set(ACTIVATIONS)
    assert len({block.order for block in blocks}) == 6  # every order of conv, norm and activation
    assert all(sorted(block.order) == sorted(SUB_BLOCK_OPERATIONS) for block in blocks)
    assert all(len(sample.stages) == sample.start_level for sample in samples)


def test_architecture_is_seeded_and_json_serialisable():
    sample = DAIRArchitecture.sample(11)
    assert DAIRArchitecture.sample(11) == sample
    assert DAIRArchitecture.sample(random.Random(11)) == sample
    restored = DAIRArchitecture.from_dict(json.loads(json.dumps(sample.to_dict())))
    assert restored == sample
    broken = sample.to_dict()
    broken["stages"][0]["upsampler"] = "transposed_conv"
    with pytest.raises(ValueError, match="upsampler"):
        DAIRArchitecture.from_dict(broken)
    with pytest.raises(ValueError, match="stages"):
        DAIRArchitecture(start_level=2, stages=sample.stages[:1])


def test_seeded_sample_reproduces_the_reconstruction(dair):
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        reconstruction = dair(images, architecture=DAIRArchitecture.sample(5))
        assert torch.equal(dair(images, architecture=DAIRArchitecture.sample(5)), reconstruction)
        assert torch.equal(dair(images, rng=5), reconstruction)
        others = [dair(images, architecture=DAIRArchitecture.sample(seed)) for seed in range(6, 9)]
    assert all(not torch.allclose(other, reconstruction) for other in others)


@pytest.mark.parametrize("start_level", [1, 2, 3])
def test_any_image_size_comes_back_at_its_size(dair, start_level):
    seed = next(s for s in range(100) if DAIRArchitecture.sample(s).start_level == start_level)
    images = torch.rand(1, 3, 19, 13)
    with torch.no_grad():
        reconstruction = dair(images, architecture=DAIRArchitecture.sample(seed))
    assert reconstruction.shape == images.shape and torch.isfinite(reconstruction).all()


def test_architecture_deeper_than_the_dair_is_refused():
    shallow = DAIR(DAIRConfig(channels=(8, 8), max_sub_blocks=1))
    deep = next(DAIRArchitecture.sample(seed) for seed in range(100) if DAIRArchitecture.sample(seed).start_level == 3)
    with pytest.raises(ValueError, match="level"):
        shallow(torch.rand(1, 3, 8, 8), architecture=deep)


def test_ccdc_mixes_four_kernels_per_filter():
    torch.manual_seed(0)
    conv = ContextConditionedDynamicConv(5, 7, num_kernels=4)
    hidden = torch.randn(3, 5, 9, 11)
    weights = conv.routing_weights(hidden)
    assert weights.shape == (3, 4, 7)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3, 7))
    output = conv(hidden)
    assert output.shape == (3, 7, 9, 11)
    for sample in range(3):
        kernel = sum(weights[sample, k][:, None, None, None] * conv.base_kernels[k] for k in range(4))
        bias = sum(weights[sample, k] * conv.base_biases[k] for k in range(4))
        expected = functional.conv2d(hidden[sample : sample + 1], kernel, bias, padding=1)
        torch.testing.assert_close(output[sample : sample + 1], expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(weights[0], weights[1])  # the kernel depends on the input


def test_loss_falls_back_offline_and_says_so(dair, empty_torch_hub):
    loss = ReconstructionLoss()
    assert loss.perceptual_kind == "multiscale-ssim-gradient" and loss.lpips is None
    dair.train()
    images = torch.rand(2, 3, 16, 16)
    try:
        values = loss(dair(images, rng=3), images)
        values["loss"].backward()
    finally:
        dair.eval()
    assert torch.isfinite(values["loss"]) and values["perceptual"] > 0
    torch.testing.assert_close(values["loss"], values["mse"] + 0.25 * values["perceptual"])
    assert any(parameter.grad is not None for parameter in dair.parameters())
    identical = loss(images, images)
    assert float(identical["loss"]) == pytest.approx(0.0, abs=1e-6)


def test_loss_uses_lpips_when_its_weights_are_cached(empty_torch_hub, monkeypatch):
    import lpips

    class StubLPIPS(nn.Module):
        def __init__(self, net, verbose):
            super().__init__()
            assert net == "vgg"

        def forward(self, first, second, normalize):
            return (first - second).abs().mean(dim=(1, 2, 3), keepdim=True)

    monkeypatch.setattr(lpips, "LPIPS", StubLPIPS)
    weights = lpips_vgg_weights_path()
    assert weights.is_relative_to(empty_torch_hub)
    weights.parent.mkdir(parents=True)
    weights.touch()
    assert ReconstructionLoss().perceptual_kind == "lpips-vgg"


def test_forced_lpips_without_weights_fails_cleanly(empty_torch_hub, monkeypatch):
    import lpips

    def offline(**kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(lpips, "LPIPS", offline)
    with pytest.raises(RuntimeError, match="fallback"):
        ReconstructionLoss(perceptual="lpips")


def test_self_augmentation_flips_labels_at_the_requested_rate(dair):
    augment = SelfAugmentation(dair, p_aug=0.2)
    rng = random.Random(0)
    image = torch.rand(3, 8, 8)
    outcomes = [augment(image, label, rng) for label in [0, 1] * 200]
    changed = [not torch.equal(output, image) for output, _ in outcomes]
    assert 0.14 < np.mean(changed) < 0.26
    assert all(label == 1 for (_, label), was_changed in zip(outcomes, changed) if was_changed)
    untouched_labels = [label for (_, label), was_changed in zip(outcomes, changed) if not was_changed]
    assert untouched_labels.count(0) > 100  # real images that were not reconstructed stay real


def test_self_augmentation_with_zero_probability_is_the_identity(dair):
    augment = SelfAugmentation(dair, p_aug=0.0)
    image = random_image(20, 12)
    for seed in range(50):
        output, label = augment(image, 0, seed)
        assert output is image and label == 0


def test_self_augmentation_keeps_the_input_type_and_size(dair):
    augment = SelfAugmentation(dair, p_aug=1.0)
    image = random_image(21, 14, seed=1)
    output, label = augment(image, 0, rng=4)
    assert label == 1 and output.size == image.size and output.mode == "RGB"
    assert output.tobytes() == augment(image, 0, rng=4)[0].tobytes()
    tensor, label = augment(torch.rand(3, 10, 12), 0, rng=4)
    assert label == 1 and tensor.shape == (3, 10, 12) and 0 <= tensor.min() and tensor.max() <= 1
    with pytest.raises(ValueError, match="p_aug"):
        SelfAugmentation(dair, p_aug=1.5)


def test_dair_save_and_load_round_trip(dair, tmp_path):
    dair.save_pretrained(tmp_path)
    reloaded = DAIR.from_pretrained(tmp_path).eval()
    assert reloaded.config == TINY_CONFIG
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(images, rng=2), dair(images, rng=2))
