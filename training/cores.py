"""Torch on every core while training: importing Ultralytics first leaves torch at one thread."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def all_cores() -> Iterator[None]:
    """A torch thread per core for the duration (Ultralytics sets OMP_NUM_THREADS=1, which torch then obeys)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(previous, os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
