"""What every benchmark report shares: paths from the repository root, where a report is written, the header that
says when, how and on what it was measured, and the busy-machine check."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import monai
import numpy as np
import pytorch_lightning as pl
import torch
import torchmetrics

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
LOCAL_RESULTS = RESULTS / "local"
COMMITTED_WORK = RESULTS / "work"
LOCAL_WORK = REPO / "runs" / "benchmarks"
BUSY_LOAD = 0.7
SIGNIFICANT = 0.05  # the paired t-test p below which a gain beyond two standard errors is called a win


def from_repo(path: str | Path) -> Path:
    """``path`` as given when absolute, else relative to the repository root."""
    path = Path(path)
    return path if path.is_absolute() else REPO / path


def report_path(name: str, write: bool, output: str | None = None) -> Path:
    """Where a report goes: ``output`` when given; ``results/<name>`` (the committed report) with ``--write``;
    otherwise ``results/local/<name>`` (not versioned), so a run on another machine never overwrites the record."""
    if output:
        return from_repo(output)
    return (RESULTS if write else LOCAL_RESULTS) / name


def work_path(name: str, write: bool, workdir: str | None = None) -> Path:
    """A resumable benchmark's work folder: ``workdir`` when given; ``results/work/<name>`` with ``--write``, whose
    finished records and small pretrained entries are committed (``results/work/.gitignore``) so that a run spread
    over several sittings on fresh machines goes on where it stopped; otherwise ``runs/benchmarks/<name>``."""
    if workdir:
        return from_repo(workdir)
    return (COMMITTED_WORK if write else LOCAL_WORK) / name


def refuse_if_busy(what: str, threshold: float = BUSY_LOAD, wait: float = 180.0) -> float:
    """The 1-minute load average once it is at most ``threshold``; waits up to ``wait`` seconds for it to fall (the
    average lags: a benchmark that just ended, like the previous one of ``make benchmarks``, still shows for a minute)
    and exits with one line when another job keeps the machine busy (timings would be wrong)."""
    deadline = time.monotonic() + wait
    load = os.getloadavg()[0]
    if load > threshold:
        print(f"{what}: waiting up to {wait:.0f} s for the 1-minute load average ({load:.2f}) to fall to {threshold}", flush=True)
    while load > threshold and time.monotonic() < deadline:
        time.sleep(10)
        load = os.getloadavg()[0]
    if load > threshold:
        sys.exit(f"{what}: the 1-minute load average is {load:.2f} (> {threshold}): another job is running and would "
                 "distort the timings; run it on a free machine (or pass --allow-busy to measure anyway)")
    return load


def header(seconds: float, loads: tuple[float, float], extra: str = "") -> str:
    """Date, command, software versions and machine of a report, as markdown bullets."""
    command = shlex.join(["python", *[str(a) for a in sys.argv]])
    return "\n".join(
        [
            f"- Date: {date.today().isoformat()}",
            f"- Command (from the repository root): `{command}`",
            f"- Software: Python {platform.python_version()}, torch {torch.__version__}, pytorch-lightning {pl.__version__}, "
            f"torchmetrics {torchmetrics.__version__}, monai {monai.__version__}",
            f"- Machine: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU; 1-minute load average {loads[0]:.2f} at "
            f"the start, {loads[1]:.2f} at the end; wall time {seconds / 60:.1f} min{extra}",
        ]
    )


def one_class(metrics: dict[str, float]) -> bool:
    """Whether a run's test predictions all fall in one class: its ``test/predicted_<class>`` counts, or for a
    segmentation, no foreground in any test image (Dice 0, and every HD95 undefined: MONAI gives NaN for an empty
    prediction)."""
    counts = [value for key, value in metrics.items() if key.startswith("test/predicted_")]
    if counts:
        return sum(1 for value in counts if value > 0) == 1
    distances = [value for key, value in metrics.items() if key.startswith("test/hd95")]
    return metrics.get("test/dice") == 0 and bool(distances) and all(np.isnan(value) for value in distances)


def comparison(mean: float, error: float, p: float, baseline: str, sign: int = 1) -> str:
    """How a paired gain (``mean`` ± standard ``error``, paired t-test ``p``) compares with ``baseline``: it beats it
    or is worse only beyond two standard errors with p < ``SIGNIFICANT`` (with 3 seeds, two standard errors are not yet
    a significant test); ``sign`` -1 for a metric where lower is better."""
    if abs(mean) <= 2 * error:
        return f"does not differ from {baseline}"
    if p < SIGNIFICANT:
        return f"{'beats' if sign * mean > 0 else 'is worse than'} {baseline}"
    return f"is {'above' if mean > 0 else 'below'} {baseline} by more than two standard errors, but not significantly,"


def p_text(p: float) -> str:
    """A p-value to two significant digits; ``–`` when the paired differences are all equal (no test possible)."""
    return "–" if np.isnan(p) else f"{p:.2g}"
