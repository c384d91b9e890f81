"""GenSign's first two training stages; the third, the detector, is the `classify` task with `--family gensign`.

* `dair`: DAIR learns to reconstruct the real photos of the data (fakes are dropped) under a freshly sampled decoder
  architecture every optimizer step, with `ReconstructionLoss` (MSE + 0.25 perceptual).
* `gensign-extractor`: the signature extractor learns to regress the residual `2 * (image - DAIR(image))` (detector
  input units, [-1, 1]) that a frozen DAIR leaves on real photos, under a random architecture every step.

The architecture of step N is drawn from a seed made of (seed, N), so a resumed run samples the same ones. All
micro-batches of one optimizer step (gradient accumulation, processes) share it, as a batch does in the reference.
"""

from dataclasses import asdict

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn import functional

from ..dair import DAIR, DAIRConfig, ReconstructionLoss
from ..modeling.gensign import GenSignSignatureExtractor
from .args import TrainingArguments
from .samples import RealPhotoCrops, real_photos, sample_seed


class SignatureExtractorCheckpoint(
    GenSignSignatureExtractor, PyTorchModelHubMixin, library_name="aigi", tags=["gensign", "signature-extractor"]
):
    """The `gensign-extractor` stage's output: a `GenSignSignatureExtractor` whose `save_pretrained` writes
    `model.safetensors` and a `config.json` with its width and depth; `classify --family gensign --extractor DIR`
    copies its weights into the detector's frozen extractor."""

    def __init__(self, width: int = 64, num_blocks: int = 8):
        super().__init__(width, num_blocks)
        self.width, self.num_blocks = width, num_blocks


def dair_residual_target(dair: DAIR, images: torch.Tensor, seed: int) -> torch.Tensor:
    """What the extractor regresses: `2 * (images - dair(images))` for [0, 1] images, the residual in [-1, 1] units
    (unclamped, as in the reference)."""
    with torch.no_grad():
        return 2 * (images - dair(images, rng=seed))


class DAIRTask:
    """Stage I: DAIR reconstructs real photos; saves `final/` (safetensors + config.json with `perceptual_kind`)."""

    # The CCDC base kernels are 5-d tensors, which have no channels-last layout.
    memory_format = torch.contiguous_format
    # Each sampled architecture runs only some of the decoder's stages, norms and sub-blocks.
    find_unused_parameters = True
    collate = None

    def __init__(self, args: TrainingArguments):
        self.args = args
        self.reconstruction_loss = ReconstructionLoss()

    def build_model(self) -> nn.Module:
        return DAIR(DAIRConfig(channels=tuple(self.args.dair_channels)))

    def build_dataset(self) -> torch.utils.data.Dataset:
        return RealPhotoCrops(real_photos(self.args.train_data), crop_size=self.args.patch_size, seed=self.args.seed)

    def compute_loss(self, model: nn.Module, images: torch.Tensor, step: int, process_index: int):
        reconstruction = model(images, rng=sample_seed(self.args.seed, step))
        return self.reconstruction_loss.to(images.device)(reconstruction, images)

    def trainable_parameters(self, model: nn.Module):
        return model.parameters()

    def save_final(self, model: DAIR, directory: str) -> None:
        model.save_pretrained(
            directory, config={**asdict(model.config), "perceptual_kind": self.reconstruction_loss.perceptual_kind}
        )


class SignatureExtractorTask:
    """Stage II: the extractor regresses the residual of the frozen `--dair`; saves `final/` (safetensors).

    Logs `zero_prediction_mse`, the mean squared target (the loss of predicting no residual), next to the loss.
    """

    memory_format = torch.contiguous_format  # about 15% faster than channels-last for its GroupNorm blocks on CPU
    find_unused_parameters = False
    collate = None

    def __init__(self, args: TrainingArguments):
        self.args = args
        self.dair = DAIR.from_pretrained(args.dair).eval().requires_grad_(False)

    def build_model(self) -> nn.Module:
        return SignatureExtractorCheckpoint(self.args.signature_extractor_width, self.args.signature_extractor_blocks)

    def build_dataset(self) -> torch.utils.data.Dataset:
        return RealPhotoCrops(real_photos(self.args.train_data), crop_size=self.args.patch_size, seed=self.args.seed)

    def compute_loss(self, model: nn.Module, images: torch.Tensor, step: int, process_index: int):
        target = dair_residual_target(self.dair.to(images.device), images, sample_seed(self.args.seed, step))
        prediction = model(images * 2 - 1)
        return {"loss": functional.mse_loss(prediction, target), "zero_prediction_mse": target.pow(2).mean()}

    def trainable_parameters(self, model: nn.Module):
        return model.parameters()

    def save_final(self, model: SignatureExtractorCheckpoint, directory: str) -> None:
        model.save_pretrained(directory)
