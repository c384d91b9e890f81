"""DAIR, the Dynamic-Architecture Image Reconstructor of GenSign (CVPR 2026): training-time only.

DAIR is an autoencoder whose decoder is re-wired on every forward pass. It starts from a random encoder level and
goes up through stages whose upsampler, normalisations, activations and their order are drawn at random, and whose
convolutions (CCDC) mix K base kernels per filter according to the input. Trained to reconstruct real photos
(`ReconstructionLoss`), it then leaves a different "generator trace" on every image it reconstructs. The traces serve
three purposes:

* Stage II target: a signature extractor learns to regress `images - dair(images)` on real photos (GenSign's
  extractor works in [-1, 1] units, so its target is `2 * (images - dair(images))`);
* Stage III self-augmentation: `SelfAugmentation` replaces a fraction of any detector's training images by their
  reconstruction, labelled fake, so that the detector has to rely on traces rather than content;
* an architecture sample (`DAIRArchitecture`) is a plain, JSON-serialisable value, so any reconstruction can be
  reproduced: `dair(images, architecture=DAIRArchitecture.sample(seed))`.

Images are float tensors in [0, 1], `[batch, 3, height, width]`. Sides that are not multiples of `2 ** levels` are
replicate-padded at the bottom and right before encoding, and the padding is cropped from the reconstruction, so
every size works and the output always has the input's size.
"""

import logging
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn
from torch.nn import functional

logger = logging.getLogger(__name__)

UPSAMPLERS = ("bilinear", "nearest", "bicubic", "pixel_shuffle")
NORMS = ("batch", "instance", "group")
ACTIVATIONS = ("gelu", "silu", "leaky_relu")
SUB_BLOCK_OPERATIONS = ("conv", "norm", "activation")
ACTIVATION_FUNCTIONS = {
    "gelu": functional.gelu,
    "silu": functional.silu,
    "leaky_relu": lambda hidden: functional.leaky_relu(hidden, 0.2),
}
FAKE_LABEL = 1


def as_rng(rng: random.Random | int | None) -> random.Random:
    """A `random.Random` from a generator, a seed, or (None) a seed drawn from the module-level `random`."""
    if rng is None:
        return random.Random(random.getrandbits(64))
    if isinstance(rng, random.Random):
        return rng
    return random.Random(rng)


@dataclass(frozen=True)
class SubBlockChoice:
    """One decoder sub-block: a CCDC convolution, a norm and an activation, applied in `order`."""

    norm: str
    activation: str
    order: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "order", tuple(self.order))
        if self.norm not in NORMS or self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown norm or activation in {self}")
        if sorted(self.order) != sorted(SUB_BLOCK_OPERATIONS):
            raise ValueError(f"order must be a permutation of {SUB_BLOCK_OPERATIONS}, got {self.order}")


@dataclass(frozen=True)
class StageChoice:
    """One x2 upsampling stage: its upsampler and the sub-blocks that follow it."""

    upsampler: str
    sub_blocks: tuple[SubBlockChoice, ...]

    def __post_init__(self):
        blocks = tuple(
            block if isinstance(block, SubBlockChoice) else SubBlockChoice(**block) for block in self.sub_blocks
        )
        object.__setattr__(self, "sub_blocks", blocks)
        if self.upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {self.upsampler!r}")
        if not blocks:
            raise ValueError("a stage needs at least one sub-block")


@dataclass(frozen=True)
class DAIRArchitecture:
    """A decoder wiring: the encoder level decoding starts from (its features are at 1 / 2**start_level of the
    input size) and one `StageChoice` per x2 stage back to full resolution, coarsest first.

    `to_dict()` gives JSON-ready values and `DAIRArchitecture(**data)` (or `from_dict`) rebuilds the sample.
    """

    start_level: int
    stages: tuple[StageChoice, ...]

    def __post_init__(self):
        stages = tuple(stage if isinstance(stage, StageChoice) else StageChoice(**stage) for stage in self.stages)
        object.__setattr__(self, "stages", stages)
        if self.start_level < 1 or len(stages) != self.start_level:
            raise ValueError(f"start level {self.start_level} needs {self.start_level} stages, got {len(stages)}")

    @classmethod
    def sample(
        cls, rng: random.Random | int | None = None, levels: int = 3, max_sub_blocks: int = 2
    ) -> "DAIRArchitecture":
        """Draw every choice uniformly: start level in 1..levels, then per stage an upsampler, 1..max_sub_blocks
        sub-blocks, and per sub-block a norm, an activation and an order of its three operations."""
        rng = as_rng(rng)
        start_level = rng.randint(1, levels)
        stages = tuple(
            StageChoice(
                upsampler=rng.choice(UPSAMPLERS),
                sub_blocks=tuple(
                    SubBlockChoice(
                        norm=rng.choice(NORMS),
                        activation=rng.choice(ACTIVATIONS),
                        order=tuple(rng.sample(SUB_BLOCK_OPERATIONS, len(SUB_BLOCK_OPERATIONS))),
                    )
                    for _ in range(rng.randint(1, max_sub_blocks))
                ),
            )
            for _ in range(start_level)
        )
        return cls(start_level=start_level, stages=stages)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DAIRArchitecture":
        return cls(**data)


