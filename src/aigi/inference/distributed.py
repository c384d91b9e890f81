"""`aigi detect` and `aigi evaluate` across the processes of `accelerate launch` (GPUs, nodes, or CPU processes).

Each process loads the detector on its own device and scores one block of whole batches of the inputs; the outputs
are gathered on every process in the input order, and only the main process prints and writes files. Every image
is scored in the same batch as in a single-process run, so the scores are exactly those of one process. In a plain
single process all of this is a no-op.
"""

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object, parse_flag_from_env


def launch_state() -> PartialState:
    """This process's place in the launch. Without an accelerator, or under `accelerate launch --cpu`, the
    processes of a multi-process launch join a gloo group on the CPU (accelerate's default would leave each alone)."""
    return PartialState(cpu=not torch.accelerator.is_available() or parse_flag_from_env("ACCELERATE_USE_CPU"))


def process_device() -> torch.device:
    """The device this process places its model on: cuda:<local rank> on GPUs, cpu on CPU processes."""
    return launch_state().device


def is_main_process() -> bool:
    """True in the process that prints and writes the results (the only one in a plain run)."""
    return launch_state().is_main_process


def batch_shard(count: int, batch_size: int, process_index: int, num_processes: int) -> slice:
    """The positions, among `count` inputs, that process `process_index` of `num_processes` scores.

    The inputs are cut into consecutive batches of `batch_size`, as one process would score them, and each process
    gets a contiguous block of whole batches; the block sizes differ by at most one batch, the last process gets the
    short final batch, and processes beyond the number of batches get nothing.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process_index must be in [0, {num_processes}), got {process_index}")
    batch_count = -(-count // batch_size)
    first_batch = batch_count * process_index // num_processes
    end_batch = batch_count * (process_index + 1) // num_processes
    return slice(first_batch * batch_size, min(end_batch * batch_size, count))


def merge_shards(shard_outputs: Sequence[Sequence[Any]], count: int) -> list[Any]:
    """The outputs of every process's `batch_shard`, listed in process order, as one list in the input order."""
    merged = [output for outputs in shard_outputs for output in outputs]
    if len(merged) != count:
        raise RuntimeError(f"the processes returned {len(merged)} outputs for {count} inputs")
    return merged


def score_in_shards(score: Callable[[list], list], sources: list, *, batch_size: int) -> list:
    """`score(sources)`, shared among the processes of the current launch: each process scores its `batch_shard`
    and every process returns all the outputs, in the order of `sources`. `score` batches by `batch_size`."""
    state = launch_state()
    if state.num_processes == 1:
        return score(sources)
    shard = batch_shard(len(sources), batch_size, state.process_index, state.num_processes)
    outputs = score(sources[shard])
    return merge_shards(gather_object([outputs]), len(sources))


def end_launched_process(exit_status: int) -> None:
    """In a process of a multi-process launch: leave the process group and exit with `exit_status` at once (gloo
    processes otherwise sometimes abort at interpreter exit). Nothing in a plain process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    torch.distributed.destroy_process_group()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(exit_status)
