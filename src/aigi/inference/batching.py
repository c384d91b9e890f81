"""Batching and preprocessing threads of the pipeline: the inputs are decoded a bounded number ahead of the model."""

import itertools
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def default_num_workers() -> int:
    """Preprocessing threads used when a caller does not choose: min(4, CPUs) (see results/speed/README.md)."""
    return min(4, os.cpu_count() or 1)


def preprocess_in_threads(
    preprocess, inputs: Iterable, params: dict[str, Any], *, num_workers: int, lookahead: int
) -> Iterator[Any]:
    """`preprocess(item, **params)` for each input, `num_workers` at a time, in input order; at most `lookahead`
    inputs are read ahead of the consumer, so a lazy input stays lazy. An exception is raised where its item is."""
    with ThreadPoolExecutor(num_workers, thread_name_prefix="aigi-preprocess") as pool:
        pending: deque = deque()
        try:
            for item in inputs:
                pending.append(pool.submit(preprocess, item, **params))
                if len(pending) >= lookahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last one may be shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
