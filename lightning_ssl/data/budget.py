"""Label budgets: which training samples keep their labels, stratified by class and nested across budgets."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lightning_ssl.data.errors import DataError

UNKNOWN_LABEL = -1


def stratified_order(labels: Sequence[int], seed: int) -> np.ndarray:
    """An order of the labeled samples (label >= 0) in which every prefix is stratified by class.

    Each class is shuffled by ``seed``; its i-th sample of n gets the key (i + u) / n with u uniform
    in [0, 1), and samples are sorted by key. Any first-k then holds each class in proportion (within
    one sample), and a smaller budget is always inside a larger one for the same seed.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = np.full(labels.shape[0], np.inf)
    for value in np.unique(labels[labels != UNKNOWN_LABEL]):
        members = np.flatnonzero(labels == value)
        shuffled = rng.permutation(members)
        keys[shuffled] = (np.arange(members.size) + rng.random(members.size)) / members.size
    order = np.argsort(keys, kind="stable")
    return order[np.isfinite(keys[order])]


def budget_size(budget: Any, available: int, unit: str = "samples") -> int:
    """How many labels a budget means: None/"all" = all, a float in (0, 1] = that fraction, an int >= 1 = that count
    (of ``unit``, the word its error uses for what is counted)."""
    if budget is None or budget == "all":
        return available
    if isinstance(budget, str):
        text = budget.strip()
        try:
            budget = float(text[:-1]) / 100 if text.endswith("%") else (int(text) if text.isdigit() else float(text))
        except ValueError:
            raise DataError(f"label budget {budget!r} is not a count, a fraction in (0, 1], a percentage or 'all'") from None
    if isinstance(budget, bool) or budget <= 0:
        raise DataError(f"label budget {budget!r} must be positive: a count, a fraction in (0, 1], or 'all'")
    if isinstance(budget, float) and budget <= 1.0:
        count = max(1, round(budget * available))
    elif float(budget).is_integer():
        count = int(budget)
    else:
        raise DataError(f"label budget {budget!r}: a fraction must be at most 1, a count a whole number")
    if count > available:
        raise DataError(
            f"label budget {budget!r} asks for {count} labels but the training split has {available} labeled {unit}: "
            f"lower data.label_budget"
        )
    return count


def labeled_subset(labels: Sequence[int], budget: Any, seed: int, unit: str = "samples") -> tuple[np.ndarray, np.ndarray]:
    """(labeled, unlabeled) indices of ``labels`` (one per sample, or per ``unit``) for a budget: the labeled ones
    stratified and nested by ``seed``.

    Samples with an unknown label (-1) are always in the unlabeled remainder.
    """
    labels = np.asarray(labels)
    order = stratified_order(labels, seed)
    chosen = np.sort(order[: budget_size(budget, order.size, unit)])
    rest = np.setdiff1d(np.arange(labels.shape[0]), chosen)
    return chosen, rest
