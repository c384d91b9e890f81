"""Who made each image: source groups, cross-source folds and generator families.

A record's `source` names where its image came from (e.g. "github:BIDS/BSDS500 images/..." or
"pypi:scikit-image 0.26.0 (skimage/data)"). Images of one repository share a camera, a collection, a prompt style or
a generator run, so a detector that has seen some of them recognises the rest without detecting anything: the
repository (the first token of `source`) is the unit that is never split. Cross-source folds put each such group,
real or fake, in exactly one fold; a generator published by a single repository therefore falls in one fold.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from aigi.data.records import DetectionRecord

GENERATOR_FAMILIES = ("gan", "pixel_diffusion", "latent_diffusion", "autoregressive_or_other")
# First match wins. Closed models whose architecture is not published (Gemini, Midjourney, Seedream) count as "other".
_FAMILY_PATTERNS = (
    ("gan", r"gan|stylegan|pix2pix|lafite"),
    ("pixel_diffusion", r"deepfloyd|(^|_)if($|_)|adm|glide|dalle_?2|imagen"),
    ("autoregressive_or_other", r"infinity|maskgen|titok|var_|llamagen|gpt|gemini|midjourney|seedream|dall_?e_?3|"
                                r"pseudo_fake|dair"),
    ("latent_diffusion", r"ldm|sd|stable|flux|pixart|hunyuan|kolors|kandinsky|lcm|dit|sit|cogview|instaflow|"
                         r"omnigen|edm2|controlnet|photomaker|instantid|cascade|playground|wuerstchen|vae|latent"),
)


def source_group(record: DetectionRecord) -> str:
    """The unit a cross-source split never cuts: the repository or package of the record's `source` (its first
    whitespace-separated token), or the record itself when it has no source."""
    source = record.source.strip()
    return source.split()[0] if source else f"id:{record.id}"


def source_balanced_weights(records: Sequence[DetectionRecord]) -> np.ndarray:
    """Per-record weights under which every source group of a class weighs the same (1 / its images), scaled so that
    each class keeps its total image count. A fit then learns from every source, not from the largest ones (500
    of the pool's real photos are BSDS500)."""
    labels = np.array([record.label for record in records])
    groups = [source_group(record) for record in records]
    counts = Counter(zip(labels.tolist(), groups))
    weights = np.array([1.0 / counts[label, group] for label, group in zip(labels.tolist(), groups)])
    for label in np.unique(labels):
        weights[labels == label] *= (labels == label).sum() / weights[labels == label].sum()
    return weights


def generator_family(generator: str) -> str:
    """One of GENERATOR_FAMILIES for a generator name (matching is on the lower-cased name)."""
    name = generator.lower().replace("-", "_").replace(".", "_")
    for family, pattern in _FAMILY_PATTERNS:
        if re.search(pattern, name):
            return family
    return "autoregressive_or_other"


def assign_source_folds(records: Sequence[DetectionRecord], num_folds: int, seed: int = 0) -> dict[str, int]:
    """Fold (0 .. num_folds-1) of each source group, balancing the real and the fake images over the folds.

    Groups go largest first to the fold whose squared shares of reals and of fakes then sum to the least (ties broken by a
    seed-derived hash), so the result depends only on the groups' names and sizes and `seed`.
    """
    if num_folds < 2:
        raise ValueError(f"cross-source evaluation needs at least 2 folds, got {num_folds}")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        counts[source_group(record)][record.label] += 1
    if len(counts) < num_folds:
        raise ValueError(f"{len(counts)} source groups cannot fill {num_folds} folds")
    totals = [max(1, sum(count[label] for count in counts.values())) for label in (0, 1)]

    def tie_break(name: str) -> str:
        return hashlib.sha1(f"{seed}/{name}".encode()).hexdigest()

    loads = [[0, 0] for _ in range(num_folds)]
    fold_of_group: dict[str, int] = {}
    for name in sorted(counts, key=lambda group: (-sum(counts[group]), tie_break(group))):
        real, fake = counts[name]

        def cost(fold: int) -> tuple[float, str]:
            load = loads[fold]
            # Squared shares: a fold already heavy in one class stops taking more of it.
            return (((load[0] + real) / totals[0]) ** 2 + ((load[1] + fake) / totals[1]) ** 2,
                    tie_break(f"{name}/{fold}"))

        fold = min(range(num_folds), key=cost)
        loads[fold][0] += real
        loads[fold][1] += fake
        fold_of_group[name] = fold
    return fold_of_group


def cross_source_folds(
    records: Sequence[DetectionRecord], num_folds: int, seed: int = 0
) -> list[tuple[list[DetectionRecord], list[DetectionRecord]]]:
    """(train, held_out) per fold: the held-out fold's source groups appear in no training set of that fold."""
    fold_of_group = assign_source_folds(records, num_folds, seed)
    folds = []
    for fold in range(num_folds):
        held_out = [record for record in records if fold_of_group[source_group(record)] == fold]
        train = [record for record in records if fold_of_group[source_group(record)] != fold]
        folds.append((train, held_out))
    return folds