@dataclass
class DAIRConfig:
    """`channels[0]` is the full-resolution width, `channels[i]` the width of encoder level i (at 1 / 2**i of the
    input size); there are `len(channels) - 1` levels. The default (3 levels, 2.44 M parameters) is small enough to
    train on a CPU. `channels=(64, 64, 128, 256)` has the reference code's encoder widths (4.91 M parameters here;
    the reference has 11.5 M, mostly because its CCDC routers are strided convolutions rather than an MLP)."""

    channels: tuple[int, ...] = (32, 64, 96, 128)
    max_sub_blocks: int = 2
    num_kernels: int = 4

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError(f"channels needs a full-resolution width and at least one level, got {self.channels}")
        if self.max_sub_blocks < 1 or self.num_kernels < 1:
            raise ValueError("max_sub_blocks and num_kernels must be >= 1")

    @property
    def levels(self) -> int:
        return len(self.channels) - 1


class ContextConditionedDynamicConv(nn.Module):
    """CCDC: a convolution whose kernel is built per input from `num_kernels` base kernels.

    A router (global average pooling + MLP) gives, for every output filter c, weights A[k, c] over the K base
    kernels; the sample's kernel is `W[c] = sum_k A[k, c] * W_k[c]` (biases likewise). A is a softmax over K, so each
    filter is a convex combination of its base filters (the paper leaves the normalisation open; the reference uses
    raw linear outputs, which lets the kernel scale drift with the input).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, num_kernels: int = 4):
        super().__init__()
        self.num_kernels, self.out_channels = num_kernels, out_channels
        self.base_kernels = nn.Parameter(torch.empty(num_kernels, out_channels, in_channels, kernel_size, kernel_size))
        for kernel in self.base_kernels:
            nn.init.kaiming_uniform_(kernel, a=math.sqrt(5))  # nn.Conv2d's initialisation, per base kernel
        self.base_biases = nn.Parameter(torch.zeros(num_kernels, out_channels))
        self.router = nn.Sequential(
            nn.Linear(in_channels, in_channels), nn.SiLU(), nn.Linear(in_channels, num_kernels * out_channels)
        )

    def routing_weights(self, hidden: torch.Tensor) -> torch.Tensor:
        """`[batch, num_kernels, out_channels]`, summing to 1 over the kernels."""
        logits = self.router(hidden.mean(dim=(2, 3)))
        return logits.view(-1, self.num_kernels, self.out_channels).softmax(dim=1)

    def dynamic_kernels(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample kernels `[batch, out, in, k, k]` and biases `[batch, out]`."""
        weights = self.routing_weights(hidden)
        kernels = (weights[..., None, None, None] * self.base_kernels).sum(dim=1)
        return kernels, (weights * self.base_biases).sum(dim=1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = hidden.shape
        kernels, biases = self.dynamic_kernels(hidden)
        # One grouped convolution applies each sample's own kernel to that sample.
        output = functional.conv2d(
            hidden.reshape(1, batch * channels, height, width),
            kernels.reshape(batch * self.out_channels, *kernels.shape[2:]),
            biases.reshape(-1),
            padding=kernels.shape[-1] // 2,
            groups=batch,
        )
        return output.view(batch, self.out_channels, height, width)


class EncoderResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return functional.silu(hidden + self.body(hidden))


class DAIREncoder(nn.Module):
    """Hierarchical CNN: a full-resolution stem, then per level a stride-2 convolution and a residual block."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, padding=1), nn.SiLU())
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels[level - 1], channels[level], 3, stride=2, padding=1),
                          EncoderResidualBlock(channels[level]))
            for level in range(1, len(channels))
        )

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Features of levels 1..L (index 0 is level 1)."""
        hidden, features = self.stem(images), []
        for level in self.levels:
            hidden = level(hidden)
            features.append(hidden)
        return features


class DecoderSubBlock(nn.Module):
    def __init__(self, channels: int, num_kernels: int):
        super().__init__()
        self.conv = ContextConditionedDynamicConv(channels, channels, num_kernels=num_kernels)
        self.norms = nn.ModuleDict({
            "batch": nn.BatchNorm2d(channels),
            "instance": nn.InstanceNorm2d(channels),
            "group": nn.GroupNorm(math.gcd(32, channels), channels),
        })

    def forward(self, hidden: torch.Tensor, choice: SubBlockChoice) -> torch.Tensor:
        for operation in choice.order:
            if operation == "conv":
                hidden = self.conv(hidden)
            elif operation == "norm":
                hidden = self.norms[choice.norm](hidden)
            else:
                hidden = ACTIVATION_FUNCTIONS[choice.activation](hidden)
        return hidden


class DecoderStage(nn.Module):
    """1x1 projection, x2 upsampling, then a residual chain of sub-blocks."""

    def __init__(self, in_channels: int, out_channels: int, max_sub_blocks: int, num_kernels: int):
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, 1)
        self.pixel_shuffle = nn.Sequential(nn.Conv2d(out_channels, 4 * out_channels, 3, padding=1), nn.PixelShuffle(2))
        self.sub_blocks = nn.ModuleList(DecoderSubBlock(out_channels, num_kernels) for _ in range(max_sub_blocks))

    def forward(self, hidden: torch.Tensor, choice: StageChoice) -> torch.Tensor:
        hidden = self.project(hidden)
        if choice.upsampler == "pixel_shuffle":
            hidden = self.pixel_shuffle(hidden)
        else:
            align_corners = None if choice.upsampler == "nearest" else False
            hidden = functional.interpolate(hidden, scale_factor=2, mode=choice.upsampler, align_corners=align_corners)
        residual = hidden
        for block, block_choice in zip(self.sub_blocks, choice.sub_blocks):
            hidden = block(hidden, block_choice)
        return hidden + residual


