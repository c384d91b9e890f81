"""The one training loop (Accelerate): gradient accumulation, bf16/fp32, resumable checkpoints, logs, progress."""

import json
import math
import os
import time
from collections import Counter
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm

from ..data.sources import source_group
from .args import TrainingArguments
from .log_plot import plot_training_log
from .tasks import build_task

CHECKPOINT_PREFIX = "step_"
STATE_FILE = "trainer_state.json"


class ResumableSampler(torch.utils.data.Sampler):
    """Shuffles with a permutation fixed by (seed, epoch), so a resumed run sees the same order; with `weights`,
    draws that many indices with replacement in proportion to them instead (also fixed by seed and epoch)."""

    def __init__(self, size: int, seed: int, weights: torch.Tensor | None = None):
        self.size, self.seed, self.epoch, self.weights = size, seed, 0, weights

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return iter(torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist())
        return iter(torch.randperm(self.size, generator=generator).tolist())


def balanced_weights(records) -> torch.Tensor:
    """Sampling weights giving each class half of the draws and each source group of a class a share proportional
    to the square root of its size (see `--sampling balanced`)."""
    group_sizes = Counter((record.label, source_group(record)) for record in records)
    class_mass = Counter()
    for (label, _), size in group_sizes.items():
        class_mass[label] += math.sqrt(size)
    weights = [
        math.sqrt(group_sizes[key]) / group_sizes[key] / class_mass[record.label]
        for record in records for key in [(record.label, source_group(record))]
    ]
    return torch.tensor(weights, dtype=torch.double)


def learning_rate_factor(step: int, args: TrainingArguments) -> float:
    """Multiplier of the learning rate at `step`: linear warm-up, then constant or cosine decay to 0."""
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.lr_scheduler == "cosine":
        progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def find_checkpoint(output_dir: Path, resume_from_checkpoint: str) -> Path:
    if resume_from_checkpoint != "latest":
        return Path(resume_from_checkpoint)
    checkpoints = sorted(
        (output_dir / "checkpoints").glob(f"{CHECKPOINT_PREFIX}*"), key=lambda path: int(path.name.split("_")[1])
    )
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoint to resume from in {output_dir / 'checkpoints'}")
    return checkpoints[-1]


