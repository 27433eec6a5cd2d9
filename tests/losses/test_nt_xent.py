"""NT-Xent: values that matter, and exact gradients across processes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lightning_ssl.losses import NTXentLoss, nt_xent


def _reference(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """The textbook two-view NT-Xent, written out anchor by anchor."""
    z = F.normalize(torch.cat([first, second]), dim=1)
    n = first.shape[0]
    losses = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        similarities = torch.stack([z[i] @ z[k] / temperature for k in range(2 * n) if k != i])
        losses.append(-(z[i] @ z[positive] / temperature - torch.logsumexp(similarities, dim=0)))
    return torch.stack(losses).mean()


def test_matches_the_textbook_two_view_loss() -> None:
    first, second = torch.randn(6, 5), torch.randn(6, 5)
    assert torch.allclose(nt_xent([first, second], 0.3), _reference(first, second, 0.3), atol=1e-6)


def test_identical_views_score_low_and_unrelated_views_near_log_of_negatives() -> None:
    torch.manual_seed(0)
    z = torch.randn(64, 128)
    aligned = nt_xent([z, z + 1e-3 * torch.randn_like(z)], temperature=0.1)
    unrelated = nt_xent([z, torch.randn(64, 128)], temperature=10.0)
    assert aligned < 0.05
    assert unrelated == pytest.approx(math.log(2 * 64 - 1), rel=0.02)


def test_multi_crop_averages_over_every_positive() -> None:
    first, second, third = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    three = nt_xent([first, second, third], 0.5)
    assert torch.isfinite(three) and three > 0
    assert NTXentLoss(0.5)([first, second]) == nt_xent([first, second], 0.5)


def test_one_view_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two views"):
        nt_xent([torch.randn(4, 8)])


def _two_ranks(tmp_path: Path, mode: str) -> dict:
    worker = Path(__file__).with_name("ddp_nt_xent_worker.py")
    report = tmp_path / f"{mode}.json"
    completed = subprocess.run(
        [sys.executable, str(worker), str(tmp_path / f"{mode}.init"), str(report), mode],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.ddp
def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path: Path) -> None:
    report = _two_ranks(tmp_path, "with_gradient")
    assert report["loss"] == pytest.approx(report["single_loss"], abs=1e-5)
    assert report["max_gradient_difference"] < 1e-5


@pytest.mark.ddp
def test_the_check_catches_negatives_gathered_without_gradient(tmp_path: Path) -> None:
    report = _two_ranks(tmp_path, "without_gradient")
    assert report["loss"] == pytest.approx(report["single_loss"], abs=1e-5)
    assert report["max_gradient_difference"] > 1e-3
