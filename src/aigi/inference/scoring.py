"""The one scoring loop: `aigi detect`, `aigi evaluate`, `aigi bench-speed`, the demo and the benchmark all score
images through `score_stream` (directly, or through `score_sources` / `score_across_processes` built on it)."""

from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

from .batching import default_num_workers
from .distributed import process_device, score_in_shards


def load_pipeline(model: str, *, on_launch_device: bool = True):
    """The `ai-image-detection` pipeline of `model` (bundled name, directory or Hub id); on this process's device of
    an `accelerate launch` (`process_device`) unless `on_launch_device` is False (transformers' default device)."""
    from transformers import pipeline

    from ..registry import resolve_model

    device = process_device() if on_launch_device else None
    return pipeline("ai-image-detection", model=resolve_model(model), device_map=device)


def score_stream(
    pipe, sources: Iterable, *, batch_size: int, protocol: str = "raw", threshold: float | None = None,
    num_workers: int | None = None, total: int | None = None, description: str = "scoring", progress: bool = True,
    num_crops: int | None = None, crop_aggregation: str | None = None, return_crops: bool = False,
) -> Iterator:
    """Run the `ai-image-detection` pipeline over `sources` lazily: one output per source, in order, as soon as its
    batch is scored (`sources` is read only a few batches ahead), with a progress bar unless `progress` is False.
    `num_workers` threads decode and preprocess (default `default_num_workers()`; 0: in this thread); the outputs
    do not depend on it. `num_crops` / `crop_aggregation` (default: the image processor's) and `return_crops` are
    the pipeline's. An unreadable source gives `{"error": ...}` in its place."""
    crop_options = {"num_crops": num_crops, "crop_aggregation": crop_aggregation, "return_crops": return_crops or None}
    outputs = pipe(
        (source for source in sources), batch_size=batch_size, protocol=protocol, threshold=threshold,
        on_error="report", num_workers=default_num_workers() if num_workers is None else num_workers,
        **{name: value for name, value in crop_options.items() if value is not None},
    )
    yield from tqdm(outputs, total=total, desc=description, unit="img", disable=not progress)


def score_sources(pipe, sources: list, *, batch_size: int, **options) -> list:
    """`score_stream` over a list, in this process, as a list: one output per source, in order."""
    return list(score_stream(pipe, sources, batch_size=batch_size, total=len(sources), **options))


def score_across_processes(pipe, sources: list, *, batch_size: int, **options) -> list:
    """`score_sources` shared among the processes of the current `accelerate launch` (each scores whole batches of
    its block); every process returns all the outputs in the order of `sources`. A plain run is one process."""
    return score_in_shards(
        lambda shard: score_sources(pipe, shard, batch_size=batch_size, **options), sources, batch_size=batch_size,
    )
