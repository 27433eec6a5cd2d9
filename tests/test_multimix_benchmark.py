"""The MultiMix benchmark: per-seed rows, the paired gain over the labels-only baseline, and a resume that skips seeds."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from real_data import shared_file

REPO = Path(__file__).resolve().parents[1]


def _benchmark(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}
    command = [sys.executable, "benchmarks/multimix.py", "--quick", "--size", "32", "--seeds", "2",
               "--classification-data", str(shared_file("pneumoniamnist/pneumoniamnist.npz").parent),
               "--segmentation-data", str(shared_file("xray_lung_seg/1-mask.png").parent),
               "--workdir", str(tmp_path / "work"), "--output", str(tmp_path / "multimix.md"), *args]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


@pytest.mark.slow
def test_two_seeds_give_a_paired_gain_and_resume_reruns_nothing(tmp_path: Path) -> None:
    _benchmark(tmp_path)
    report = (tmp_path / "multimix.md").read_text()
    gain = next(line for line in report.splitlines() if line.startswith("| MultiMix − labels only"))
    cells = [cell.strip() for cell in gain.strip("|").split("|")[1:]]
    assert len(cells) >= 5 and all(re.fullmatch(r"[+-]\d\.\d{3} ± \d\.\d{3} \(p (\S+)\)", c) for c in cells), gain
    seeds = [line.split("|")[1].strip() for line in report.splitlines() if line.startswith(("| 0 |", "| 1 |"))]
    assert seeds == ["0", "1"]
    assert "No run predicts one class for every test image." in report or "Runs whose test predictions are all one class:" in report
    recorded = (tmp_path / "work" / "seeds.jsonl").read_text().splitlines()
    assert [json.loads(line)["seed"] for line in recorded] == [0, 1]

    again = _benchmark(tmp_path, "--resume")
    assert (tmp_path / "work" / "seeds.jsonl").read_text().splitlines() == recorded, "finished seeds are not trained again"
    assert "report written to" in again.stdout


@pytest.mark.slow
def test_resume_refuses_seeds_trained_another_way(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "seeds.jsonl").write_text(json.dumps({"seed": 0, "setting": {"steps": 3000}}) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}
    done = subprocess.run([sys.executable, "benchmarks/multimix.py", "--quick", "--resume", "--workdir", str(work),
                           "--classification-data", str(shared_file("pneumoniamnist/pneumoniamnist.npz").parent),
                           "--segmentation-data", str(shared_file("xray_lung_seg/1-mask.png").parent)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "--resume: seed 0 in" in done.stderr and "was trained with {'steps': 3000}" in done.stderr
