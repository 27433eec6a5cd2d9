"""The error every DataModule raises for bad input: one line naming the file and what to do."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used (missing, unreadable, inconsistent), found before training starts."""
