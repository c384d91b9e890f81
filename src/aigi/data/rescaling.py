"""Bilinear rescaling and patch sampling for RescaleCL contrastive pre-training.

With ``align_corners=False`` bilinear interpolation maps a destination pixel to
``x_src = (x_dst + 0.5) * src / dst - 0.5``. If ``src / dst`` reduces to ``a / b``,
shifting ``x_dst`` by ``b`` shifts ``x_src`` by the integer ``a``, so the
interpolation weights repeat with period ``b = dst / gcd(src, dst)``. Patches of
images rescaled by the same ratio, cropped at offsets congruent modulo that
period, share one interpolation pattern: they are the positives of RescaleCL.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import ceil, gcd

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_RESCALE_RATIOS",
    "RescalingContrastBatch",
    "bilinear_rescale",
    "interpolation_period",
    "minimum_source_size",
    "rescale_ratios",
    "sample_rescaling_contrast_batch",
]


def interpolation_period(src_size: int, dst_size: int) -> int:
    """Period, in destination pixels, of the bilinear weights for a src -> dst resize."""
    if src_size <= 0 or dst_size <= 0:
        raise ValueError(f"sizes must be positive, got src={src_size}, dst={dst_size}")
    return dst_size // gcd(src_size, dst_size)


def rescale_ratios(max_denominator: int = 8) -> list[Fraction]:
    """All reduced fractions p/q in the open interval (1, 2) with q <= max_denominator, sorted.

    A ratio is the magnification dst/src. For a source size divisible by q the
    interpolation period of ratio p/q is p.
    """
    if max_denominator < 2:
        raise ValueError(f"max_denominator must be >= 2, got {max_denominator}")
    ratios = {
        Fraction(numerator, denominator)
        for denominator in range(2, max_denominator + 1)
        for numerator in range(denominator + 1, 2 * denominator)
    }
    return sorted(ratios)


DEFAULT_RESCALE_RATIOS: tuple[Fraction, ...] = tuple(rescale_ratios())


def _rescaled_length(src_length: int, ratio: Fraction) -> int:
    """Destination length after cropping ``src_length`` to a multiple of the ratio's denominator."""
    return (src_length // ratio.denominator) * ratio.numerator


def _quantise_to_8_bit(images: Tensor) -> Tensor:
    """Round [0, 1] intensities to the 256 levels a saved 8-bit image can hold."""
    return (images * 255).round().clamp(0, 255) / 255


def _bilinear_resize_exact(images: Tensor, ratio: Fraction) -> Tensor:
    """Crop H and W to multiples of ``ratio.denominator``, then resize by exactly ``ratio``."""
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a float tensor in [0, 1], got {images.dtype}")
    ratio = Fraction(ratio)
    if ratio <= 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    src_height, src_width = images.shape[-2:]
    cropped_height = src_height - src_height % ratio.denominator
    cropped_width = src_width - src_width % ratio.denominator
    if cropped_height == 0 or cropped_width == 0:
        raise ValueError(
            f"images of size {src_height}x{src_width} are smaller than the ratio denominator "
            f"{ratio.denominator}"
        )
    return F.interpolate(
        images[..., :cropped_height, :cropped_width],
        size=(_rescaled_length(src_height, ratio), _rescaled_length(src_width, ratio)),
        mode="bilinear",
        align_corners=False,
        antialias=False,
    )


def bilinear_rescale(images: Tensor, ratio: Fraction) -> Tensor:
    """Bilinearly rescale ``[B, 3, H, W]`` images in [0, 1] by ``ratio`` and quantise to 8 bits.

    H and W are first cropped (bottom/right) to the largest multiple of
    ``ratio.denominator`` so the output size is exact and the interpolation
    period equals ``ratio.numerator``. No antialiasing; the 8-bit rounding mimics
    saving the rescaled image.
    """
    return _quantise_to_8_bit(_bilinear_resize_exact(images, ratio))


def minimum_source_size(ratio: Fraction, patch_size: int) -> int:
    """Smallest source side that fits ``patch_size`` patches at every phase of ``ratio``."""
    ratio = Fraction(ratio)
    period = ratio.numerator
    # The largest phase needs offset (period - 1) + period inside the bounds.
    needed_rescaled = patch_size + 3 * period - 1
    return ratio.denominator * ceil(needed_rescaled / period)


@dataclass(frozen=True)
class RescalingContrastBatch:
    """Patches for one RescaleCL step together with where each patch came from.

    Attributes:
        patches: ``[N, 3, P, P]`` patches cut from rescaled, 8-bit-quantised images.
        labels: ``[N]`` id of the (ratio group, phase) pair; equal labels are positives.
        image_indices: ``[N]`` index of the source image in the input list.
        offsets: ``[N, 2]`` top-left ``(y, x)`` of the patch in the rescaled image.
        ratios: magnification of each patch's image; the period is ``ratio.numerator``.
    """

    patches: Tensor
    labels: Tensor
    image_indices: Tensor
    offsets: Tensor
    ratios: tuple[Fraction, ...]


def _validate_batch_request(
    images: Sequence[Tensor],
    patch_size: int,
    ratios_per_batch: int,
    phases_per_ratio: int,
    ratios: Sequence[Fraction],
) -> None:
    if patch_size <= 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    if ratios_per_batch <= 0 or phases_per_ratio <= 0:
        raise ValueError(
            f"ratios_per_batch and phases_per_ratio must be positive, got "
            f"{ratios_per_batch} and {phases_per_ratio}"
        )
    if len(images) < 2 * ratios_per_batch:
        raise ValueError(
            f"{len(images)} images cannot form {ratios_per_batch} ratio groups of at least 2 "
            f"images each (need >= {2 * ratios_per_batch} images)"
        )
    if len(ratios) < ratios_per_batch:
        raise ValueError(
            f"ratios_per_batch={ratios_per_batch} exceeds the {len(ratios)} candidate ratios"
        )
    if any(ratio <= 0 for ratio in ratios):
        raise ValueError(f"ratios must be positive, got {list(ratios)}")
    smallest_period = min(ratio.numerator for ratio in ratios)
    if phases_per_ratio > smallest_period**2:
        raise ValueError(
            f"phases_per_ratio={phases_per_ratio} exceeds the {smallest_period**2} distinct phases "
            f"of the ratio with the shortest period ({smallest_period})"
        )
    needed_size = max(minimum_source_size(ratio, patch_size) for ratio in ratios)
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image {index} must be [3, H, W], got shape {tuple(image.shape)}")
        if min(image.shape[-2:]) < needed_size:
            raise ValueError(
                f"image {index} is {image.shape[-2]}x{image.shape[-1]} but patch_size={patch_size} "
                f"with these ratios needs images of at least {needed_size}x{needed_size}"
            )


def _sample_offsets(
    phases: Tensor,
    rescaled_lengths: Tensor,
    patch_size: int,
    period: int,
    generator: torch.Generator,
) -> Tensor:
    """Random patch offsets congruent to ``phases`` modulo ``period``, uniform over the valid range.

    Torch clamps ``x_src`` at the first and last destination pixels, which breaks
    periodicity there; offsets therefore stay within
    ``[period, rescaled_length - patch_size - period]``, i.e. ``phase + k * period``
    with ``k = 1 .. k_max``.
    """
    highest = rescaled_lengths - patch_size - period
    k_max = torch.div(highest - phases, period, rounding_mode="floor")
    uniform = torch.rand(phases.shape, generator=generator, dtype=torch.float64)
    k = 1 + (uniform * k_max).long().clamp(max=k_max - 1)
    return phases + k * period


def _resize_group(images: list[Tensor], ratio: Fraction) -> list[Tensor]:
    """Resize images (unquantised) with one interpolate call per distinct shape, in input order."""
    positions_by_shape: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):
        positions_by_shape.setdefault(tuple(image.shape), []).append(position)
    rescaled_by_position: dict[int, Tensor] = {}
    for positions in positions_by_shape.values():
        stacked = torch.stack([images[position] for position in positions])
        rescaled_by_position.update(zip(positions, _bilinear_resize_exact(stacked, ratio)))
    return [rescaled_by_position[position] for position in range(len(images))]


