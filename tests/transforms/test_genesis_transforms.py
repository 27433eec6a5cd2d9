"""Properties of the batched Models Genesis corruptions, and agreement with a NumPy port of the official code."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lightning_ssl.transforms.genesis as genesis_module
from lightning_ssl.transforms.genesis import (
    GenesisCorruption,
    GenesisCorruptionConfig,
    bezier_intensity,
    inpaint,
    local_pixel_shuffle,
    outpaint,
    random_flip,
    shuffle_windows,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _official_genesis_numpy as official

NO_CORRUPTION = dict(flip_rate=0.0, local_rate=0.0, nonlinear_rate=0.0, paint_rate=0.0)

PIECES: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "flip": lambda x, g: random_flip(x, 0.9, g),
    "local": lambda x, g: local_pixel_shuffle(x, generator=g),
    "bezier": lambda x, g: bezier_intensity(x, generator=g),
    "inpaint": lambda x, g: inpaint(x, g),
    "outpaint": lambda x, g: outpaint(x, g),
    "corruption": lambda x, g: GenesisCorruption()(x, g)[0],
}


def gen(seed: int) -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)


def distinct_values(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """An image in [0, 1) whose voxels all have different values."""
    n = int(np.prod(shape))
    return (torch.randperm(n, generator=gen(seed)).float() / n).view(shape)


def border_shell(spatial: tuple[int, ...], width: int = 3) -> torch.Tensor:
    """Boolean mask of the voxels less than ``width`` from the border."""
    inner = torch.zeros(spatial, dtype=torch.bool)
    inner[tuple(slice(width, n - width) for n in spatial)] = True
    return ~inner


def box_counts(mask: torch.Tensor, box: tuple[int, ...]) -> torch.Tensor:
    """Number of true voxels in every ``box``-sized window of ``mask`` (B, *spatial), by prefix sums."""
    counts = mask.long()
    for axis, side in enumerate(box, start=1):
        prefix = F.pad(counts.cumsum(dim=axis), [0, 0] * (counts.dim() - axis - 1) + [1, 0])
        counts = prefix.narrow(axis, side, prefix.shape[axis] - side) - prefix.narrow(axis, 0, prefix.shape[axis] - side)
    return counts


def opening(mask: torch.Tensor, box: tuple[int, ...]) -> torch.Tensor:
    """Union of all ``box``-sized boxes that fit inside ``mask`` (B, *spatial); equals ``mask`` iff it is such a union."""
    fits = box_counts(mask, box) == int(np.prod(box))
    padded = F.pad(fits.long(), [pad for side in reversed(box) for pad in (side - 1, side - 1)])
    return box_counts(padded, box) > 0


def changed_fraction(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Fraction of voxels that differ, per sample."""
    return (before != after).flatten(1).double().mean(dim=1)


# Intensity curve


def test_bezier_curve_is_monotonic_and_maps_ends_to_ends() -> None:
    ramp = torch.linspace(0, 1, 4096).view(1, 1, 64, 64).expand(256, 1, 64, 64).contiguous()
    directions = []
    for seed in range(2):
        mapped = bezier_intensity(ramp, generator=gen(seed)).flatten(1)
        steps = mapped.diff(dim=1)
        assert ((steps >= 0).all(dim=1) | (steps <= 0).all(dim=1)).all()
        assert mapped.min() >= 0 and mapped.max() <= 1
        ends = mapped[:, [0, -1]]
        assert ((ends == torch.tensor([0.0, 1.0])).all(dim=1) | (ends == torch.tensor([1.0, 0.0])).all(dim=1)).all()
        directions.append(ends[:, 0] == 1)
    assert 0.4 < torch.cat(directions).double().mean() < 0.6


def test_bezier_curves_are_distributed_like_the_official() -> None:
    count, quantiles = 800, [250, 500, 750]
    ramp = np.linspace(0, 1, 1001)
    ours = bezier_intensity(torch.tensor(ramp).view(1, 1, 7, 143).expand(count, 1, 7, 143), generator=gen(0)).flatten(1).numpy()
    rng = random.Random(0)
    theirs = np.stack([official.nonlinear_transformation(ramp, rng, samples=2_000) for _ in range(count)])
    for curves in (ours, theirs):
        assert set(np.unique(curves[:, 0])) <= {0.0, 1.0}
    assert abs((ours[:, 0] == 1).mean() - (theirs[:, 0] == 1).mean()) < 0.06
    for inverted in (False, True):
        ours_mean = ours[(ours[:, 0] == 1) == inverted][:, quantiles].mean(axis=0)
        theirs_mean = theirs[(theirs[:, 0] == 1) == inverted][:, quantiles].mean(axis=0)
        np.testing.assert_allclose(ours_mean, theirs_mean, atol=0.04)


