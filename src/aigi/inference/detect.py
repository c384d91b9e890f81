"""`aigi detect`: the verdict of a detector on image files, folders or a dataset, as rows (`aigi.inference.rows`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..image_io import collect_image_files, load_image
from .distributed import is_main_process, launch_state
from .heatmaps import draw_heatmap
from .inputs import detection_entries
from .rows import check_output_path, iter_detection_rows, stream_rows_to_file, verdict_fields
from .scoring import load_pipeline, score_across_processes


def detect_files(
    model: str, paths: Sequence[str], *, batch_size: int = 32, heatmaps: str | Path | None = None, **options
) -> list[dict]:
    """One row (path, label, score, error) per image file of `paths` (files or folders), in order; `options` are
    `score_stream`'s (threshold, num_workers, num_crops, crop_aggregation). With `heatmaps`, a folder, one PNG per
    readable image there: its crops' P(fake) over the image (`aigi.inference.heatmaps`). Under `accelerate launch`
    the processes share the scoring, every process gets all the rows, and the main process draws."""
    files = collect_image_files(paths)
    pipe = load_pipeline(model)
    outputs = score_across_processes(
        pipe, [str(file) for file in files], batch_size=batch_size, description="detect",
        return_crops=heatmaps is not None, **options,
    )
    if heatmaps is not None and is_main_process():
        threshold = options.get("threshold")
        write_heatmaps(files, outputs, Path(heatmaps),
                       threshold=float(pipe.model.config.decision_threshold if threshold is None else threshold))
    return [{"path": str(file), **verdict_fields(output)} for file, output in zip(files, outputs)]


def write_heatmaps(files: Sequence[Path], outputs: list, folder: Path, *, threshold: float) -> list[Path]:
    """`folder/<file stem>.png` (`_2`, `_3`... when stems repeat) for each scored file; unreadable ones are skipped."""
    written, taken = [], set()
    for file, output in zip(files, outputs):
        if isinstance(output, dict):
            continue
        name, number = Path(file).stem, 1
        while name in taken:
            number += 1
            name = f"{Path(file).stem}_{number}"
        taken.add(name)
        written.append(draw_heatmap(load_image(file), output, folder / f"{name}.png", threshold=threshold,
                                    title=Path(file).name))
    return written


def detect_to_file(
    model: str, output: str | Path, *, paths: Sequence[str] = (), data: str | None = None, split: str | None = None,
    batch_size: int = 32, **options,
) -> tuple[int, int]:
    """Stream the rows of `paths` or of the dataset `data` to the `.csv` / `.jsonl` file `output` as they are
    scored, in one process (`options` as in `detect_files`); returns (rows written, rows with an error). Bad
    arguments raise ValueError or FileNotFoundError before anything is scored."""
    if launch_state().num_processes > 1:
        raise ValueError("streaming (--output / --data) writes one file from one process; launch it without "
                         "accelerate, or shard with `accelerate launch -m aigi detect PATHS --json`")
    check_output_path(output)
    entries, fields, total = detection_entries(paths, data, split)
    pipe = load_pipeline(model, on_launch_device=False)
    rows = iter_detection_rows(pipe, entries, batch_size=batch_size, total=total, description="detect", **options)
    return stream_rows_to_file(rows, output, fields)
