"""Label budgets: sizes, stratification, nesting, errors."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_ssl.data.budget import budget_size, labeled_subset, stratified_order
from lightning_ssl.data.errors import DataError

LABELS = np.array([0] * 300 + [1] * 100 + [2] * 50 + [-1] * 20)


@pytest.mark.parametrize("budget,expected", [(None, 450), ("all", 450), (0.1, 45), ("10%", 45), (10, 10), ("25", 25), (1.0, 450)])
def test_budget_sizes(budget, expected) -> None:
    assert budget_size(budget, 450) == expected


def test_budgets_are_nested_and_stratified() -> None:
    previous: set[int] = set()
    for budget in (9, 45, 90, 225, 450):
        chosen, rest = labeled_subset(LABELS, budget, seed=3)
        assert len(chosen) == budget and previous <= set(chosen.tolist())
        assert set(chosen) | set(rest) == set(range(LABELS.size)) and not set(chosen) & set(rest)
        counts = np.bincount(LABELS[chosen], minlength=3)
        expected = budget * np.array([300, 100, 50]) / 450
        assert np.all(np.abs(counts - expected) <= 1), (budget, counts, expected)
        previous = set(chosen.tolist())


def test_unknown_labels_stay_unlabeled_and_seeds_differ() -> None:
    chosen, rest = labeled_subset(LABELS, "all", seed=0)
    assert (LABELS[chosen] >= 0).all() and set(np.flatnonzero(LABELS < 0)) <= set(rest)
    assert not np.array_equal(stratified_order(LABELS, 0)[:20], stratified_order(LABELS, 1)[:20])
    assert np.array_equal(stratified_order(LABELS, 5), stratified_order(LABELS, 5))


@pytest.mark.parametrize(
    "budget,message",
    [(500, "asks for 500 labels but the training split has 450"), (0, "must be positive"), (2.5, "at most 1"), ("lots", "not a count")],
)
def test_bad_budgets_say_what_to_do(budget, message) -> None:
    with pytest.raises(DataError, match=message):
        budget_size(budget, 450)


def _phantom_xray(budget: object) -> object:
    from lightning_ssl.config import build_config
    from lightning_ssl.data import DATASETS

    cfg = build_config(["data=phantom_xray", f"data.label_budget={budget}", "data.batch_size=4"])
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    return datamodule


def test_semi_supervised_batches_pair_the_budget_with_the_unlabeled_pool() -> None:
    datamodule = _phantom_xray(8)
    batch, _, _ = next(iter(datamodule.semi_supervised_dataloader()))
    assert set(batch) == {"labeled", "unlabeled"}
    assert "label" in batch["labeled"] and "label" not in batch["unlabeled"] and "mask" not in batch["unlabeled"]
    steps = sum(1 for _ in datamodule.semi_supervised_dataloader())
    assert steps == len(datamodule.unlabeled_dataloader())


def test_semi_supervised_batches_without_a_pool_hold_labeled_only() -> None:
    batch, _, _ = next(iter(_phantom_xray("all").semi_supervised_dataloader()))
    assert set(batch) == {"labeled"}
