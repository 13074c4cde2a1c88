"""Model tests run torch on one thread: on a shared 2-core machine, two spinning OpenMP
threads per process can make a run many times slower, one thread keeps timings steady."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
