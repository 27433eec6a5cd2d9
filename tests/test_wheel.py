"""Installed, not only cloned: the wheel, installed in a new environment, runs from an empty folder with its recipes
and zoo catalog."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from helpers import TINY_PHANTOM

REPOSITORY = Path(__file__).resolve().parents[1]
# what the wheel is built from; everything else in a working copy (runs, caches, virtual environments) is left out
SOURCES = ("lightning_ssl", "zoo", "setup.cfg", "pyproject.toml", "README.md", "LICENSE")


def build_wheel(destination: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the package's sources (the build writes nothing into the repository)."""
    source = destination / "source"
    for name in SOURCES:
        path = REPOSITORY / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(destination), str(source)], check=True, timeout=600)
    (wheel,) = destination.glob("lightning_ssl-*.whl")
    return wheel


def environment_with(wheel: Path, folder: Path) -> Path:
    """A new virtual environment holding the wheel; its dependencies (the CPU torch among them) are read from this
    test's environment through a path file, whose own copy of the package is not importable from there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=300)
    python = folder / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    Path(own.stdout.strip(), "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    subprocess.run([*pip, "install", "--no-deps", "--quiet", str(wheel)], check=True, timeout=600)
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return python


@pytest.mark.slow
def test_the_installed_wheel_runs_from_an_empty_folder(tmp_path: Path) -> None:
    python = environment_with(build_wheel(tmp_path / "dist"), tmp_path / "venv")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(LIGHTNING_SSL_ZOO=str(tmp_path / "zoo"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")

    def run(*args: str) -> str:
        done = subprocess.run([str(python), *args], cwd=empty, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done.stdout

    where = run("-c", "import lightning_ssl; print(lightning_ssl.__file__)")
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")
    assert "max_epochs: 3" in run("-m", "lightning_ssl", "config", "method=genesis")  # the packaged recipe's value
    run("-m", "lightning_ssl", "pretrain", *TINY_PHANTOM, "trainer.max_steps=3")
    listed = run("-m", "lightning_ssl", "zoo", "list")
    assert "genesis_chest_ct" in listed  # from the packaged catalog
    assert "genesis_phantom_ct" in listed  # what the pretraining published
    assert [path.name for path in empty.iterdir()] == ["runs"]


def test_the_citation_file_names_the_licence_and_every_methods_paper() -> None:
    from lightning_ssl.methods import METHODS

    citation = yaml.safe_load((REPOSITORY / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["license"] == "Apache-2.0" and "Apache License" in (REPOSITORY / "LICENSE").read_text()
    first_authors = {reference["authors"][0]["family-names"] for reference in citation["references"]}
    cited = {name: METHODS[name].citation.split()[0] for name in METHODS.names() if METHODS[name].citation}
    assert set(cited) >= {"genesis", "chen", "simclr", "byol", "cpcseg", "multimix"}
    assert {name: author for name, author in cited.items() if author not in first_authors} == {}
