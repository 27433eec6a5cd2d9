"""Image logging: a method's preview drawn readable (2D, 3D), and logged through CSV, TensorBoard and offline W&B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny
from logged_images import assert_readable, tensorboard_images, wandb_history
from PIL import Image

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.methods.preview import Preview
from lightning_ssl.train import pretrain
from lightning_ssl.train.figures import describe_preview, render_preview

TILE = 128 * 128
TWO_D = ("data.spatial_dims=2", "data.patch_size=[32,32]")
RESTORATION_ROWS = "rows from top: original, corrupted, restored"


def _pixels_at(image: np.ndarray, grey: float) -> int:
    """How many pixels show the grey level ``grey`` in [0, 1] (as 0..255, within one step)."""
    return int((np.abs(image.astype(int) - 255 * grey) <= 1).all(axis=-1).sum())


def test_a_2d_preview_draws_each_sample_as_a_large_tile_with_grey_levels_as_0_to_255() -> None:
    preview = Preview("levels", {"black": torch.zeros(6, 1, 28, 20), "mid grey": torch.full((6, 1, 28, 20), 0.5)})
    image = render_preview(preview, max_samples=4)
    assert_readable(image, rows=2, columns=4)
    assert _pixels_at(image, 0.0) >= 4 * TILE and _pixels_at(image, 0.5) >= 4 * TILE
    assert describe_preview(preview) == "levels: rows from top: black, mid grey; columns: 4 validation samples"


def test_a_3d_preview_shows_the_three_orthogonal_middle_slices_of_each_sample() -> None:
    volume = torch.zeros(2, 1, 24, 24, 24)
    volume[:, :, 12], volume[:, :, :, 12], volume[:, :, :, :, 12] = 0.25, 0.5, 0.75
    preview = Preview("volumes", {"image": volume, "mask": (volume > 0.6).float()})
    image = render_preview(preview)
    assert_readable(image, rows=2, columns=2 * 3)
    # the middle slice across axis 0 is 0.25 but for the lines where the other two cut it, and so on
    for grey in (0.25, 0.5, 0.75):
        assert _pixels_at(image, grey) >= 2 * 0.8 * TILE, grey
    assert "columns: 2 validation samples, each as its middle slices across spatial axes 0, 1 and 2" in describe_preview(preview)


def test_per_sample_labels_and_multi_channel_rows_are_named_in_the_caption() -> None:
    preview = Preview("classes", {"image": torch.rand(2, 4, 16, 16)}, ["true normal, predicted pneumonia", "true normal, predicted normal"])
    caption = describe_preview(preview)
    assert "sample 1: true normal, predicted pneumonia; sample 2: true normal, predicted normal" in caption
    assert "show their first channel" in caption
    assert_readable(render_preview(preview), rows=1, columns=2)


@pytest.mark.slow
def test_csv_logger_writes_a_readable_2d_png_with_its_caption(tmp_path: Path) -> None:
    result = pretrain(build_config(tiny(tmp_path, "trainer.max_steps=2", "zoo.publish=false", *TWO_D)))
    # the sanity check's picture (step 0), then the validation after the last step's
    first, png = sorted(result.run_dir.glob("logs/version_0/images/val_original_corrupted_restored_step*.png"))
    assert first.name.endswith("step0000000.png") and png.name.endswith("step0000002.png")
    picture = Image.open(png)
    assert_readable(np.asarray(picture.convert("RGB")), rows=3, columns=2)
    assert RESTORATION_ROWS in picture.text["Description"] and picture.text["Title"] == "val/original_corrupted_restored"


@pytest.mark.slow
def test_no_picture_when_image_logging_is_off(tmp_path: Path) -> None:
    result = pretrain(build_config(tiny(tmp_path, "trainer.max_steps=1", "zoo.publish=false", "method.log_images_every_n_epochs=0")))
    assert (result.run_dir / "logs" / "version_0").is_dir() and not list(result.run_dir.rglob("*.png"))


@pytest.mark.slow
def test_tensorboard_logger_gets_a_readable_3d_picture(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    runs = tmp_path / "runs"
    assert main(["pretrain", *tiny(runs, "trainer.max_steps=1", "logger=tensorboard", "zoo.publish=false")]) == 0
    (run_dir,) = (runs / "genesis_phantom_ct").iterdir()
    assert list(run_dir.glob("tensorboard/version_0/events.out.tfevents.*"))
    # the sanity check's picture, then the validation after the last step's
    first, last = tensorboard_images(run_dir / "tensorboard" / "version_0", "val/original_corrupted_restored")
    assert_readable(last, rows=3, columns=2 * 3)


@pytest.mark.slow
def test_offline_wandb_logger_gets_a_readable_picture_with_its_caption(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    runs = tmp_path / "runs"
    assert main(["pretrain", *tiny(runs, "trainer.max_steps=1", "logger=wandb", "zoo.publish=false", *TWO_D)]) == 0
    assert list(tmp_path.rglob("offline-run-*")), "no offline W&B run was written"
    (run_file,) = tmp_path.rglob("offline-run-*/run-*.wandb")
    # the sanity check's picture, then the validation after the last step's
    history = wandb_history(run_file)
    pictures = [row for row in history if "val/original_corrupted_restored/captions" in row]
    assert len(pictures) == 2, f"{len(pictures)} pictures in {len(history)} history rows: {[sorted(row) for row in history]}"
    logged = pictures[-1]
    (caption,) = logged["val/original_corrupted_restored/captions"]
    assert RESTORATION_ROWS in caption
    (media,) = logged["val/original_corrupted_restored/filenames"]
    image = np.asarray(Image.open(run_file.parent / "files" / media).convert("RGB"))
    assert_readable(image, rows=3, columns=2)
