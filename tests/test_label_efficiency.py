"""The label-efficiency benchmark: a report row for every cell asked for, a plot, and runs on two processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_runner import warm_python

REPO = Path(__file__).resolve().parents[1]
SMALL_XRAY = ["--data", "phantom_xray", "--data-args", "data.num_patients=29", "data.patch_size=[32,32]", "data.batch_size=4"]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}


def _run(tmp_path: Path, *args: str, python: str | None = None) -> subprocess.CompletedProcess:
    """Run the benchmark on small phantoms; ``python``: the command each pretraining and cell runs in (a warm python,
    whose torch, Lightning and MONAI are already imported, saves about 8 s per run)."""
    report = tmp_path / "label_efficiency.md"
    command = [sys.executable, "benchmarks/label_efficiency.py", *SMALL_XRAY, "--output", str(report), "--workdir", str(tmp_path / "work"), *args]
    return subprocess.run([*command, *(["--python", python] if python else [])], cwd=REPO, env=_environment(),
                          capture_output=True, text=True, timeout=900)


def _benchmark(tmp_path: Path, *args: str, python: str | None = None) -> str:
    """The report of a benchmark run that must succeed."""
    done = _run(tmp_path, *args, python=python)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = tmp_path / "label_efficiency.md"
    assert report.with_suffix(".png").stat().st_size > 0
    return report.read_text()


def _label_count(cell: str) -> int:
    """The labels of a report cell such as ``normal 2, pneumonia 2``."""
    return sum(int(part.split()[-1]) for part in cell.split(","))


def _rows(report: str) -> list[list[str]]:
    """The cells of the results table (the one headed ``| init``)."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| init")) + 2
    table = lines[start : next((i for i in range(start, len(lines)) if not lines[i].startswith("| ")), len(lines))]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table]


@pytest.mark.slow
def test_report_has_a_row_for_every_cell_and_pretrains_the_missing_entry(tmp_path: Path) -> None:
    matrix = ["--inits", "scratch", "zoo:byol_phantom_xray", "--budgets", "4", "--seeds", "2"]
    pretraining = ["--pretrain-args", "trainer.max_steps=2", "network.features=[4,8,16]"]
    with warm_python(_environment()) as python:
        report = _benchmark(tmp_path, *matrix, "--steps", "3", *pretraining, python=python)
        rows = _rows(report)
        assert [(r[0], r[1], r[3]) for r in rows] == [("scratch", "4", "2"), ("zoo:byol_phantom_xray", "4", "2")]
        assert all(r[2] == "normal 2, pneumonia 2" for r in rows), "labels are counted per class"
        assert all("±" in r[5] for r in rows) and rows[0][6] == "–" and "±" in rows[1][6]
        assert "network.features=[4,8,16]" in report, "scratch must be built like the zoo entry it is compared with"
        assert re.search(r"Compute over every attempt of this work folder: pretraining \d+ min \(byol_phantom_xray [\d.]+\); "
                         r"4 fine-tuning runs \d+ min", report), "the report says what the benchmark took"
        changed = _run(tmp_path, *matrix, "--steps", "4", *pretraining, "--resume", python=python)
        assert changed.returncode == 1 and "--resume: scratch budget 4 seed 0 in" in changed.stderr, changed.stderr[-2000:]
        lines = changed.stderr.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("--resume:"))
        before, now = lines[first + 1], lines[first + 3]
        assert "trainer.max_steps=3" in before and before.replace("max_steps=3", "max_steps=4") == now, "both commands, steps apart"
        rescored = _benchmark(tmp_path, *matrix, "--steps", "3", *pretraining, "--finetune-args", "method.threshold=argmax",
                              "--resume", "--rescore", python=python)
        three_seeds = [*matrix[:-1], "3", "--steps", "3", *pretraining, "--finetune-args", "method.threshold=argmax"]
        refused = _run(tmp_path, *three_seeds, "--finished-only", python=python)
        assert refused.returncode == 1 and "use it with --resume" in refused.stderr, refused.stderr[-2000:]
        interim = _benchmark(tmp_path, *three_seeds, "--resume", "--finished-only", python=python)
    assert "4 of the runs were trained by an earlier version" in rescored and "method.threshold=argmax" in rescored
    assert [(r[0], r[5]) for r in _rows(rescored)] == [(r[0], r[5]) for r in rows], "AUC does not depend on the threshold"
    assert "Interim: 4 of the 6 runs have finished" in interim and [r[3] for r in _rows(interim)] == ["2", "2"]
    assert not list((tmp_path / "work" / "finetune").glob("*_2")), "--finished-only runs no cell"


@pytest.mark.slow
@pytest.mark.ddp
def test_cells_run_on_two_processes(tmp_path: Path) -> None:
    report = _benchmark(
        tmp_path, "--inits", "scratch", "--budgets", "all", "--seeds", "1", "--steps", "2",
        "--finetune-args", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "network.features=[4,8,16]",
    )
    (row,) = _rows(report)
    assert [row[0], row[1], _label_count(row[2]), row[3]] == ["scratch", "all", 17, "1"]
    assert "trainer.strategy=ddp" in report
