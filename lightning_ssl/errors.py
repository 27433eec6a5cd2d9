"""The errors a user can fix, each shown as one line that says what is wrong and what to do (imports nothing)."""

from __future__ import annotations

import re


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message that says how to fix it."""


class DataError(ValueError):
    """Input data that cannot be used (missing, unreadable, inconsistent), found before training starts."""


WORKER_PREFIX = re.compile(r"^Caught \w+ in DataLoader worker process \d+")
QUALIFIED_TYPE = re.compile(r"^[\w.]+(Error|Exception): ")


def one_line(error: BaseException) -> str:
    """An exception's message as one line (the first line of its text, white space folded), or its type's name.

    An error re-raised from a DataLoader worker ("Caught DataError in DataLoader worker process 1" and the worker's
    traceback) gives the worker's own message.
    """
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if WORKER_PREFIX.match(lines[0]):
        return " ".join(QUALIFIED_TYPE.sub("", lines[-1].strip()).split())
    return " ".join(lines[0].split())
