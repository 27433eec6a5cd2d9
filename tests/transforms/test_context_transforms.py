"""Properties of the batched context restoration corruption (disjoint patch swaps)."""

from __future__ import annotations

import itertools

import pytest
import torch

from lightning_ssl.transforms.context import (
    ContextSwap,
    ContextSwapConfig,
    context_swap,
    default_patch_size,
    swap_boxes,
)


def gen(seed: int) -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)


def distinct_values(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """An image whose voxels all have different values."""
    return torch.randperm(torch.Size(shape).numel(), generator=gen(seed)).double().view(shape)


def overlapping(first: torch.Tensor, second: torch.Tensor, patch: list[int]) -> torch.Tensor:
    """Whether the boxes at corners ``first`` and ``second`` (B, D) of size ``patch`` share a voxel, per sample."""
    return ((first - second).abs() < torch.tensor(patch)).all(dim=1)


def box(corner: torch.Tensor, patch: list[int]) -> tuple[slice, ...]:
    """Index of the box of size ``patch`` at ``corner`` (D,) within one image (C, *spatial)."""
    return (slice(None), *(slice(start, start + side) for start, side in zip(corner.tolist(), patch)))


def test_zero_swaps_returns_the_input_values_and_never_modifies_the_input() -> None:
    x = torch.rand(3, 2, 16, 16, generator=gen(0))
    before = x.clone()
    assert torch.equal(context_swap(x, ContextSwapConfig(swaps=0)), before)
    context_swap(x, ContextSwapConfig(swaps=5), gen(1))
    assert torch.equal(x, before)


@pytest.mark.parametrize("shape", [(4, 2, 32, 24), (3, 1, 16, 16, 12)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intensities_of_every_sample_and_channel_are_only_permuted(shape: tuple[int, ...], seed: int) -> None:
    x = torch.rand(shape, generator=gen(100 + seed))
    out = ContextSwap(ContextSwapConfig(swaps=10))(x, gen(seed))
    assert not torch.equal(out, x)
    assert torch.equal(out.flatten(2).sort(dim=2).values, x.flatten(2).sort(dim=2).values)


@pytest.mark.parametrize(
    ("spatial", "patch"),
    [((32, 32), [4, 4]), ((9, 5, 5), [4, 3, 3]), ((5, 11), [3, 5]), ((16, 8, 12), [7, 2, 5])],
)
def test_swapped_boxes_never_overlap_lie_in_the_image_and_fall_on_both_sides(spatial: tuple[int, ...], patch: list[int]) -> None:
    first, second = swap_boxes(2000, spatial, patch, "cpu", gen(0))
    assert first.shape == second.shape == (2000, len(spatial)) and first.dtype == second.dtype == torch.long
    assert not overlapping(first, second, patch).any()
    limit = torch.tensor(spatial) - torch.tensor(patch)
    for corner in (first, second):
        assert (corner >= 0).all() and (corner <= limit).all()
    separated = (first - second).abs() >= torch.tensor(patch)
    for axis in range(len(spatial)):
        if separated[:, axis].any():
            assert (separated[:, axis] & (second[:, axis] < first[:, axis])).any()
            assert (separated[:, axis] & (second[:, axis] > first[:, axis])).any()


def test_patches_exactly_half_the_image_may_touch() -> None:
    first, second = swap_boxes(200, (8, 4), [4, 4], "cpu", gen(0))
    assert set(map(tuple, torch.cat([first, second], dim=1).tolist())) == {(0, 0, 4, 0), (4, 0, 0, 0)}


def test_corners_are_uniform_over_the_allowed_pairs() -> None:
    spatial, patch, count = (9, 4), [4, 2], 40_000
    corners = list(itertools.product(range(6), range(3)))
    partners = {a: [b for b in corners if not overlapping(torch.tensor([a]), torch.tensor([b]), patch)] for a in corners}
    allowed = [a for a in corners if partners[a]]
    assert len(allowed) < len(corners)  # the tight case: some first corners leave no room for a second patch
    expected = {(a, b): 1 / (len(allowed) * len(partners[a])) for a in allowed for b in partners[a]}
    first, second = swap_boxes(count, spatial, patch, "cpu", gen(0))
    observed: dict[tuple, float] = {}
    for pair in zip(map(tuple, first.tolist()), map(tuple, second.tolist())):
        observed[pair] = observed.get(pair, 0.0) + 1 / count
    assert set(observed) <= set(expected)
    assert sum(abs(observed.get(pair, 0.0) - p) for pair, p in expected.items()) / 2 < 0.04


@pytest.mark.parametrize(("shape", "patch"), [((4, 1, 16, 12), [4, 3]), ((3, 1, 16, 24, 8), None)])
@pytest.mark.parametrize("seed", [0, 7])
def test_one_swap_exchanges_exactly_the_two_boxes_drawn_from_the_same_seed(
    shape: tuple[int, ...], patch: list[int] | None, seed: int
) -> None:
    x = distinct_values(shape, seed)
    out = context_swap(x, ContextSwapConfig(swaps=1, patch_size=patch), gen(seed))
    patch = patch or default_patch_size(shape[2:])
    first, second = swap_boxes(shape[0], shape[2:], patch, "cpu", gen(seed))
    expected = x.clone()
    for sample in range(shape[0]):
        box_a, box_b = box(first[sample], patch), box(second[sample], patch)
        expected[sample][box_a], expected[sample][box_b] = x[sample][box_b], x[sample][box_a]
    assert torch.equal(out, expected)
    assert ((out != x).flatten(1).sum(dim=1) == 2 * torch.Size(patch).numel()).all()


def test_all_channels_of_a_sample_get_the_same_swaps() -> None:
    x = distinct_values((3, 1, 20, 20, 10))
    out = context_swap(torch.cat([x, 1000 + x], dim=1), ContextSwapConfig(swaps=10), gen(0))
    assert not torch.equal(out[:, :1], x)
    assert torch.equal(out[:, 1] - 1000, out[:, 0])


def test_same_seed_gives_the_same_output_and_different_seeds_differ() -> None:
    x = torch.rand(4, 1, 32, 32, generator=gen(0))
    config = ContextSwapConfig(swaps=10)
    assert torch.equal(context_swap(x, config, gen(3)), context_swap(x, config, gen(3)))
    assert not torch.equal(context_swap(x, config, gen(3)), context_swap(x, config, gen(4)))


@pytest.mark.parametrize(
    ("spatial", "patch", "message"),
    [
        ((16, 16), [17, 2], r"patch_size \[17, 2\] is larger than the image size \[16, 16\]"),
        ((16, 16), [9, 9], r"image size \[16, 16\] cannot hold two non-overlapping patches of size \[9, 9\]: lower patch_size"),
        ((16, 16), [4], r"patch_size \[4\] has 1 values but the image \[16, 16\] has 2 axes"),
        ((16, 16), [0, 4], r"at least 1"),
    ],
)
def test_impossible_patch_sizes_raise_a_clear_error(spatial: tuple[int, ...], patch: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        context_swap(torch.rand(2, 1, *spatial), ContextSwapConfig(swaps=0, patch_size=patch))
    with pytest.raises(ValueError, match=message):
        swap_boxes(2, spatial, patch, "cpu")


def test_default_patch_size_is_an_eighth_of_the_image_and_at_least_one() -> None:
    assert default_patch_size([64, 40, 7]) == [8, 5, 1]
    assert ContextSwapConfig().patch_size is None and ContextSwapConfig().swaps == 10


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_output_keeps_the_input_dtype_device_and_shape(dtype: torch.dtype) -> None:
    x = torch.rand(2, 3, 16, 16, 16, generator=gen(0)).to(dtype)
    out = ContextSwap()(x, gen(0))
    assert out.dtype == x.dtype and out.device == x.device and out.shape == x.shape
