"""Properties of the batched SimCLR / BYOL views for 2D and 3D grayscale images."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lightning_ssl.transforms.views import (
    HORIZONTAL_AXIS,
    ViewConfig,
    ViewGenerator,
    color_jitter,
    gaussian_blur,
    intensity_jitter,
    random_flip,
    random_resized_crop,
)

SHAPES = {2: (4, 1, 32, 32), 3: (3, 2, 16, 16, 8)}
GEOMETRY_ONLY = {"intensity_prob": 0.0}


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(dims: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(SHAPES[dims], generator=generator(seed), dtype=dtype)


def neighbour_difference(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels along every spatial axis (high-frequency energy)."""
    return sum(x.diff(dim=axis).abs().mean() for axis in range(2, x.ndim))


@pytest.mark.parametrize("dims, dtype", [(2, torch.float32), (3, torch.float32), (2, torch.float64)])
def test_view_shapes_dtype_and_range(dims, dtype):
    x = images(dims, dtype=dtype)
    config = ViewConfig(small_crops=3, blur_prob=0.5, color_jitter_prob=0.5, noise_std=0.05)
    views = ViewGenerator(config, dims)(x, generator(1))
    small = tuple(round(n * 0.5) for n in x.shape[2:])
    assert [v.shape for v in views] == [x.shape] * 2 + [x.shape[:2] + small] * 3
    for view in views:
        assert view.dtype == dtype and view.device == x.device
        assert view.min() >= 0 and view.max() <= 1


def test_wrong_dimensionality_is_rejected():
    with pytest.raises(ValueError, match="spatial"):
        ViewGenerator(ViewConfig(), 3)(images(2))
    with pytest.raises(ValueError, match="spatial_dims"):
        ViewGenerator(ViewConfig(), 1)


@pytest.mark.parametrize("dims", [2, 3])
def test_views_differ_and_are_reproducible(dims):
    x, make = images(dims), ViewGenerator(ViewConfig(small_crops=1), dims)
    first, second, small = make(x, generator(5))
    assert not torch.allclose(first, second)
    for a, b in zip(make(x, generator(5)), (first, second, small)):
        assert torch.equal(a, b)
    assert not torch.allclose(make(x, generator(6))[0], first)


@pytest.mark.parametrize("dims", [2, 3])
def test_full_crop_is_identity(dims):
    x = images(dims)
    out = random_resized_crop(x, [1.0, 1.0], [1.0, 1.0], x.shape[2:], generator(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_smaller_crop_zooms_in():
    gradient = ((torch.arange(32) + 0.5) / 32).expand(8, 1, 32, 32)
    out = random_resized_crop(gradient, [0.25, 0.25], [1.0, 1.0], [32, 32], generator(0))
    span_in = gradient.amax(dim=(1, 2, 3)) - gradient.amin(dim=(1, 2, 3))
    span_out = out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3))
    torch.testing.assert_close(span_out / span_in, torch.full((8,), 0.5), atol=0.05, rtol=0)
    assert not torch.allclose(out[0], out[1])


