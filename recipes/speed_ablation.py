"""Before/after of each pipeline optimisation for one detector, with `aigi.inference.speed.bench_speed`.

Variants, each adding one optimisation to the previous: `baseline` (torch.no_grad, contiguous NCHW tensors,
preprocessing in the caller's thread), `+inference_mode`, `+channels_last`, `+2 preprocessing threads`,
`+4 preprocessing threads`. The earlier variants are reproduced by patching the pipeline in this process only.
Writes one JSON with every variant and prints a Markdown table.

    OMP_NUM_THREADS=2 python recipes/speed_ablation.py --output results/speed/default_ablation.json [--model NAME]
"""

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

import torch

import aigi.inference.speed as speed
import aigi.inference.pipeline as pipeline_module
from aigi.inference.pipeline import AIImageDetectionPipeline


def contiguous_model_logits(model, pixel_values):
    return model(pixel_values=pixel_values.contiguous()).logits.float()


@contextmanager
def patched(inference_mode: bool, channels_last: bool):
    original_context = AIImageDetectionPipeline.get_inference_context
    original_init = AIImageDetectionPipeline.__init__
    original_logits = pipeline_module.model_logits
    if not inference_mode:
        AIImageDetectionPipeline.get_inference_context = lambda self: torch.no_grad
    if not channels_last:
        def init_without_channels_last(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            self.model.to(memory_format=torch.contiguous_format)

        AIImageDetectionPipeline.__init__ = init_without_channels_last
        pipeline_module.model_logits = contiguous_model_logits
    try:
        yield
    finally:
        AIImageDetectionPipeline.get_inference_context = original_context
        AIImageDetectionPipeline.__init__ = original_init
        pipeline_module.model_logits = original_logits


VARIANTS = (
    ("baseline", False, False, 0),
    ("+inference_mode", True, False, 0),
    ("+channels_last", True, True, 0),
    ("+2 preprocessing threads", True, True, 2),
    ("+4 preprocessing threads", True, True, 4),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Default: the bundled default detector.")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    from aigi.registry import DEFAULT_DETECTOR

    model = args.model or DEFAULT_DETECTOR
    report = {"model": model, "variants": {}}
    lines = ["| variant | forward b1 img/s | forward b32 img/s | end-to-end b1 img/s (p50/p95 ms) | "
             "end-to-end b32 img/s (p50/p95 ms) | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
    for name, inference_mode, channels_last, workers in VARIANTS:
        with patched(inference_mode, channels_last):
            result = speed.bench_speed([model], images=args.images, num_workers=workers)
        report["variants"][name] = result
        numbers = result["models"][0]
        e2e = numbers["end_to_end"]
        lines.append(
            f"| {name} | {numbers['forward']['1']['images_per_s']:.1f} | {numbers['forward']['32']['images_per_s']:.1f}"
            f" | {e2e['1']['images_per_s']:.1f} ({e2e['1']['latency_ms_p50']:.0f}/{e2e['1']['latency_ms_p95']:.0f})"
            f" | {e2e['32']['images_per_s']:.1f} ({e2e['32']['latency_ms_p50']:.0f}/{e2e['32']['latency_ms_p95']:.0f})"
            f" | {result['peak_rss_mib']:.0f} |"
        )
        print(lines[-1], flush=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
