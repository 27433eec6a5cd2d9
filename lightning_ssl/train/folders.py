"""Where a run writes (``<output_dir>/<run_name>/<time>/``), which run and checkpoint ``resume=`` names, and checks
that every folder a run will write to can be written before it trains."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lightning_ssl.errors import ConfigError, one_line

RUN_DIR_ENV = "LIGHTNING_SSL_RUN_DIR"
CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = Path(CHECKPOINT_DIR) / "last.ckpt"


@dataclass(frozen=True)
class ResumeTarget:
    """The run folder a resumed run continues in, and the checkpoint it restores."""

    run_dir: Path
    checkpoint: Path

    @property
    def config_file(self) -> Path | None:
        """The resumed run's saved config, None when the checkpoint lies outside a run folder."""
        path = self.run_dir / CONFIG_FILE
        return path if path.is_file() else None


def run_folders(output_dir: str | Path, run_name: str) -> list[Path]:
    """The run folders of ``run_name`` (those holding a saved config), oldest first (folder names are times)."""
    parent = Path(output_dir) / run_name
    if not parent.is_dir():
        return []
    return sorted(path for path in parent.iterdir() if (path / CONFIG_FILE).is_file())


def find_resume(output_dir: str | Path, run_name: str, resume: str) -> ResumeTarget:
    """The run and checkpoint that ``resume`` names: ``last`` (the newest run of ``run_name``), a run folder
    (its ``last.ckpt``) or a checkpoint file (that checkpoint)."""
    if resume == "last":
        folders = run_folders(output_dir, run_name)
        if not folders:
            raise ConfigError(
                f"resume=last: no run of {run_name!r} under {output_dir}; start one without resume= "
                f"(runs of another method or data have another name: set run_name=... to pick one)"
            )
        newest = folders[-1]
        if not (newest / LAST_CHECKPOINT).is_file():
            raise ConfigError(
                f"resume=last: the newest run of {run_name!r}, {newest}, has no checkpoint (it stopped before its first "
                f"one); start again without resume=, or name an older run: resume=<run folder>"
            )
        return ResumeTarget(newest, newest / LAST_CHECKPOINT)
    path = Path(resume).expanduser()
    if path.is_file():
        return ResumeTarget(path.parent.parent, path)
    if (path / LAST_CHECKPOINT).is_file():
        return ResumeTarget(path, path / LAST_CHECKPOINT)
    if path.is_dir():
        raise ConfigError(f"resume={resume}: {path} holds no {LAST_CHECKPOINT} (the run stopped before its first checkpoint)")
    raise ConfigError(f"resume={resume}: expected 'last', a run folder holding {LAST_CHECKPOINT}, or a .ckpt file")


def new_run_dir(output_dir: str | Path, run_name: str) -> Path:
    """A new, not yet existing run folder named by the current UTC time."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(output_dir) / run_name / stamp
    run_dir, k = base, 1
    while run_dir.exists():
        run_dir, k = base.with_name(f"{stamp}-{k}"), k + 1
    return run_dir


def inherited_run_dir() -> Path | None:
    """The run folder chosen by the process that launched this one (a DDP rank), if any."""
    inherited = os.environ.get(RUN_DIR_ENV)
    return Path(inherited) if inherited else None


def ensure_writable(folder: str | Path, key: str) -> Path:
    """Create ``folder`` if needed and check a file can be written in it; ConfigError naming ``key`` otherwise."""
    path = Path(folder).expanduser()
    blocker = next((parent for parent in [path, *path.parents] if parent.exists() and not parent.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{key}={folder}: {blocker} is a file, not a folder; choose another {key}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ConfigError(f"{key}={folder}: cannot write there ({one_line(error)}); choose a writable {key}") from None
    return path