def sample_rescaling_contrast_batch(
    images: Sequence[Tensor],
    *,
    patch_size: int = 128,
    ratios_per_batch: int,
    phases_per_ratio: int,
    generator: torch.Generator,
    ratios: Sequence[Fraction] = DEFAULT_RESCALE_RATIOS,
) -> RescalingContrastBatch:
    """Build one RescaleCL batch and keep the provenance of every patch.

    The images (``[3, H, W]`` floats in [0, 1], sizes may differ) are split in
    input order into ``ratios_per_batch`` near-equal contiguous groups; each
    group is rescaled by its own randomly drawn ratio. Each group draws
    ``phases_per_ratio`` distinct phases ``(phase_y, phase_x)`` in ``[0, period)^2``
    and every image in the group gives one patch per phase at a random offset
    congruent to that phase. Patches are ordered group, image, phase.
    """
    ratios = [Fraction(ratio) for ratio in ratios]
    _validate_batch_request(images, patch_size, ratios_per_batch, phases_per_ratio, ratios)
    ratio_choice = torch.randperm(len(ratios), generator=generator)[:ratios_per_batch]
    group_ratios = [ratios[int(index)] for index in ratio_choice]
    image_groups = torch.arange(len(images)).tensor_split(ratios_per_batch)

    patches: list[Tensor] = []
    labels: list[Tensor] = []
    image_indices: list[Tensor] = []
    offsets: list[Tensor] = []
    patch_ratios: list[Fraction] = []
    for group, (ratio, members) in enumerate(zip(group_ratios, image_groups)):
        period = ratio.numerator
        phase_codes = torch.randperm(period * period, generator=generator)[:phases_per_ratio]
        phases = torch.stack([phase_codes // period, phase_codes % period], dim=1)  # [K, 2]
        group_labels = group * phases_per_ratio + torch.arange(phases_per_ratio)

        resized = _resize_group([images[int(index)] for index in members], ratio)
        rescaled_sizes = torch.tensor([tuple(image.shape[-2:]) for image in resized])  # [G, 2]
        group_offsets = _sample_offsets(
            phases.expand(len(members), -1, -1),
            rescaled_sizes[:, None, :],
            patch_size,
            period,
            generator,
        )  # [G, K, 2]
        for member_position, image_index in enumerate(members.tolist()):
            for top, left in group_offsets[member_position].tolist():
                patches.append(
                    resized[member_position][:, top : top + patch_size, left : left + patch_size]
                )
            labels.append(group_labels)
            image_indices.append(torch.full((phases_per_ratio,), image_index))
            offsets.append(group_offsets[member_position])
            patch_ratios.extend([ratio] * phases_per_ratio)

    # Quantising after cropping equals quantising whole images (it is per pixel) and costs less.
    return RescalingContrastBatch(
        patches=_quantise_to_8_bit(torch.stack(patches)),
        labels=torch.cat(labels),
        image_indices=torch.cat(image_indices),
        offsets=torch.cat(offsets),
        ratios=tuple(patch_ratios),
    )

