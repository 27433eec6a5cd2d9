"""Models Genesis corruptions as batched tensor operations on the batch's device.

The authors' code corrupts one sample at a time in NumPy, with a Python loop over 10,000
shuffling windows per cube. No library provides these transforms batched on the GPU, so they
are written here: every random choice is drawn for the whole batch at once and applied with
masks, gathers and scatters. Probabilities and sizes follow the official ``generate_pair``.
Images are ``(B, C, *spatial)`` in [0, 1] with 2 or 3 spatial axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lightning_ssl.transforms.threads import cpu_threads

REFERENCE_VOXELS = 64 * 64 * 32
REFERENCE_WINDOWS = 10_000


@dataclass
class GenesisCorruptionConfig:
    """Probabilities and sizes of the Models Genesis corruptions (official defaults); ``cpu_threads``: torch threads
    while a batch on the CPU is corrupted (0: torch's setting), 1 by default, which keeps the corruption fast when
    another process keeps a core busy."""

    flip_rate: float = 0.4
    local_rate: float = 0.5
    nonlinear_rate: float = 0.9
    paint_rate: float = 0.9
    inpaint_rate: float = 0.2
    local_windows: int | None = None
    bezier_points: int = 1000
    cpu_threads: int = 1


def _uniform_int(low: torch.Tensor | int, high: torch.Tensor | int, size: tuple[int, ...], device, generator) -> torch.Tensor:
    """Integers uniform in [low, high] (inclusive, elementwise broadcast)."""
    low_t = torch.as_tensor(low, device=device)
    high_t = torch.as_tensor(high, device=device)
    draw = torch.rand(size, device=device, generator=generator)
    return (low_t + torch.floor(draw * (high_t - low_t + 1))).long().minimum(high_t)


def _box_mask(starts: torch.Tensor, sizes: torch.Tensor, active: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Union of axis-aligned boxes: ``starts``/``sizes`` (B, K, D), ``active`` (B, K) -> (B, *spatial)."""
    mask = active.view(*active.shape, *([1] * len(spatial)))
    for axis, length in enumerate(spatial):
        coord = torch.arange(length, device=starts.device)
        low = starts[..., axis, None]
        inside = (coord >= low) & (coord < low + sizes[..., axis, None])
        shape = [1] * len(spatial)
        shape[axis] = length
        mask = mask & inside.view(*active.shape, *shape)
    return mask.any(dim=1)


def random_flip(images: torch.Tensor, rate: float, generator=None) -> torch.Tensor:
    """Flip along a random spatial axis while ``rand < rate``, at most 3 times (per sample).

    The authors draw the axis from 0..2 of a (1, X, Y, Z) sample: the channel (a no-op), X or Y,
    never Z. We draw among the spatial axes, which is what the paper describes.
    """
    batch = images.shape[0]
    spatial_dims = images.dim() - 2
    flipping = torch.ones(batch, dtype=torch.bool, device=images.device)
    parity = torch.zeros(batch, spatial_dims, dtype=torch.bool, device=images.device)
    for _ in range(3):
        flipping &= torch.rand(batch, device=images.device, generator=generator) < rate
        axis = torch.randint(0, spatial_dims, (batch,), device=images.device, generator=generator)
        parity ^= flipping.unsqueeze(1) & (axis.unsqueeze(1) == torch.arange(spatial_dims, device=images.device))
    # Two flips along one axis cancel, so each axis is flipped at most once; the samples sharing a set of axes are
    # flipped together, and only those (a sample costs one pass, not one per axis).
    code = (parity.long() << torch.arange(spatial_dims, device=images.device)).sum(dim=1)
    present = [int(c) for c in code.unique().tolist() if c]
    if not present:
        return images
    out = images.clone()
    for combination in present:
        chosen = code == combination
        out[chosen] = images[chosen].flip([2 + axis for axis in range(spatial_dims) if combination >> axis & 1])
    return out


def _shape_offsets(shapes: torch.Tensor, strides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel offsets of windows of each shape in ``shapes`` (U, D), row-major, all shapes laid end to end.

    Returns (offsets, starts): the offsets of shape ``u`` are ``offsets[starts[u] : starts[u] + shapes[u].prod()]``.
    """
    counts = shapes.prod(dim=-1)
    starts = counts.cumsum(0) - counts
    owner = torch.repeat_interleave(torch.arange(len(shapes), device=shapes.device), counts)
    index = torch.arange(owner.numel(), device=shapes.device) - starts[owner]
    sides = shapes[owner]
    offsets = torch.zeros_like(index)
    for axis in reversed(range(shapes.shape[1])):
        offsets += index % sides[:, axis] * strides[axis]
        index = index // sides[:, axis]
    return offsets, starts


def shuffle_windows(x: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Permute the voxels inside each window, reading from ``x``; later windows overwrite earlier ones.

    ``starts`` and ``sizes`` are (B, W, D) integer tensors. Each window gets an independent uniformly random
    permutation (the argsort of random keys) and every channel the same one. The windows with the same voxel
    count n, whatever their shapes, are permuted together by one row-wise argsort of a (windows, n) key matrix.
    """
    batch, channels = x.shape[:2]
    spatial = x.shape[2:]
    windows, dims = starts.shape[1:]
    voxels = math.prod(spatial)
    device = x.device
    strides = torch.tensor([math.prod(spatial[a + 1 :]) for a in range(dims)], device=device)
    first = (starts * strides).sum(dim=-1)
    first_global = (first + torch.arange(batch, device=device).unsqueeze(1) * voxels).flatten()
    # Every write is keyed ``rank << bits | source voxel``: one scatter-amax then leaves, for each voxel, the
    # source chosen by the last window covering it (rank 0, no window: the voxel itself). The keys are int32
    # when they fit, which halves the scatter's memory traffic.
    bits = max(voxels - 1, 1).bit_length()
    key_dtype = torch.int32 if windows < 2 ** (31 - bits) else torch.int64
    write_key = ((torch.arange(1, windows + 1, device=device) << bits) + first).flatten().to(key_dtype)
    # Sort the windows by (voxel count, shape): a group is a run of one count, made of runs of one shape.
    sizes = sizes.reshape(-1, dims)
    count = sizes.prod(dim=-1)
    bounds = (sizes.amax(dim=0) + 1).tolist()
    radix = torch.tensor([math.prod(bounds[a + 1 :]) for a in range(dims)], device=device)
    shape_code = (sizes * radix).sum(dim=-1)
    order = (count * math.prod(bounds) + shape_code).argsort()
    codes, shape_index = torch.unique_consecutive(shape_code[order], return_inverse=True)
    table, table_starts = _shape_offsets(codes.unsqueeze(1) // radix % torch.tensor(bounds, device=device), strides)
    table, table_start = table.to(key_dtype), table_starts[shape_index]
    group_counts, group_sizes = (t.tolist() for t in torch.unique_consecutive(count[order], return_counts=True))
    first_global, write_key = first_global[order], write_key[order]
    keys = torch.empty(sum(n * g for n, g in zip(group_counts, group_sizes)), dtype=torch.int32, device=device)
    keys.random_(generator=generator)
    last = torch.arange(voxels, dtype=key_dtype, device=device).repeat(batch)
    window = element = 0
    for n, group in zip(group_counts, group_sizes):
        rows = slice(window, window + group)
        order_in_window = keys[element : element + group * n].view(group, n).argsort(dim=1)
        # Row i of the unfolded table is table[i : i + n], so this reads each window's offsets, row-major.
        offsets = table.unfold(0, n, 1).index_select(0, table_start[rows])
        target = first_global[rows, None] + offsets
        source_key = write_key[rows, None] + offsets.gather(1, order_in_window)
        last.scatter_reduce_(0, target.flatten(), source_key.flatten(), "amax")
        window, element = window + group, element + group * n
    source = (last & ((1 << bits) - 1)).long().view(batch, 1, voxels).expand(batch, channels, voxels)
    return x.reshape(batch, channels, voxels).gather(2, source).view(x.shape)


def local_pixel_shuffle(x: torch.Tensor, windows: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle the voxels of many small random windows (sides uniform in 1..dim//10 per axis)."""
    batch = x.shape[0]
    spatial = x.shape[2:]
    if windows is None:
        windows = max(1, round(REFERENCE_WINDOWS * math.prod(spatial) / REFERENCE_VOXELS))
    # floor(u * k) with u in [0, 1) from float32 is below k for every k < 2**24, so no clamp is needed.
    draws = torch.rand(2, batch, windows, len(spatial), device=x.device, generator=generator)
    sizes = (draws[0] * torch.tensor([max(1, d // 10) for d in spatial], device=x.device)).long() + 1
    starts = (draws[1] * (torch.tensor(spatial, device=x.device) + 1 - sizes)).long()
    return shuffle_windows(x, starts, sizes, generator)


def bezier_intensity(x: torch.Tensor, points: int = 1000, generator=None) -> torch.Tensor:
    """Map intensities through a random monotonic Bezier curve from (0,0) to (1,1), inverted half the time.

    The authors sort the curve's x and y separately; sorting both (and reversing y to invert) keeps
    the mapping one-to-one in every case. The curve is tabulated on ``points`` uniform steps of
    [0, 1], and voxels are mapped by linear interpolation in that table.
    """
    batch = x.shape[0]
    device = x.device
    inner = torch.rand(batch, 2, 2, device=device, generator=generator)
    control = torch.cat([torch.zeros(batch, 1, 2, device=device), inner, torch.ones(batch, 1, 2, device=device)], dim=1)
    t = torch.linspace(0.0, 1.0, points, device=device)
    basis = torch.stack([math.comb(3, i) * t**i * (1 - t) ** (3 - i) for i in range(4)])
    curve = torch.einsum("bkd,kt->bdt", control, basis)
    xs = curve[:, 0].sort(dim=1).values.contiguous()
    ys = curve[:, 1].sort(dim=1).values
    invert = torch.rand(batch, 1, device=device, generator=generator) < 0.5
    ys = torch.where(invert, ys.flip(1), ys)
    table = _interpolate(t.expand(batch, -1).contiguous(), xs, ys)
    position = x.reshape(batch, -1).float().clamp(0.0, 1.0) * (points - 1)
    low = position.floor().long().clamp_max_(points - 2)
    weight = position - low
    y0, y1 = table.gather(1, low), table.gather(1, low + 1)
    return (y0 + weight * (y1 - y0)).view_as(x).to(x.dtype)


def _interpolate(query: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Row-wise piecewise-linear interpolation of (xs, ys) at ``query`` (like ``numpy.interp``)."""
    right = torch.searchsorted(xs, query).clamp(1, xs.shape[1] - 1)
    x0, x1 = xs.gather(1, right - 1), xs.gather(1, right)
    y0, y1 = ys.gather(1, right - 1), ys.gather(1, right)
    weight = ((query - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return y0 + weight * (y1 - y0)


def inpaint(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Fill up to 5 random boxes (sides dim//6..dim//3, >= 3 voxels from the border) with uniform noise."""
    batch, spatial = x.shape[0], x.shape[2:]
    device = x.device
    dims = torch.tensor(spatial, device=device)
    sizes = _uniform_int(dims // 6, dims // 3, (batch, 5, len(spatial)), device, generator)
    starts = _uniform_int(3, dims - sizes - 3, sizes.shape, device, generator)
    active = (torch.rand(batch, 5, device=device, generator=generator) < 0.95).cumprod(dim=1).bool()
    mask = _box_mask(starts, sizes, active, tuple(spatial)).unsqueeze(1)
    return torch.where(mask, torch.rand(x.shape, device=device, generator=generator, dtype=x.dtype), x)


def outpaint(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Replace everything outside 1 to 5 kept inner boxes with uniform noise."""
    batch, spatial = x.shape[0], x.shape[2:]
    device = x.device
    dims = torch.tensor(spatial, device=device)
    sizes = dims - _uniform_int(3 * dims // 7, 4 * dims // 7, (batch, 5, len(spatial)), device, generator)
    starts = _uniform_int(3, dims - sizes - 3, sizes.shape, device, generator)
    more = (torch.rand(batch, 4, device=device, generator=generator) < 0.95).cumprod(dim=1).bool()
    active = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=device), more], dim=1)
    keep = _box_mask(starts, sizes, active, tuple(spatial)).unsqueeze(1)
    return torch.where(keep, x, torch.rand(x.shape, device=device, generator=generator, dtype=x.dtype))


def _apply_to(chosen: torch.Tensor, transform, x: torch.Tensor) -> torch.Tensor:
    """Apply ``transform`` to the samples where ``chosen`` is true; the others pass unchanged."""
    if not bool(chosen.any()):
        return x
    out = x.clone()
    out[chosen] = transform(x[chosen])
    return out


class GenesisCorruption:
    """The Models Genesis corruption: ``(corrupted, target) = corruption(images)``.

    The target is the flipped original; the input is additionally shuffled, intensity-mapped and
    in- or out-painted, each with its own probability per sample.
    """

    def __init__(self, config: GenesisCorruptionConfig | None = None) -> None:
        self.config = config or GenesisCorruptionConfig()

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt a batch ``(B, C, *spatial)`` in [0, 1]; returns (input, target)."""
        if images.dim() not in (4, 5):
            raise ValueError(f"expected (B, C, H, W) or (B, C, H, W, D) images, got shape {tuple(images.shape)}")
        with cpu_threads(self.config.cpu_threads, images.device):
            return self._corrupt(images, generator)

    def _corrupt(self, images: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        batch, device = images.shape[0], images.device
        target = random_flip(images, cfg.flip_rate, generator)
        x = target

        def draw(rate: float) -> torch.Tensor:
            return torch.rand(batch, device=device, generator=generator) < rate

        x = _apply_to(draw(cfg.local_rate), lambda part: local_pixel_shuffle(part, cfg.local_windows, generator), x)
        x = _apply_to(draw(cfg.nonlinear_rate), lambda part: bezier_intensity(part, cfg.bezier_points, generator), x)
        paint = draw(cfg.paint_rate)
        inner = draw(cfg.inpaint_rate)
        x = _apply_to(paint & inner, lambda part: inpaint(part, generator), x)
        x = _apply_to(paint & ~inner, lambda part: outpaint(part, generator), x)
        return x, target
