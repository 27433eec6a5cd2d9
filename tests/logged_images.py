"""Reading back the images a run logged: CSV PNG files, TensorBoard event files, offline W&B runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# An offline run-*.wandb file is a LevelDB-style log (W&B ships no reader since its Go core): a 7-byte file header,
# then records cut into 32 KiB blocks, each piece behind a 7-byte header (CRC 4, length 2 little-endian, type 1).
WANDB_BLOCK = 32768
WANDB_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _wandb_payloads(data: bytes) -> Iterator[bytes]:
    offset, pending = WANDB_HEADER, b""
    while offset + WANDB_HEADER <= len(data):
        space = WANDB_BLOCK - offset % WANDB_BLOCK
        if space < WANDB_HEADER:
            offset += space
            continue
        length = int.from_bytes(data[offset + 4 : offset + 6], "little")
        kind = data[offset + 6]
        start = offset + WANDB_HEADER
        offset = start + length
        if kind == 0:
            continue
        pending = data[start:offset] if kind in (FULL, FIRST) else pending + data[start:offset]
        if kind in (FULL, LAST):
            yield pending


def wandb_history(run_file: Path) -> list[dict[str, Any]]:
    """The logged history rows of an offline W&B run file, as {"key/sub key": decoded JSON value}."""
    import wandb
    from wandb.proto.wandb_internal_pb2 import Record

    # wandb.finish() returns before W&B's background service has written the whole file (seen on a busy CI machine);
    # teardown waits for the service to finish.
    wandb.teardown()

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    rows = []
    for payload in _wandb_payloads(data):
        record = Record.FromString(payload)
        if record.WhichOneof("record_type") == "history":
            rows.append({"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item})
    return rows


def tensorboard_images(event_dir: Path, tag: str) -> list[np.ndarray]:
    """The images logged under ``tag`` in the TensorBoard event files of ``event_dir``, decoded."""
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    events = EventAccumulator(str(event_dir), size_guidance={IMAGES: 0})
    events.Reload()
    return [np.asarray(Image.open(BytesIO(event.encoded_image_string))) for event in events.Images(tag)]


def assert_readable(image: np.ndarray, rows: int, columns: int) -> None:
    """A picture that is not one flat colour, with room for >= 128 px per tile."""
    assert image.dtype == np.uint8 and image.ndim == 3
    assert image.min() < 64 and image.max() > 192, "the picture is (nearly) one flat colour"
    height, width = image.shape[:2]
    assert height >= 128 * rows and width >= 128 * columns, f"{width}x{height} px is small for {rows} rows x {columns} columns"