class DAIR(nn.Module, PyTorchModelHubMixin, library_name="aigi", tags=["dair", "gensign"]):
    """Dynamic-Architecture Image Reconstructor. `save_pretrained` / `from_pretrained` come from the Hub mixin.

    `dair(images)` reconstructs with a freshly sampled architecture (from `rng`, or the module-level `random`);
    `dair(images, architecture=sample)` replays a given one. The whole batch shares one architecture. The output is
    not clamped (training needs the gradients); clamp it to [0, 1] to make an image.
    """

    def __init__(self, config: DAIRConfig | None = None):
        super().__init__()
        self.config = config or DAIRConfig()
        channels = self.config.channels
        self.encoder = DAIREncoder(channels)
        # stages[level - 1] goes from encoder level `level` to level `level - 1`.
        self.stages = nn.ModuleList(
            DecoderStage(channels[level], channels[level - 1], self.config.max_sub_blocks, self.config.num_kernels)
            for level in range(1, len(channels))
        )
        self.to_image = nn.Conv2d(channels[0], 3, 3, padding=1)

    def sample_architecture(self, rng: random.Random | int | None = None) -> DAIRArchitecture:
        return DAIRArchitecture.sample(rng, levels=self.config.levels, max_sub_blocks=self.config.max_sub_blocks)

    def forward(
        self,
        images: torch.Tensor,
        architecture: DAIRArchitecture | None = None,
        rng: random.Random | int | None = None,
    ) -> torch.Tensor:
        if architecture is None:
            architecture = self.sample_architecture(rng)
        if architecture.start_level > self.config.levels:
            raise ValueError(
                f"architecture starts at level {architecture.start_level}; this DAIR has {self.config.levels}"
            )
        if max(len(stage.sub_blocks) for stage in architecture.stages) > self.config.max_sub_blocks:
            raise ValueError(f"architecture has more sub-blocks per stage than allowed ({self.config.max_sub_blocks})")
        height, width = images.shape[-2:]
        multiple = 2**self.config.levels
        padding = (0, -width % multiple, 0, -height % multiple)
        padded = functional.pad(images, padding, mode="replicate") if any(padding) else images
        hidden = self.encoder(padded * 2 - 1)[architecture.start_level - 1]
        for level, stage_choice in zip(range(architecture.start_level, 0, -1), architecture.stages):
            hidden = self.stages[level - 1](hidden, stage_choice)
        return (self.to_image(hidden)[..., :height, :width] + 1) / 2


