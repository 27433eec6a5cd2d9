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
