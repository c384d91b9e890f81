"""`aigi bench-speed`: images/s and latency of detectors on this machine, model alone and end to end.

For each detector, on JPEG files of `input_side` x `input_side` pixels (default: its input size,
`config.image_size`; larger files are decoded whole and centre-cropped, as a user's photo would be):

- forward: the model as the pipeline runs it (`pipe.scoring_logits`: batch norms folded, chunked on a CPU) on an
  already preprocessed batch, under the pipeline's inference context, as many batches as the end-to-end run has;
  latency is the time of one batch call.
- end_to_end: `score_stream`, the scoring loop of `aigi detect` and `aigi evaluate`, over a generated folder of
  JPEG files (decode, preprocess, forward, postprocess, with `num_workers` preprocessing threads); latency is the
  time between two consecutive batch completions.

The first `warmup` batches of each measurement are run but not counted. `peak_rss_mib` is the process's peak
resident memory so far (so a model's figure also covers the models measured before it). Nothing here asserts a speed: numbers
depend on the machine and on its load, which is why the settings and the environment are recorded with them.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .batching import chunked, default_num_workers
from .scoring import load_pipeline, score_stream

DEFAULT_BATCH_SIZES = (1, 32)
JPEG_QUALITY = 90


def write_benchmark_images(folder: Path, count: int, side: int) -> list[str]:
    """`count` deterministic photo-like JPEGs of `side` x `side` pixels (smooth content plus mild noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        rng = np.random.default_rng(index)
        coarse = Image.fromarray(rng.integers(0, 256, (max(side // 16, 2),) * 2 + (3,), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
        pixels = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{index:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=JPEG_QUALITY)
        paths.append(str(path))
    return paths


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if platform.system() == "Darwin" else 1024)


def summarize(batch_seconds: list[float], batch_size: int) -> dict[str, float]:
    """images/s over the timed batches, and the p50 / p95 of their latencies in milliseconds."""
    milliseconds = np.asarray(batch_seconds) * 1000.0
    return {
        "images_per_s": batch_size * len(batch_seconds) / float(np.sum(batch_seconds)),
        "latency_ms_p50": float(np.percentile(milliseconds, 50)),
        "latency_ms_p95": float(np.percentile(milliseconds, 95)),
        "timed_batches": len(batch_seconds),
    }


def time_forward(pipe, pixel_values: torch.Tensor, batches: int, warmup: int) -> dict[str, float]:
    """`warmup` + `batches` calls of the model on `pixel_values` (one batch)."""
    seconds = []
    with pipe.get_inference_context()():
        for index in range(warmup + batches):
            start = time.perf_counter()
            pipe.scoring_logits(pixel_values).softmax(-1)
            if index >= warmup:
                seconds.append(time.perf_counter() - start)
    return summarize(seconds, len(pixel_values))


def time_end_to_end(pipe, paths: list[str], batch_size: int, warmup: int, num_workers: int) -> dict[str, float]:
    """Stream the files of `paths` (whole batches only) through the pipeline, timing each batch's completion."""
    usable = paths[: len(paths) // batch_size * batch_size]
    completions = [time.perf_counter()]
    outputs = score_stream(pipe, usable, batch_size=batch_size, num_workers=num_workers, progress=False)
    for batch in chunked(outputs, batch_size):
        errors = [output["error"] for output in batch if isinstance(output, dict)]
        if errors:
            raise RuntimeError(f"a benchmark image could not be scored: {errors[0]}")
        completions.append(time.perf_counter())
    return summarize(list(np.diff(completions)[warmup:]), batch_size)


def benchmark_model(
    model: str, *, images: int, batch_sizes: tuple[int, ...], warmup: int, num_workers: int, work_dir: Path,
    input_side: int | None = None,
) -> dict[str, Any]:
    """Forward and end-to-end speed of one detector (see the module docstring)."""
    from ..registry import resolve_model

    model_path = resolve_model(model)
    pipe = load_pipeline(model_path, on_launch_device=False)
    side = int(pipe.model.config.image_size)
    file_side = input_side or side
    paths = write_benchmark_images(work_dir / f"{file_side}px", images, file_side)
    # Forward input: the first images, preprocessed once (content does not change the speed of the model).
    pixel_values = torch.cat([pipe.preprocess(path)["pixel_values"] for path in paths[: max(batch_sizes)]])
    result: dict[str, Any] = {
        "model": model, "model_path": str(model_path), "model_type": pipe.model.config.model_type,
        "parameters": sum(parameter.numel() for parameter in pipe.model.parameters()), "image_size": side,
        "input_side": file_side,
        "forward": {}, "end_to_end": {},
    }
    for batch_size in batch_sizes:
        batches = images // batch_size - warmup
        result["forward"][str(batch_size)] = time_forward(pipe, pixel_values[:batch_size], batches, warmup)
        result["end_to_end"][str(batch_size)] = time_end_to_end(pipe, paths, batch_size, warmup, num_workers)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def bench_speed(
    models: list[str], *, images: int = 256, batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES, warmup: int = 2,
    num_workers: int | None = None, input_side: int | None = None,
) -> dict[str, Any]:
    """Speed of each detector of `models` with the settings and the environment they were measured in."""
    import transformers

    if images < (warmup + 2) * max(batch_sizes):
        raise ValueError(f"images must be at least (warmup + 2) x the largest batch size = "
                         f"{(warmup + 2) * max(batch_sizes)}, got {images}")
    num_workers = default_num_workers() if num_workers is None else num_workers
    with tempfile.TemporaryDirectory(prefix="aigi-bench-") as work_dir:
        results = [
            benchmark_model(model, images=images, batch_sizes=batch_sizes, warmup=warmup, num_workers=num_workers,
                            work_dir=Path(work_dir), input_side=input_side)
            for model in models
        ]
    return {
        "settings": {"images": images, "batch_sizes": list(batch_sizes), "warmup_batches": warmup,
                     "input_side": input_side,
                     "num_workers": num_workers, "jpeg_quality": JPEG_QUALITY},
        "environment": {
            "torch_version": torch.__version__, "transformers_version": transformers.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "models": results,
        "peak_rss_mib": peak_rss_mib(),
    }


def format_speed_table(report: dict[str, Any]) -> str:
    """A Markdown table: one row per model, measurement and batch size."""
    lines = ["| model | crop px | file px | measure | batch | images/s | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for result in report["models"]:
        for measure in ("forward", "end_to_end"):
            for batch_size, numbers in result[measure].items():
                lines.append(
                    f"| {result['model']} | {result['image_size']} | {result['input_side']} | {measure} | "
                    f"{batch_size} | "
                    f"{numbers['images_per_s']:.1f} | {numbers['latency_ms_p50']:.1f} | "
                    f"{numbers['latency_ms_p95']:.1f} |"
                )
    environment = report["environment"]
    lines.append(f"\ntorch {environment['torch_version']}, {environment['torch_threads']} threads, "
                 f"{environment['cpu_count']} CPUs, num_workers {report['settings']['num_workers']}, "
                 f"peak RSS {report['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)