def test_crop_ratio_sets_the_box_shape():
    ramp = (torch.arange(32) + 0.5) / 32
    x = torch.stack([ramp.expand(32, 32), ramp[:, None].expand(32, 32)]).expand(8, 2, 32, 32)
    out = random_resized_crop(x, [0.25, 0.25], [4.0, 4.0], [32, 32], generator(0))
    span = (out.amax(dim=(2, 3)) - out.amin(dim=(2, 3))) / (x.amax(dim=(2, 3)) - x.amin(dim=(2, 3)))
    torch.testing.assert_close(span, torch.tensor([1.0, 0.25]).expand(8, 2), atol=0.05, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_flip_probabilities(dims):
    x = images(dims)
    for axis in range(dims):
        assert torch.equal(random_flip(x, [axis], 1.0, generator(0)), x.flip(2 + axis))
    assert torch.equal(random_flip(x, list(range(dims)), 0.0, generator(0)), x)
    many = torch.rand(400, 1, 4, 4, generator=generator(1))
    flipped = random_flip(many, [1], 0.5, generator(2))
    fraction = (flipped == many.flip(3)).flatten(1).all(dim=1).float().mean()
    assert 0.35 < fraction < 0.65


@pytest.mark.parametrize("dims, axis", [(2, -1), (3, 2)])
def test_default_flip_is_horizontal(dims, axis):
    x = images(dims)
    config = ViewConfig(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip_prob=1.0, **GEOMETRY_ONLY)
    for view in ViewGenerator(config, dims)(x, generator(0)):
        torch.testing.assert_close(view, x.flip(axis), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_defaults_are_crop_flip_and_intensity_only(dims):
    config = ViewConfig()
    assert config.blur_prob == 0 and config.color_jitter_prob == 0 and config.small_crops == 0
    x, size = images(dims), images(dims).shape[2:]
    views = ViewGenerator(config, dims)(x, generator(3))
    g = generator(3)
    for view in views:
        expected = random_resized_crop(x, config.crop_scale, config.crop_ratio, size, g)
        expected = intensity_jitter(random_flip(expected, [HORIZONTAL_AXIS[dims]], config.flip_prob, g), config, g)
        assert torch.equal(view, expected)
    for switched_on in ({"blur_prob": 1.0}, {"color_jitter_prob": 1.0}):
        other = ViewGenerator(dataclasses.replace(config, **switched_on), dims)(x, generator(3))
        assert not torch.allclose(other[0], views[0])


@pytest.mark.parametrize("dims", [2, 3])
def test_blur_smooths_noise_and_keeps_constants(dims):
    x = images(dims)
    blurred = gaussian_blur(x, [1.0, 2.0], 1.0, generator(0))
    assert blurred.shape == x.shape
    assert neighbour_difference(blurred) < 0.5 * neighbour_difference(x)
    constant = torch.full_like(x, 0.3)
    torch.testing.assert_close(gaussian_blur(constant, [0.1, 2.0], 1.0, generator(0)), constant)
    assert torch.equal(gaussian_blur(x, [1.0, 2.0], 0.0, generator(0)), x)


def test_blur_sigma_is_per_sample():
    x = images(2)[:1].expand(16, -1, -1, -1)
    energy = torch.stack([neighbour_difference(b[None]) for b in gaussian_blur(x, [0.1, 2.0], 1.0, generator(0))])
    assert energy.max() > 2 * energy.min()


def test_color_jitter_is_stronger_than_intensity_jitter():
    x = torch.rand(64, 1, 16, 16, generator=generator(0)) * 0.5 + 0.25
    mild = intensity_jitter(x, ViewConfig(intensity_prob=1.0), generator(1))
    strong = color_jitter(x, 0.8, 1.0, generator(1))
    assert strong.min() >= 0 and strong.max() <= 1
    assert (strong - x).abs().mean() > 2 * (mild - x).abs().mean()
    assert torch.equal(color_jitter(x, 0.8, 0.0, generator(1)), x)


@pytest.mark.parametrize("dims", [2, 3])
def test_intensity_jitter_range_and_identity(dims):
    x = images(dims)
    config = ViewConfig(intensity_prob=1.0, brightness=0.5, contrast=0.8, gamma=0.5, noise_std=0.2)
    out = intensity_jitter(x, config, generator(0))
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, x)
    assert torch.equal(intensity_jitter(x, ViewConfig(intensity_prob=0.0), generator(0)), x)


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_share_geometry(dims):
    x = images(dims)[:, :1].repeat(1, 2, *([1] * dims))
    config = ViewConfig(small_crops=2, flip_axes=list(range(dims)), **GEOMETRY_ONLY)
    for view in ViewGenerator(config, dims)(x, generator(0)):
        assert torch.equal(view[:, 0], view[:, 1])


@pytest.mark.parametrize("dims", [2, 3])
def test_samples_get_their_own_randomness(dims):
    x = images(dims)[:1].expand(SHAPES[dims][0], -1, *([-1] * dims)).contiguous()
    config = ViewConfig(small_crops=1, blur_prob=0.5, color_jitter_prob=0.5)
    for view in ViewGenerator(config, dims)(x, generator(0)):
        assert all(not torch.allclose(view[0], view[i]) for i in range(1, len(view)))


@pytest.mark.parametrize(
    "op",
    [
        lambda x, g: intensity_jitter(x, ViewConfig(intensity_prob=0.5), g),
        lambda x, g: gaussian_blur(x, [0.5, 1.0], 0.5, g),
        lambda x, g: color_jitter(x, 0.8, 0.5, g),
    ],
    ids=["intensity", "blur", "color"],
)
def test_probability_is_drawn_per_sample(op):
    x = torch.rand(1, 1, 8, 8, generator=generator(0)).expand(400, -1, -1, -1).contiguous()
    changed = (op(x, generator(1)) != x).flatten(1).any(dim=1).float().mean()
    assert 0.35 < changed < 0.65
