"""The error every DataModule raises for bad input: one line naming the file and what to do."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from lightning_ssl.errors import DataError

__all__ = ["DataError", "data_errors"]


@contextmanager
def data_errors() -> Iterator[None]:
    """Re-raise the DataError that MONAI wrapped in its RuntimeError("applying transform ...")."""
    try:
        yield
    except RuntimeError as error:
        cause: BaseException | None = error
        while cause is not None and not isinstance(cause, DataError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
