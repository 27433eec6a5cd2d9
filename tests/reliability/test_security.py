"""No code runs from a checkpoint: every file the project reads with torch.load is read weights-only, and a checkpoint
carrying code is refused in one line, by publish, resume and the built-in converters."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers import tiny

from lightning_ssl.cli import main

PACKAGE = Path(__file__).resolve().parents[2] / "lightning_ssl"
REPO = PACKAGE.parent


class Payload:
    """Unpickling this object runs ``touch PWNED`` in the current folder."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def malicious_checkpoint(path: Path) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": {"zoo_metadata": {}}, "e": Payload()}, path)
    return path


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "load") and "torch" in ast.unparse(node.func):
                calls.append((path, node))
    assert calls, "the check found no torch.load call at all"
    for path, node in calls:
        flags = {keyword.arg: ast.unparse(keyword.value) for keyword in node.keywords}
        assert flags.get("weights_only") == "True", f"{path.relative_to(REPO)}:{node.lineno} calls torch.load without weights_only=True"


def test_publishing_a_checkpoint_with_code_runs_nothing_and_says_why_in_one_line(tmp_path: Path) -> None:
    evil = malicious_checkpoint(tmp_path / "evil.ckpt")
    done = subprocess.run([sys.executable, "-m", "lightning_ssl", "zoo", "publish", str(evil), "x"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "LIGHTNING_SSL_ZOO": str(tmp_path / "store")})
    assert not (tmp_path / "PWNED").exists()
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "posix.system" in err[0] and "not unpickled" in err[0] and "Traceback" not in done.stderr


def test_resuming_from_a_checkpoint_with_code_runs_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", *tiny(tmp_path / "runs"), "trainer.max_steps=1", "zoo.publish=false"]) == 0
    (run_dir,) = (tmp_path / "runs" / "genesis_phantom_ct").iterdir()
    malicious_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main(["pretrain", f"output_dir={tmp_path / 'runs'}", "resume=last", "trainer.max_steps=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.ckpt" in err and "not unpickled" in err
    assert not (tmp_path / "PWNED").exists()


def test_a_zoo_reference_that_escapes_the_store_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["finetune", *tiny(tmp_path), "method.init=zoo:../../etc/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "method.init='zoo:../../etc/x'" in err
