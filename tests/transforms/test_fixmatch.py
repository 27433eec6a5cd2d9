"""FixMatch views: batched, per-sample random, in range, on the batch's device; each RandAugment op does its job."""

from __future__ import annotations

import pytest
import torch

from lightning_ssl.transforms.fixmatch import (
    RAND_AUGMENT_OPS,
    FixMatchViewConfig,
    FixMatchViews,
    cutout,
    equalize,
    rand_augment_round,
    weak_view,
)


def _images(batch: int = 6, size: int = 32) -> torch.Tensor:
    torch.manual_seed(0)
    ramp = torch.linspace(0.1, 0.9, size)
    image = (ramp[:, None] * ramp[None, :]).expand(batch, 1, size, size).clone()
    return (image + 0.05 * torch.rand(batch, 1, size, size)).clamp(0, 1)


def test_views_keep_shape_dtype_range_and_are_reproducible() -> None:
    images = _images()
    views = FixMatchViews(FixMatchViewConfig())
    for make in (views.weak, views.strong):
        first = make(images, torch.Generator().manual_seed(1))
        again = make(images, torch.Generator().manual_seed(1))
        assert first.shape == images.shape and first.dtype == images.dtype
        assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
        assert torch.equal(first, again) and not torch.equal(first, images)


def test_each_image_gets_its_own_parameters_and_strong_distorts_more() -> None:
    images = _images(batch=16)
    config = FixMatchViewConfig()
    weak = weak_view(images, config, torch.Generator().manual_seed(2))
    strong = FixMatchViews(config).strong(images, torch.Generator().manual_seed(2))
    assert not torch.allclose(weak[0], weak[1]) and not torch.allclose(strong[0], strong[1])
    assert (strong - images).abs().mean() > (weak - images).abs().mean()


def test_weak_view_with_certain_flip_and_no_motion_is_a_mirror() -> None:
    images = _images()
    config = FixMatchViewConfig(flip_prob=1.0, weak_rotation=0.0, weak_translation=0.0)
    assert torch.allclose(weak_view(images, config), images.flip(-1), atol=1e-5)


@pytest.mark.parametrize("name", RAND_AUGMENT_OPS)
def test_every_op_stays_in_range_and_only_identity_is_a_no_op(name: str) -> None:
    images = _images()
    op = torch.full((images.shape[0],), RAND_AUGMENT_OPS.index(name))
    out = rand_augment_round(images, op, torch.full((images.shape[0],), 0.9), torch.ones(images.shape[0]))
    assert out.shape == images.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert torch.equal(out, images) == (name == "identity")


def test_one_round_applies_each_image_its_own_op() -> None:
    images = _images(batch=2)
    op = torch.tensor([RAND_AUGMENT_OPS.index("identity"), RAND_AUGMENT_OPS.index("solarize")])
    out = rand_augment_round(images, op, torch.ones(2), torch.ones(2))
    assert torch.equal(out[0], images[0]) and torch.allclose(out[1], 1.0 - images[1])


def test_equalize_flattens_the_histogram_and_keeps_constant_images() -> None:
    images = torch.cat([torch.rand(1, 1, 32, 32) * 0.3, torch.full((1, 1, 32, 32), 0.4)])
    out = equalize(images)
    assert float(out[0].max()) == pytest.approx(1.0) and float(out[0].min()) == pytest.approx(0.0)
    assert torch.equal(out[1], images[1])


def test_cutout_paints_a_gray_square_of_the_asked_size() -> None:
    images = torch.zeros(8, 1, 32, 32)
    out = cutout(images, 0.25, torch.Generator().manual_seed(0))
    painted = (out == 0.5).flatten(1).sum(dim=1)
    assert bool((painted > 0).all()) and bool((painted <= 8 * 8).all())
    assert torch.equal(cutout(images, 0.0), images)


def test_non_2d_input_and_bad_magnitude_are_refused() -> None:
    with pytest.raises(ValueError, match="2D images"):
        weak_view(torch.rand(2, 1, 8, 8, 8), FixMatchViewConfig())
    with pytest.raises(ValueError, match="magnitude"):
        FixMatchViews(FixMatchViewConfig(magnitude=11))