# Local pixel shuffling


def test_shuffle_windows_disjoint_windows_are_permuted_in_place() -> None:
    x = distinct_values((2, 1, 12, 12, 8))
    starts = torch.tensor([[[0, 0, 0], [4, 5, 1], [8, 8, 4]], [[1, 1, 1], [6, 0, 0], [0, 7, 5]]])
    sizes = torch.tensor([[[3, 3, 2], [2, 4, 3], [4, 4, 4]], [[4, 2, 2], [5, 5, 5], [1, 3, 3]]])
    out = shuffle_windows(x, starts, sizes, gen(0))
    outside = torch.ones(2, 12, 12, 8, dtype=torch.bool)
    windows_changed = 0
    for b, w in itertools.product(range(2), range(3)):
        box = tuple(slice(int(s), int(s + n)) for s, n in zip(starts[b, w], sizes[b, w]))
        before, after = x[b, 0][box], out[b, 0][box]
        assert torch.equal(before.flatten().sort().values, after.flatten().sort().values)
        windows_changed += int(not torch.equal(before, after))
        outside[b][box] = False
    assert torch.equal(out[:, 0][outside], x[:, 0][outside])
    assert windows_changed >= 1


def test_shuffle_windows_overlapping_windows_take_values_from_the_last_cover() -> None:
    x = distinct_values((1, 1, 10, 10, 10), seed=1)
    sizes = torch.randint(1, 5, (1, 40, 3), generator=gen(2))
    starts = (torch.rand(1, 40, 3, generator=gen(3)) * (10 - sizes + 1)).long()
    out = shuffle_windows(x, starts, sizes, gen(4))
    last = torch.full((10, 10, 10), -1)
    for w in range(40):
        last[tuple(slice(int(s), int(s + n)) for s, n in zip(starts[0, w], sizes[0, w]))] = w
    changed = out[0, 0] != x[0, 0]
    assert changed.any()
    assert (last[changed] >= 0).all()
    for w in last[changed].unique().tolist():
        window = x[0, 0][tuple(slice(int(s), int(s + n)) for s, n in zip(starts[0, w], sizes[0, w]))]
        assert torch.isin(out[0, 0][last == w], window.flatten()).all()


def test_shuffle_windows_applies_one_permutation_to_all_channels() -> None:
    first = distinct_values((3, 1, 32, 32, 24))
    x = torch.cat([first, 2 * first + 1, -first], dim=1)
    out = local_pixel_shuffle(x, generator=gen(0))
    assert not torch.equal(out[:, 0], x[:, 0])
    assert torch.equal(out[:, 1], 2 * out[:, 0] + 1)
    assert torch.equal(out[:, 2], -out[:, 0])


def index_image(batch: int, channels: int, spatial: tuple[int, ...]) -> torch.Tensor:
    """Voxel i of the flattened batch holds i in channel 0 and -i in the other channels (exact in float64)."""
    index = torch.arange(batch * int(np.prod(spatial)), dtype=torch.float64).view(batch, 1, *spatial)
    return torch.cat([index] + [-index] * (channels - 1), dim=1)


