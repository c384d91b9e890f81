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


def test_self_augmentation_window_keeps_the_coin_and_the_architecture(dair):
    whole, windowed = SelfAugmentation(dair, p_aug=0.5), SelfAugmentation(dair, p_aug=0.5, window=16)
    image = random_image(40, 36, seed=2)
    for seed in range(30):
        (full, full_label), (part, part_label) = whole(image, 0, seed), windowed(image, 0, seed)
        assert part_label == full_label
        if full_label == 0:
            assert part is image and full is image
        else:
            assert part.size == (16, 16) and full.size == image.size


def test_self_augmentation_window_reconstructs_the_window_with_its_context(dair):
    augment = SelfAugmentation(dair, p_aug=1.0, window=16, context=8)
    image = random_image(64, 48, seed=3)
    output, label = augment(image, 0, rng=7)
    # The draws: the coin, the architecture, then the window's top and left.
    rng = random.Random(7)
    rng.random()
    architecture = dair.sample_architecture(rng)
    top, left = rng.randint(0, 48 - 16), rng.randint(0, 64 - 16)
    box = (max(0, left - 8), max(0, top - 8), min(64, left + 24), min(48, top + 24))
    pixels = torch.from_numpy(np.asarray(image.crop(box), dtype=np.float32) / 255).permute(2, 0, 1)
    with torch.no_grad():
        reconstruction = dair(pixels[None], architecture=architecture)[0].clamp(0, 1)
    kept = reconstruction[:, top - box[1] : top - box[1] + 16, left - box[0] : left - box[0] + 16]
    expected = np.round(kept.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert label == 1 and np.array_equal(np.asarray(output), expected)


def test_self_augmentation_window_on_a_tensor_and_a_smaller_side(dair):
    augment = SelfAugmentation(dair, p_aug=1.0, window=16)
    tensor, label = augment(torch.rand(3, 10, 40), 0, rng=1)
    assert label == 1 and tensor.shape == (3, 10, 16)  # a side shorter than the window stays whole
    image = random_image(12, 14, seed=4)
    small, _ = augment(image, 0, rng=5)
    whole, _ = SelfAugmentation(dair, p_aug=1.0)(image, 0, rng=5)
    assert small.tobytes() == whole.tobytes()  # the window covers the image: the whole image, same draws


@pytest.mark.parametrize(("window", "context"), [(0, 16), (8, -1)])
def test_self_augmentation_refuses_a_bad_window(dair, window, context):
    with pytest.raises(ValueError, match="window" if window < 1 else "context"):
        SelfAugmentation(dair, window=window, context=context)
