"""Reading checkpoint files without running code: ``torch.load(weights_only=True)`` and nothing else, ever.

A full unpickle runs whatever the file's author put in it (``os.system`` and friends), so a file that holds anything
but tensors and plain containers is refused with one line that says how to re-save it.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lightning_ssl.errors import one_line

RESAVE_HINT = (
    "if you trust its author, open it yourself with weights_only=False, replace the other objects by plain "
    "dicts, lists and numbers, and save it again with torch.save"
)


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be read as tensors and plain containers; it was not unpickled."""


def load_weights_only(path: str | Path) -> Any:
    """The content of a ``torch.save`` file read with ``weights_only=True``; one-line errors for a missing,
    unreadable or code-carrying file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f"it asks to import {found.group(1)}" if found else one_line(error)[:160]
        raise UnsafeCheckpointError(
            f"refusing {path}: it holds objects other than tensors and plain containers ({what}); "
            f"it was not unpickled, so no code in it ran; {RESAVE_HINT}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise UnsafeCheckpointError(f"cannot read {path} as a torch checkpoint ({one_line(error)[:160]}): is the file complete?") from None


def load_lightning_checkpoint(path: str | Path) -> Mapping[str, Any]:
    """A Lightning checkpoint (a mapping with a ``state_dict``), read weights-only."""
    content = load_weights_only(path)
    if not isinstance(content, Mapping) or not isinstance(content.get("state_dict"), Mapping):
        raise UnsafeCheckpointError(f"{path} has no 'state_dict': it is not a Lightning checkpoint")
    return content