def assert_shuffled_from_last_cover(out: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor) -> None:
    """``out`` = shuffle_windows(index_image(...)): every voxel holds a distinct voxel of the last window covering it."""
    batch, windows, dims = starts.shape
    spatial = out.shape[2:]
    source = out[:, 0].long()
    assert torch.equal(out[:, 1:], -out[:, :1].expand_as(out[:, 1:]))
    last = torch.full((batch, *spatial), -1)
    for b, w in itertools.product(range(batch), range(windows)):
        last[b][tuple(slice(int(s), int(s + n)) for s, n in zip(starts[b, w], sizes[b, w]))] = w
    covered = last >= 0
    own = torch.arange(source.numel()).view_as(source)
    assert torch.equal(source[~covered], own[~covered])
    sample, *coords = torch.unravel_index(source, (batch, *spatial))
    samples = torch.arange(batch).view(batch, *[1] * dims).expand_as(last)
    assert torch.equal(sample, samples)
    low = starts[samples, last.clamp(min=0)]
    inside = (torch.stack(coords, dim=-1) >= low) & (torch.stack(coords, dim=-1) < low + sizes[samples, last.clamp(min=0)])
    assert inside.all(dim=-1)[covered].all()
    # Within one window the permutation is one-to-one: no source is used twice.
    writes = (samples * windows + last)[covered] * source.numel() + source[covered]
    assert writes.unique().numel() == writes.numel()


@pytest.mark.parametrize(
    ("batch", "spatial", "windows", "max_side"),
    [
        (1, (128, 128, 64), 2_500, 12),  # > 2**(31 - 20) windows of 2**20 voxels: 64-bit write keys
        (3, (20, 14), 60, 5),  # 2D windows
        (2, (6, 5, 4), 1, 4),  # a single window per sample
        (2, (8, 8, 8), 100, 2),  # many windows of one voxel
    ],
)
def test_shuffle_windows_reads_each_voxel_from_the_last_cover(batch: int, spatial: tuple[int, ...], windows: int, max_side: int) -> None:
    sizes = torch.randint(1, max_side + 1, (batch, windows, len(spatial)), generator=gen(0))
    starts = (torch.rand(batch, windows, len(spatial), generator=gen(1)) * (torch.tensor(spatial) - sizes + 1)).long()
    x = index_image(batch, 2, spatial)
    out = shuffle_windows(x, starts, sizes, gen(2))
    assert_shuffled_from_last_cover(out, starts, sizes)
    assert not torch.equal(out, x)