def train(args: TrainingArguments) -> Path:
    """Run `args.task`; returns the folder of the final model (`output_dir/final`)."""
    output_dir = Path(args.output_dir)
    if args.resume_from_checkpoint is None and (output_dir / "checkpoints").exists():
        raise FileExistsError(
            f"{output_dir} already holds a run; pass --resume_from_checkpoint latest or choose a new output_dir"
        )
    set_seed(args.seed)
    task = build_task(args)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        # Without an accelerator, Accelerate only forms a multi-process (gloo) group when told it runs on CPU.
        cpu=not torch.accelerator.is_available(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=task.find_unused_parameters)],
    )
    model = task.build_model().to(memory_format=task.memory_format)
    dataset = task.build_dataset()
    weights = None
    if args.sampling == "balanced":
        if not hasattr(dataset, "records"):
            raise ValueError(f"--sampling balanced needs labelled records; task {args.task} has none")
        weights = balanced_weights(dataset.records)
    sampler = ResumableSampler(len(dataset), args.seed, weights)
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=args.per_device_batch_size, sampler=sampler, collate_fn=task.collate,
        num_workers=args.num_workers, drop_last=True,
    )
    optimizer = torch.optim.Adam(
        task.trainable_parameters(model), lr=args.learning_rate, betas=(0.9, 0.999), weight_decay=args.weight_decay
    )
    model, optimizer, dataloader = accelerator.prepare(model, optimizer, dataloader)
    if len(dataloader) < args.gradient_accumulation_steps:
        raise ValueError(f"{len(dataset)} samples are too few for one optimizer step at this batch size")
    steps_per_epoch = len(dataloader) // args.gradient_accumulation_steps

    step = 0
    if args.resume_from_checkpoint is not None:
        checkpoint = find_checkpoint(output_dir, args.resume_from_checkpoint)
        accelerator.load_state(str(checkpoint))
        step = json.loads((checkpoint / STATE_FILE).read_text())["step"]
        accelerator.print(f"resumed from {checkpoint} at step {step}")

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_args.json").write_text(args.to_json())
    log_file = output_dir / "log.jsonl"
    progress = tqdm(
        total=args.max_steps, initial=step, desc=args.task, disable=not accelerator.is_local_main_process
    )
    samples_seen, started = 0, time.perf_counter()
    model.train()
    while step < args.max_steps:
        epoch, steps_into_epoch = divmod(step, steps_per_epoch)
        # Through the prepared loader: at each pass it re-applies its own epoch counter to the sampler and the
        # dataset, and it advances that counter only when a pass runs to its end, which this loop's break skips.
        dataloader.set_epoch(epoch)
        batches_done = steps_into_epoch * args.gradient_accumulation_steps
        epoch_batches = accelerator.skip_first_batches(dataloader, batches_done) if batches_done else dataloader
        for batch in epoch_batches:
            with accelerator.accumulate(model):
                losses = task.compute_loss(model, batch, step, accelerator.process_index)
                accelerator.backward(losses["loss"])
                for group in optimizer.param_groups:  # a function of the step: resumes with no state of its own
                    group["lr"] = args.learning_rate * learning_rate_factor(step, args)
                optimizer.step()
                optimizer.zero_grad()
            samples_seen += len(batch["labels"]) if isinstance(batch, dict) else len(batch)
            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.update(1)
            if step % args.logging_steps == 0 or step == args.max_steps:
                record = {"step": step, "epoch": epoch}
                for name, value in losses.items():
                    record[name] = accelerator.gather(value.detach().float().reshape(1)).mean().item()
                record["samples_per_s"] = samples_seen / (time.perf_counter() - started)
                progress.set_postfix(loss=f"{record['loss']:.4f}")
                if accelerator.is_main_process:
                    with log_file.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
            if step % args.checkpointing_steps == 0 or step == args.max_steps:
                save_checkpoint(accelerator, output_dir, step)
            steps_into_epoch += 1
            # Only whole accumulation windows count: a partial window at the epoch's end is skipped.
            if step >= args.max_steps or steps_into_epoch == steps_per_epoch:
                break
    progress.close()

    final_dir = output_dir / "final"
    accelerator.wait_for_everyone()
    run_summary = {"process_index": accelerator.process_index, "num_processes": accelerator.num_processes,
                   "steps": step, "samples_seen": samples_seen, "seconds": time.perf_counter() - started}
    (output_dir / f"process_{accelerator.process_index}.json").write_text(json.dumps(run_summary))
    if accelerator.is_main_process:
        task.save_final(accelerator.unwrap_model(model), str(final_dir))
        plot_training_log(log_file, output_dir / "log.png")
    accelerator.wait_for_everyone()
    return final_dir


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int) -> None:
    checkpoint = output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}"
    already_saved = checkpoint.exists()
    accelerator.wait_for_everyone()  # every rank looks before any rank writes
    if already_saved:
        raise FileExistsError(f"refusing to overwrite checkpoint {checkpoint}")
    accelerator.save_state(str(checkpoint))
    if accelerator.is_main_process:
        (checkpoint / STATE_FILE).write_text(json.dumps({"step": step}))
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> None:
    import sys

    import aigi  # noqa: F401  (registers the detector families with the Auto classes)

    from .args import parse_training_arguments

    arguments = parse_training_arguments(sys.argv[1:] if argv is None else argv)
    final_dir = train(arguments)
    print(f"final model: {final_dir}")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # gloo ranks sometimes abort at interpreter exit ("terminate called without an active exception").
        torch.distributed.destroy_process_group()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)
