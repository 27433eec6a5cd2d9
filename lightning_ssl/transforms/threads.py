"""Run a block of tensor operations with a given number of CPU threads, then restore torch's setting.

The batched corruptions are hundreds of small operations: at torch's default of one thread per core, each waits
for its slowest thread, so a second busy process on the machine (a DataLoader worker, another run) costs them far
more than it costs the network's few large operations. Torch only offers the global ``torch.set_num_threads``,
hence this guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def cpu_threads(count: int, device: torch.device) -> Iterator[None]:
    """Within the block, torch uses ``count`` intra-op threads if ``device`` is the CPU (``count`` 0: unchanged)."""
    previous = torch.get_num_threads()
    if device.type != "cpu" or count <= 0 or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