def lpips_vgg_weights_path() -> Path:
    """Where torchvision caches the VGG16 ImageNet weights that LPIPS-VGG loads (downloading them if absent)."""
    from torchvision.models import VGG16_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG16_Weights.IMAGENET1K_V1.url).name


def structural_similarity(first: torch.Tensor, second: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean SSIM over a uniform `window` (for images in [0, 1])."""
    def local_mean(values: torch.Tensor) -> torch.Tensor:
        return functional.avg_pool2d(values, window, stride=1, padding=window // 2, count_include_pad=False)

    c1, c2 = 0.01**2, 0.03**2
    mean_first, mean_second = local_mean(first), local_mean(second)
    variance_first = local_mean(first * first) - mean_first**2
    variance_second = local_mean(second * second) - mean_second**2
    covariance = local_mean(first * second) - mean_first * mean_second
    similarity = ((2 * mean_first * mean_second + c1) * (2 * covariance + c2)) / (
        (mean_first**2 + mean_second**2 + c1) * (variance_first + variance_second + c2)
    )
    return similarity.mean()


def gradient_distance(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical finite differences."""
    horizontal = (first.diff(dim=-1) - second.diff(dim=-1)).abs().mean()
    vertical = (first.diff(dim=-2) - second.diff(dim=-2)).abs().mean()
    return horizontal + vertical


def multiscale_structure_distance(first: torch.Tensor, second: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Parameter-free stand-in for LPIPS: at scales 1, 1/2, 1/4, `(1 - SSIM) / 2` plus the gradient distance.

    Like LPIPS it punishes blur and lost texture far more than MSE does, but it has no learned features.
    """
    total = first.new_zeros(())
    for scale in range(scales):
        if scale:
            first = functional.avg_pool2d(first, 2, ceil_mode=True)
            second = functional.avg_pool2d(second, 2, ceil_mode=True)
        total = total + (1 - structural_similarity(first, second)) / 2 + gradient_distance(first, second)
    return total / scales


class ReconstructionLoss(nn.Module):
    """DAIR's training loss on [0, 1] images: `mse_weight * MSE + perceptual_weight * perceptual` (paper: 1.0, 0.25).

    `perceptual`:
    * `"lpips"`: LPIPS with VGG16 (the paper's). The `lpips` package ships its linear layers but builds the VGG16
      trunk with torchvision's ImageNet weights, which it downloads on first use; without them it raises.
    * `"fallback"`: `multiscale_structure_distance`, fixed and parameter-free.
    * `"auto"` (default): LPIPS when the VGG16 weights are already in torch's hub cache (`lpips_vgg_weights_path()`),
      the fallback otherwise. It never touches the network.

    `perceptual_kind` ("lpips-vgg" or "multiscale-ssim-gradient") says which term was used, for model cards.
    """

    def __init__(self, mse_weight: float = 1.0, perceptual_weight: float = 0.25, perceptual: str = "auto"):
        super().__init__()
        if perceptual not in ("auto", "lpips", "fallback"):
            raise ValueError(f"perceptual must be 'auto', 'lpips' or 'fallback', got {perceptual!r}")
        self.mse_weight, self.perceptual_weight = mse_weight, perceptual_weight
        self.lpips = None
        if perceptual == "lpips" or (perceptual == "auto" and lpips_vgg_weights_path().is_file()):
            self.lpips = self.build_lpips()
        elif perceptual == "auto":
            logger.warning(
                "LPIPS-VGG unavailable (no %s); using the multi-scale SSIM + gradient perceptual term instead",
                lpips_vgg_weights_path(),
            )
        self.perceptual_kind = "lpips-vgg" if self.lpips is not None else "multiscale-ssim-gradient"

    @staticmethod
    def build_lpips() -> nn.Module:
        import lpips

        try:
            return lpips.LPIPS(net="vgg", verbose=False).requires_grad_(False).eval()
        except OSError as error:  # urllib's URLError when the weights cannot be downloaded
            raise RuntimeError(
                f"LPIPS-VGG needs torchvision's VGG16 ImageNet weights at {lpips_vgg_weights_path()} and could not "
                f"download them ({error}); use perceptual='fallback' or 'auto' offline"
            ) from error

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"loss", "mse", "perceptual"}` for batches of [0, 1] images."""
        mse = functional.mse_loss(reconstruction, target)
        if self.lpips is not None:
            perceptual = self.lpips(reconstruction, target, normalize=True).mean()
        else:
            perceptual = multiscale_structure_distance(reconstruction, target)
        loss = self.mse_weight * mse + self.perceptual_weight * perceptual
        return {"loss": loss, "mse": mse, "perceptual": perceptual}


class SelfAugmentation:
    """GenSign's self-augmentation for any detector's training set: `(image, label, rng) -> (image, label)`.

    With probability `p_aug` the image is replaced by its reconstruction by the frozen `dair` under a freshly
    sampled architecture and labelled fake (1), whatever its label was: a real photo that went through a "generator"
    keeps its content but gains generation traces. Otherwise the pair is returned unchanged.

    With `window`, a replaced image is cut to a random `window` x `window` region first (a side shorter than that is
    kept whole) and only that region is reconstructed, with up to `context` pixels of its surroundings on each side
    that are cropped off again (the reconstruction's own borders differ from its interior). The cost grows with the
    pixels reconstructed, so a training pipeline whose crop only ever draws on such a region
    (`aigi.train.samples.pseudo_fake_window`) gets its pseudo-fakes at a fraction of the cost of reconstructing the
    whole image. They differ from those only through the reconstruction's dependence on distant pixels (the CCDC
    routers and the instance and group norms see the whole input), and the training crop of a uniformly placed
    window lands at the image's borders a little less often.

    Takes a PIL image (returned as an 8-bit RGB PIL image, like any generated file) or a `[3, H, W]` float tensor
    in [0, 1] (returned as a float tensor, clamped to [0, 1]). `rng` is a `random.Random`, a seed, or None: it draws
    whether to replace, then the architecture, then the window's position.
    """

    def __init__(self, dair: DAIR, p_aug: float = 0.2, window: int | None = None, context: int = 16):
        if not 0.0 <= p_aug <= 1.0:
            raise ValueError(f"p_aug must be in [0, 1], got {p_aug}")
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        if context < 0:
            raise ValueError(f"context must be >= 0, got {context}")
        self.dair = dair.eval().requires_grad_(False)
        self.p_aug, self.window, self.context = p_aug, window, context

    def __call__(
        self, image: Image.Image | torch.Tensor, label: int, rng: random.Random | int | None = None
    ) -> tuple[Image.Image | torch.Tensor, int]:
        rng = as_rng(rng)
        if rng.random() >= self.p_aug:
            return image, label
        architecture = self.dair.sample_architecture(rng)
        height, width = (image.height, image.width) if isinstance(image, Image.Image) else image.shape[-2:]
        (rows, kept_rows), (columns, kept_columns) = self._spans(height, rng), self._spans(width, rng)
        if isinstance(image, Image.Image):
            region = image.convert("RGB").crop((columns.start, rows.start, columns.stop, rows.stop))
            pixels = torch.from_numpy(np.asarray(region, dtype=np.float32) / 255).permute(2, 0, 1)
        else:
            pixels = image[:, rows, columns]
        parameter = next(self.dair.parameters())
        batch = pixels[None].to(device=parameter.device, dtype=parameter.dtype)
        with torch.no_grad():
            reconstruction = self.dair(batch, architecture=architecture)[0].clamp(0, 1)
        reconstruction = reconstruction[:, kept_rows, kept_columns]
        if isinstance(image, Image.Image):
            pixels = np.round(reconstruction.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
            return Image.fromarray(pixels), FAKE_LABEL
        return reconstruction.to(device=image.device, dtype=image.dtype), FAKE_LABEL

    def _spans(self, length: int, rng: random.Random) -> tuple[slice, slice]:
        """Along one side: the span to reconstruct, and the window to keep within it."""
        if self.window is None or self.window >= length:
            return slice(0, length), slice(0, length)
        window_start = rng.randint(0, length - self.window)
        start = max(0, window_start - self.context)
        end = min(length, window_start + self.window + self.context)
        return slice(start, end), slice(window_start - start, window_start - start + self.window)