def test_shuffle_windows_permutations_are_uniform_and_independent() -> None:
    # Two disjoint three-voxel windows of different shapes (so one permutation group), in many samples.
    samples = 6_000
    starts = torch.tensor([[0, 1], [1, 0]]).expand(samples, 2, 2)
    sizes = torch.tensor([[1, 3], [3, 1]]).expand(samples, 2, 2)
    x = index_image(samples, 1, (4, 4))
    local = (shuffle_windows(x, starts, sizes, gen(0)) - x[:, :, :1, :1]).long()[:, 0]
    orders = [local[:, 0, 1:] - 1, local[:, 1:, 0] // 4 - 1]  # the window voxels' sources, numbered 0..2
    codes = [order[:, 0] * 3 + order[:, 1] for order in orders]  # the first two sources identify the permutation

    def chi_square(code: torch.Tensor, cells: list[int]) -> float:
        counts = torch.bincount(code, minlength=max(cells) + 1).double()
        assert counts.sum() == counts[cells].sum()
        return (((counts[cells] - samples / len(cells)) ** 2) / (samples / len(cells))).sum().item()

    permutations = [a * 3 + b for a, b in itertools.permutations(range(3), 2)]
    # Thresholds: chi-square quantiles at p = 1e-4 for 5 and 35 degrees of freedom.
    assert chi_square(codes[0], permutations) < 26
    assert chi_square(codes[1], permutations) < 26
    assert chi_square(codes[0] * 9 + codes[1], [a * 9 + b for a in permutations for b in permutations]) < 76


def test_local_shuffle_draws_uniform_sides_and_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: dict[str, torch.Tensor] = {}

    def capture(x: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        drawn.update(starts=starts, sizes=sizes)
        return x

    monkeypatch.setattr("lightning_ssl.transforms.genesis.shuffle_windows", capture)
    local_pixel_shuffle(torch.zeros(4, 1, 64, 64, 32), generator=gen(0))
    starts, sizes = drawn["starts"], drawn["sizes"]
    assert starts.shape == sizes.shape == (4, 10_000, 3)
    for axis, (length, side) in enumerate([(64, 6), (64, 6), (32, 3)]):
        counts = torch.bincount(sizes[..., axis].flatten() - 1).double()
        assert len(counts) == side and ((counts / counts.mean() - 1).abs() < 0.05).all()
        room = length - sizes[..., axis] + 1
        assert (starts[..., axis] >= 0).all() and (starts[..., axis] < room).all()
        assert abs(((starts[..., axis] + 0.5) / room).mean().item() - 0.5) < 0.01
        assert (starts[..., axis] == room - 1).any()


@pytest.mark.parametrize(("spatial", "reference_windows"), [((64, 64, 32), 10_000), ((64, 64, 16), 5_000)])
def test_local_shuffle_window_count_scales_with_volume(spatial: tuple[int, ...], reference_windows: int) -> None:
    x = distinct_values((1, 1, *spatial))
    default = changed_fraction(x, local_pixel_shuffle(x, generator=gen(0))).item()
    explicit = changed_fraction(x, local_pixel_shuffle(x, reference_windows, gen(1))).item()
    fewer = changed_fraction(x, local_pixel_shuffle(x, reference_windows // 4, gen(2))).item()
    assert default > 0.5
    assert abs(default - explicit) < 0.02
    assert fewer < default - 0.2


def test_local_shuffle_changes_as_many_voxels_as_the_official() -> None:
    x = distinct_values((2, 1, 64, 64, 32))
    ours = changed_fraction(x, local_pixel_shuffle(x, generator=gen(0))).mean().item()
    rng, np_rng = random.Random(0), np.random.RandomState(0)
    theirs = np.mean([(official.local_pixel_shuffling(sample, rng, np_rng) != sample).mean() for sample in x.numpy()])
    assert abs(ours - theirs) < 0.05 * theirs


# In- and out-painting


@pytest.mark.parametrize("spatial", [(64, 64, 32), (48, 40)])
def test_inpaint_fills_boxes_inside_the_interior(spatial: tuple[int, ...]) -> None:
    x = torch.full((24, 1, *spatial), 2.0)
    out = inpaint(x, gen(0))
    noise = (out != 2.0)[:, 0]
    assert not noise[:, border_shell(spatial)].any()
    assert noise.flatten(1).any(dim=1).double().mean() > 0.8
    assert ((out[:, 0][noise] >= 0) & (out[:, 0][noise] < 1)).all()
    assert torch.equal(opening(noise, tuple(n // 6 for n in spatial)), noise)


@pytest.mark.parametrize("spatial", [(64, 64, 32), (48, 40)])
def test_outpaint_keeps_only_boxes_inside_the_interior(spatial: tuple[int, ...]) -> None:
    x = torch.full((24, 1, *spatial), 2.0)
    out = outpaint(x, gen(0))
    kept = (out == 2.0)[:, 0]
    assert not kept[:, border_shell(spatial)].any()
    assert kept.flatten(1).any(dim=1).all()
    assert torch.equal(opening(kept, tuple(n - 4 * n // 7 for n in spatial)), kept)


def test_painted_fractions_match_the_official() -> None:
    count, spatial = 160, (40, 40, 24)
    x = torch.full((count, 1, *spatial), 2.0)
    ours_in = changed_fraction(x, inpaint(x, gen(0))).mean().item()
    ours_out = changed_fraction(x, outpaint(x, gen(1))).mean().item()
    rng, np_rng = random.Random(0), np.random.RandomState(0)
    sample = np.full((1, *spatial), 2.0)
    theirs_in = np.mean([(official.image_in_painting(sample.copy(), rng, np_rng) != 2.0).mean() for _ in range(count)])
    theirs_out = np.mean([(official.image_out_painting(sample.copy(), rng, np_rng) != 2.0).mean() for _ in range(count)])
    assert abs(ours_in - theirs_in) < 0.15 * theirs_in
    assert abs(ours_out - theirs_out) < 0.05 * theirs_out


# Flips and the full corruption


def flipped_axes(x: torch.Tensor, y: torch.Tensor) -> tuple[int, ...] | None:
    """The set of spatial axes along which ``y`` is ``x`` flipped, or None if it is no flip of ``x``."""
    spatial = range(2, x.dim())
    for count in range(len(spatial) + 1):
        for axes in itertools.combinations(spatial, count):
            if torch.equal(x.flip(axes) if axes else x, y):
                return tuple(a - 2 for a in axes)
    return None


@pytest.mark.parametrize("spatial", [(8, 8, 6), (8, 6)])
def test_flips_apply_to_input_and_target_alike(spatial: tuple[int, ...]) -> None:
    x = distinct_values((16, 2, *spatial))
    corruption = GenesisCorruption(GenesisCorruptionConfig(**{**NO_CORRUPTION, "flip_rate": 1.0}))
    corrupted, target = corruption(x, gen(0))
    assert torch.equal(corrupted, target)
    for before, after in zip(x, target):
        axes = flipped_axes(before.unsqueeze(0), after.unsqueeze(0))
        assert axes  # three flips in a row leave at least one axis flipped


@pytest.mark.parametrize("spatial", [(16, 16, 8), (16, 12)])
def test_zero_rates_are_the_identity(spatial: tuple[int, ...]) -> None:
    x = torch.rand(4, 1, *spatial, generator=gen(0))
    corrupted, target = GenesisCorruption(GenesisCorruptionConfig(**NO_CORRUPTION))(x, gen(1))
    assert torch.equal(corrupted, x) and torch.equal(target, x)


@pytest.mark.parametrize("name", PIECES)
@pytest.mark.parametrize("spatial", [(32, 32, 16), (48, 40)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pieces_keep_shape_dtype_device_and_range(name: str, spatial: tuple[int, ...], dtype: torch.dtype) -> None:
    x = torch.rand(4, 2, *spatial, generator=gen(0), dtype=dtype)
    out = PIECES[name](x, gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_preserved(dtype: torch.dtype) -> None:
    x = torch.rand(4, 1, 16, 16, 8, generator=gen(0)).to(dtype)
    assert bezier_intensity(x, generator=gen(1)).dtype == dtype
    assert GenesisCorruption()(x, gen(1))[0].dtype == dtype


@pytest.mark.parametrize("name", PIECES)
def test_same_seed_same_output(name: str) -> None:
    x = torch.rand(4, 1, 32, 32, 16, generator=gen(0))
    assert torch.equal(PIECES[name](x, gen(5)), PIECES[name](x, gen(5)))
    assert not torch.equal(PIECES[name](x, gen(5)), PIECES[name](x, gen(6)))


@pytest.mark.parametrize(
    ("rates", "spatial", "expected"),
    [
        # Net flip: one flip (0.4 * 0.6), two flips on different axes (0.4^2 * 0.6 * 2/3), or three (0.4^3).
        (dict(flip_rate=0.4), (12, 12, 12), 0.24 + 0.064 + 0.064),
        (dict(local_rate=0.5), (24, 24, 24), 0.5),
        (dict(nonlinear_rate=0.9), (12, 12, 12), 0.9),
        # In-painting draws no box with probability 0.05.
        (dict(paint_rate=0.9, inpaint_rate=0.2), (16, 16, 16), 0.9 * (0.2 * 0.95 + 0.8)),
    ],
)
def test_samples_are_changed_at_the_configured_rates(rates: dict[str, float], spatial: tuple[int, ...], expected: float) -> None:
    x = torch.rand(400, 1, *spatial, generator=gen(0))
    corrupted, _ = GenesisCorruption(GenesisCorruptionConfig(**{**NO_CORRUPTION, **rates}))(x, gen(1))
    changed = (corrupted != x).flatten(1).any(dim=1).double().mean().item()
    assert abs(changed - expected) < 0.08


def test_outpainting_is_chosen_at_the_configured_rate() -> None:
    x = torch.full((400, 1, 16, 16, 16), 2.0)
    corrupted, _ = GenesisCorruption(GenesisCorruptionConfig(**{**NO_CORRUPTION, "paint_rate": 0.9, "inpaint_rate": 0.2}))(x, gen(0))
    border_changed = (corrupted[:, 0][:, border_shell((16, 16, 16))] != 2.0).any(dim=1).double().mean().item()
    assert abs(border_changed - 0.9 * 0.8) < 0.08


@pytest.mark.parametrize("threads", [1, 0])
def test_cpu_corruption_runs_at_the_configured_threads_and_restores_torchs(monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    seen: list[int] = []

    def recording_flip(images: torch.Tensor, rate: float, generator=None) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return images

    monkeypatch.setattr(genesis_module, "random_flip", recording_flip)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        GenesisCorruption(GenesisCorruptionConfig(cpu_threads=threads))(torch.rand(2, 1, 16, 16, 8))
        assert seen == [1 if threads == 1 else 2]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
