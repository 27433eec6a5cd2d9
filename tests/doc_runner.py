"""Running documentation pages as written: every ``bash`` and ``python`` block of a page, top to bottom, as one bash
script in a fresh folder that looks like the repository root (``experiments/``, ``benchmarks/`` and ``../shared`` are
linked in; ``make`` runs the repository's Makefile with the test's environment).

A block preceded by ``<!-- needs: KIND: reason -->`` (KIND one of ``NEEDS``) is not run. Training commands
(``make pretrain|finetune``, ``python -m lightning_ssl pretrain|finetune|sweep``) get tiny overrides appended, for
every key the command does not set itself, so each takes seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
NEEDS = ("gpu", "internet", "dataset", "cluster", "time", "weights")
BLOCK = re.compile(r"(?:<!--\s*needs:\s*(?P<needs>[^>]*?)\s*-->\s*\n)?^```(?P<language>bash|python)\n(?P<code>.*?)^```", re.S | re.M)
TRAINING = re.compile(r"^(make (pretrain|finetune)|python -m lightning_ssl (pretrain|finetune|sweep))\b")
LINKED = ("experiments", "benchmarks")
WARM = Path(__file__).with_name("warm_python.py")

QUICK = ("trainer.max_steps=2", "trainer.enable_progress_bar=false")
TINY_NETWORK = ("network.features=[4,8,16]",)
# the embedded datasets at a few seconds per run (the real ones are behind `needs: dataset`)
TINY_DATA = {
    "phantom_ct": ("data.num_patients=8", "data.volume_shape=[48,48,32]", "data.patch_size=[32,32,16]", "data.patches_per_volume=4", "data.batch_size=2"),
    "phantom_brain_mri": ("data.num_patients=8", "data.volume_shape=[48,48,32]", "data.patch_size=[32,32,16]", "data.patches_per_volume=4", "data.batch_size=2"),
    "phantom_xray": ("data.num_patients=24", "data.patch_size=[32,32]", "data.batch_size=4"),
    "multitask": (
        "data.patch_size=[32,32]",
        "data.batch_size=4",
        "data.classification.num_patients=24",
        "data.classification.label_budget=6",
        "data.segmentation.num_patients=24",
    ),
}


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, and why it is not run (None: it runs)."""

    language: str
    code: str
    needs: str | None


def blocks(page: Path) -> list[Block]:
    """The ``bash`` and ``python`` blocks of ``page`` in order; a ``needs`` marker must name a known kind and a reason."""
    found = []
    for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
        needs = match.group("needs")
        if needs is not None:
            kind, _, reason = needs.partition(":")
            assert kind.strip() in NEEDS and reason.strip(), f"{page.name}: write <!-- needs: KIND: reason --> with KIND in {NEEDS}: {needs!r}"
        found.append(Block(match.group("language"), match.group("code"), needs))
    return found


def commands(code: str) -> list[str]:
    """The lines of a bash block with continuation lines joined and trailing comments removed."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [re.sub(r"\s+#[^'\"]*$", "", line).rstrip() for line in joined.splitlines()]


def data_of(command: str) -> str:
    """The dataset a training command runs on: its ``DATA=``/``data=``, else its method's recipe default."""
    from lightning_ssl.config import build_config

    chosen = re.search(r"\b(?:DATA|data)=(\w+)", command)
    if chosen:
        return chosen.group(1)
    method = re.search(r"\b(?:METHOD|method)=(\w+)", command)
    finetune = "finetune" in command.split()[:4]
    return build_config([f"method={'finetune' if finetune else method.group(1) if method else 'genesis'}"]).data.name


def quick(command: str) -> str:
    """``command`` with the tiny overrides of its data for every key it does not set (inside ``ARGS="..."`` when it
    has one, so they reach the CLI after the command's own)."""
    if not TRAINING.match(command):
        return command
    data = data_of(command)
    assert data in TINY_DATA, f"no tiny overrides for data={data} (add them to TINY_DATA, or mark the block `needs: dataset`)"
    network = () if re.search(r"\bnetwork(\.name)?=", command) else TINY_NETWORK
    extra = [o for o in (*QUICK, *network, *TINY_DATA[data]) if not re.search(rf"(^|[\s\"']){re.escape(o.split('=')[0])}=", command)]
    quoted = " ".join(f"'{o}'" if "[" in o else o for o in extra)
    if 'ARGS="' in command:
        return re.sub(r'ARGS="([^"]*)"', lambda m: f'ARGS="{m.group(1)} {" ".join(extra)}"', command, count=1)
    return f"{command} {quoted}"


def script(page: Path) -> str:
    """The runnable blocks of ``page`` as one bash script that stops at the first failing command."""
    steps = [
        "set -euo pipefail",
        # the warm interpreter (warm_python.py) for `python` and the Makefile's `$(PY)`; WARM_PYTHON is set by run_page
        'python() { $WARM_PYTHON "$@"; }',
        'make() { command make -f "$REPOSITORY/Makefile" VENV="$VENV" PY="$WARM_PYTHON" -o "$VENV/.installed" "$@"; }',
    ]
    for block in blocks(page):
        if block.needs is not None:
            continue
        if block.language == "python":
            steps.append(f"python - <<'PYTHON'\n{block.code}PYTHON")
        else:
            steps += [quick(command) for command in commands(block.code)]
    return "\n".join(steps) + "\n"


@contextmanager
def warm_python(env: dict[str, str]) -> Iterator[str]:
    """The command line of a ``python`` whose heavy imports are done (``warm_python.py``), served while in use."""
    folder = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))  # a Unix socket's path must be short
    path = folder / "socket"
    server = subprocess.Popen([sys.executable, str(WARM), "--serve", str(path)], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not path.exists():
            assert server.poll() is None and time.monotonic() < deadline, "the warm interpreter did not start"
            time.sleep(0.2)
        yield f"{sys.executable} {WARM} {path}"
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def run_page(page: Path, folder: Path, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``page``'s script in ``folder`` (made like the repository root) with this interpreter's environment."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        (folder / name).symlink_to(REPOSITORY / name)
    shared = REPOSITORY.parent / "shared"
    if shared.is_dir() and not (folder.parent / "shared").exists():
        (folder.parent / "shared").symlink_to(shared)
    env = {**os.environ, **(env or {})}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")])),
        REPOSITORY=str(REPOSITORY),
        VENV=sys.prefix,
        OMP_NUM_THREADS="1",
    )
    with warm_python(env) as python:
        return subprocess.run(["bash", "-c", script(page)], cwd=folder, env={**env, "WARM_PYTHON": python},
                              capture_output=True, text=True, timeout=timeout)
