"""Deterministic procedural chest-CT phantoms, the project's embedded default data.

Volumes are indexed ``(X, Y, Z)``: X runs from the patient's right to left, Y from anterior
to posterior and Z from foot to head, so ``hu[:, :, k].T`` shows an axial slice in the
radiological convention. The anatomy is laid out in physical units of the field of view
(width and depth 1, thorax height 0.8) and sampled onto the requested grid, so every shape of
at least 32 voxels per axis shows the same patient at a different resolution. Whether a
patient has nodules, and how many, depends only on the seed and the nodule probability, and
the probability changes nothing else: the same seed with probabilities 0 and 1 gives a
healthy and a diseased version of one patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIN_AXIS = 32
_EXTENT = np.array([1.0, 1.0, 0.8])
_ORIGIN = np.array([0.5, 0.5, 0.0])
_REFERENCE_VOXELS = 128 * 128 * 64
_HU_RANGE = (-1024.0, 3071.0)

_AIR = -1000.0
_FAT = -100.0
_MEDIASTINAL_FAT = -80.0
_MUSCLE = 40.0
_ABDOMEN = 55.0
_BLOOD = 50.0
_VESSEL = 40.0
_CSF = 15.0
_DISC = 90.0
_CARTILAGE = 120.0
_CANCELLOUS = 400.0
_STERNUM = 450.0
_ARCH = 600.0
_CORTICAL = 700.0
_NODULE = 50.0

_VESSEL_LEVELS = 6
_LENGTH_SHRINK = 0.74
_RADIUS_SHRINK = 0.78
_TRUNK_DIRECTIONS = (
    (0.2, 0.1, 1.0),
    (0.3, 0.6, 0.8),
    (0.3, -0.8, 0.5),
    (0.9, 0.2, 0.2),
    (0.5, -0.7, -0.3),
    (0.5, 0.3, -0.9),
    (0.2, 0.9, -0.5),
    (0.1, -0.3, -1.0),
)


@dataclass(frozen=True, eq=False)
class ChestCTPhantom:
    """One synthetic chest CT volume with its ground-truth masks and nodule list.

    Arrays are indexed ``(X, Y, Z)`` (right to left, anterior to posterior, foot to head).
    ``nodules`` holds ``((x, y, z), radius)`` in voxels; ``nodule_mask`` is exactly the union
    of the voxels whose centres lie within ``radius`` of a nodule centre.
    """

    patient_id: str
    hu: np.ndarray
    body_mask: np.ndarray
    lung_mask: np.ndarray
    nodule_mask: np.ndarray
    nodules: tuple[tuple[tuple[float, float, float], float], ...]


@dataclass(frozen=True)
class _Grid:
    """Physical coordinates of the voxel centres, shaped for broadcasting."""

    shape: tuple[int, int, int]
    spacing: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @classmethod
    def of(cls, shape: tuple[int, int, int]) -> _Grid:
        """The grid of a volume of ``shape`` spanning the field of view."""
        spacing = _EXTENT / np.array(shape)
        axes = [
            ((np.arange(n) + 0.5) * spacing[i] - _ORIGIN[i]).astype(np.float32).reshape(
                [n if j == i else 1 for j in range(3)]
            )
            for i, n in enumerate(shape)
        ]
        return cls(shape, spacing, *axes)

    @property
    def t(self) -> np.ndarray:
        """Relative height along Z, 0 at the foot end and 1 at the head end."""
        return self.z / np.float32(_EXTENT[2])

    def to_voxel(self, point: np.ndarray) -> np.ndarray:
        """Fractional voxel index of physical points (last axis xyz)."""
        return (np.asarray(point) + _ORIGIN) / self.spacing - 0.5


@dataclass(frozen=True)
class _Lung:
    """Ellipse footprint, apex taper, diaphragm dome and hilum of one lung."""

    side: float
    cx: float
    cy: float
    half_width: float
    half_depth: float
    shoulder_t: float
    apex_t: float
    base_t: float
    dome: float
    hilum: np.ndarray


@dataclass(frozen=True)
class _Layout:
    """The random anatomy of one patient, in physical field-of-view units."""

    cx: float
    cy: float
    half_width: float
    front: float
    back: float
    taper: float
    cage_taper: float
    fat: float
    wall: float
    back_wall: float
    vertebra_r: float
    vertebra_count: float
    vertebra_phase: float
    rib_count: float
    rib_slope: float
    rib_phase: float
    heart: tuple[float, float, float, float, float, float, float]
    aorta_r: float
    arch_t: float
    carina_t: float
    trachea_r: float
    mediastinum_half_width: float
    lungs: tuple[_Lung, _Lung]
    lung_hu: float
    noise_hu: float
    nodule_count: int

    @property
    def cavity(self) -> tuple[float, float, float]:
        """Half width, front and back extent of the thoracic cavity."""
        inset = self.fat + self.wall
        return self.half_width - inset, self.front - inset, self.back - inset - self.back_wall

    def narrowing(self, t: np.ndarray) -> np.ndarray:
        """Width of the body at relative height ``t``, as a fraction of its widest."""
        return 1.0 - self.taper * t

    def cage(self, t: np.ndarray) -> np.ndarray:
        """Width of the rib cage at relative height ``t``, narrowing toward the apex."""
        above = np.clip((t - 0.4) / 0.6, 0.0, 1.0)
        return self.narrowing(t) * (1.0 - self.cage_taper * np.square(above))

    @property
    def spine(self) -> tuple[float, float]:
        """Axial centre of the vertebral bodies."""
        return self.cx, self.cy + self.cavity[2] - 0.4 * self.vertebra_r

    @property
    def trachea(self) -> tuple[float, float]:
        """Axial centre of the trachea."""
        return self.cx, self.spine[1] - self.vertebra_r - 0.02 - self.trachea_r


def chest_ct_phantom(
    seed: int, shape: tuple[int, int, int] = (128, 128, 64), nodule_probability: float = 0.5
) -> ChestCTPhantom:
    """A synthetic chest CT volume for patient number ``seed``, identical for the same arguments."""
    grid = _Grid.of(_validated_shape(shape))
    if not 0.0 <= nodule_probability <= 1.0:
        raise ValueError(f"nodule_probability must lie in [0, 1], got {nodule_probability}")
    rng = np.random.default_rng(seed)
    layout = _sample_layout(rng, nodule_probability)
    hu = np.full(grid.shape, _AIR, dtype=np.float32)
    body, muscle, cavity_e = _paint_torso(hu, grid, layout)
    exclusion = _paint_mediastinum(hu, grid, layout, cavity_e)
    lung = _lung_mask(grid, layout, cavity_e, exclusion)
    _paint_lungs(hu, grid, layout, lung)
    _paint_vessel_trees(hu, grid, layout, lung, cavity_e <= 1.0, rng)
    _paint_airways_and_arch(hu, grid, layout, lung)
    _paint_bones(hu, grid, layout, cavity_e, muscle)
    # Drawn before placing the nodules, whose number of draws varies.
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    nodules = _place_nodules(grid, lung, layout.nodule_count, rng)
    nodule_mask = _paint_nodules(hu, nodules)
    hu += noise * np.float32(layout.noise_hu)
    np.clip(hu, *_HU_RANGE, out=hu)
    return ChestCTPhantom(f"phantom-{seed:04d}", hu, body, lung, nodule_mask, nodules)


def _validated_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The shape as three ints, or a ValueError naming the minimum axis size."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < _MIN_AXIS:
        raise ValueError(
            f"chest_ct_phantom needs a 3-D shape of at least {_MIN_AXIS} voxels per axis, "
            f"got {shape}"
        )
    return shape


def _sample_layout(rng: np.random.Generator, nodule_probability: float) -> _Layout:
    """Draw one patient's habitus, organ positions and sizes, noise level and nodule count.

    The same draws are made whatever the probability, so it changes nothing but the nodules.
    """
    def u(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    cx, cy = u(-0.02, 0.02), u(-0.01, 0.04)
    half_width = u(0.36, 0.43)
    depth = half_width * u(0.66, 0.76)
    fat, wall, back_wall = u(0.015, 0.045), u(0.03, 0.045), u(0.04, 0.06)
    inset = fat + wall
    cav_w, cav_front = half_width - inset, depth - inset
    cav_back = 0.95 * depth - inset - back_wall
    heart = (
        cx + cav_w * u(0.1, 0.18),
        cy - cav_front * u(0.3, 0.42),
        u(0.2, 0.27),
        cav_w * u(0.36, 0.44),
        cav_front * u(0.45, 0.55),
        u(0.17, 0.22),
        u(0.35, 0.6),
    )
    mediastinum = cav_w * u(0.13, 0.18)
    arch_t = u(0.68, 0.76)
    carina_t = arch_t - u(0.03, 0.07)
    lung_cy = cy + 0.5 * (cav_back - cav_front)
    lungs = tuple(
        _Lung(
            side=side,
            cx=cx + side * cav_w * u(0.5, 0.56),
            cy=lung_cy + u(-0.01, 0.02),
            half_width=cav_w * u(0.55, 0.62),
            half_depth=0.5 * (cav_front + cav_back) * u(1.05, 1.15),
            shoulder_t=u(0.42, 0.52),
            apex_t=u(0.9, 0.97),
            base_t=u(0.03, 0.1),
            dome=u(0.16, 0.24) if side < 0 else u(0.12, 0.2),
            hilum=np.array(
                [cx + side * (mediastinum + 0.03), lung_cy - 0.01, 0.8 * u(0.5, 0.56)]
            ),
        )
        for side in (-1.0, 1.0)
    )
    return _Layout(
        cx=cx,
        cy=cy,
        half_width=half_width,
        front=depth,
        back=0.95 * depth,
        taper=u(0.04, 0.1),
        cage_taper=u(0.3, 0.42),
        fat=fat,
        wall=wall,
        back_wall=back_wall,
        vertebra_r=u(0.042, 0.05),
        vertebra_count=u(10.0, 11.5),
        vertebra_phase=u(0.0, 1.0),
        rib_count=u(9.5, 11.0),
        rib_slope=u(4.5, 5.5),
        rib_phase=u(0.0, 1.0),
        heart=heart,
        aorta_r=u(0.026, 0.034),
        arch_t=arch_t,
        carina_t=carina_t,
        trachea_r=u(0.019, 0.024),
        mediastinum_half_width=mediastinum,
        lungs=lungs,
        lung_hu=u(-865.0, -835.0),
        noise_hu=u(15.0, 25.0),
        nodule_count=int(rng.integers(1, 4)) * bool(rng.random() < nodule_probability),
    )


def _torso_radius(
    grid: _Grid,
    layout: _Layout,
    half_width: float,
    front: float,
    back: float,
    narrowing: np.ndarray,
) -> np.ndarray:
    """Squared normalised radius of a boxy ellipse around the torso axis (<= 1 inside)."""
    u2 = np.square((grid.x - layout.cx) / (half_width * narrowing))
    v2 = np.square((grid.y - layout.cy) / np.where(grid.y < layout.cy, front, back))
    return u2 + v2 * (1.0 - 0.5 * np.minimum(u2, 1.0))


def _ellipse(
    grid: _Grid, cx: float, cy: float, half_width: float, half_depth: float
) -> np.ndarray:
    """Squared normalised radius of an axis-aligned ellipse in the axial plane, shape (X, Y, 1)."""
    return np.square((grid.x - cx) / half_width) + np.square((grid.y - cy) / half_depth)


def _fill(hu: np.ndarray, value: float | np.ndarray, where: np.ndarray) -> None:
    """Set ``hu`` to ``value`` (broadcast) where ``where`` (broadcast) holds."""
    np.copyto(hu, np.asarray(value, dtype=np.float32), where=where)


def _paint_torso(
    hu: np.ndarray, grid: _Grid, layout: _Layout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skin-to-cavity layers; returns the body and muscle masks and the cavity radius field."""
    narrowing = layout.narrowing(grid.t)
    body = (
        _torso_radius(grid, layout, layout.half_width, layout.front, layout.back, narrowing)
        <= 1.0
    )
    fat = layout.fat
    inner = (layout.half_width - fat, layout.front - fat, layout.back - fat)
    muscle = _torso_radius(grid, layout, *inner, narrowing) <= 1.0
    cavity_e = _torso_radius(grid, layout, *layout.cavity, layout.cage(grid.t))
    _fill(hu, _FAT, body)
    _fill(hu, _MUSCLE, muscle)
    _fill(hu, _ABDOMEN, cavity_e <= 1.0)
    return body, muscle, cavity_e


def _paint_mediastinum(
    hu: np.ndarray, grid: _Grid, layout: _Layout, cavity_e: np.ndarray
) -> np.ndarray:
    """Mediastinal fat, heart, aorta and trachea; returns the region the lungs must avoid."""
    cavity = cavity_e <= 1.0
    t = grid.t
    cav_w, cav_front, cav_back = layout.cavity
    depth = np.clip((grid.y - layout.cy + cav_front) / (cav_front + 0.5 * cav_back), 0.0, 1.0)
    band = np.abs(grid.x - layout.cx) / (1.0 + 0.3 * t) <= layout.mediastinum_half_width * (
        0.3 + 0.7 * depth
    )
    hx, hy, ht, ha, hb, hh, angle = layout.heart
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = grid.x - hx, grid.y - hy
    heart_e = (
        np.square((dx * cos + dy * sin) / ha)
        + np.square((dy * cos - dx * sin) / hb)
        + np.square((t - ht) / hh)
    )
    _fill(hu, _MEDIASTINAL_FAT, band & cavity & (t > ht))
    _fill(hu, _MEDIASTINAL_FAT, (heart_e <= 1.3) & cavity)
    _fill(hu, _MUSCLE, (heart_e <= 1.0) & cavity)
    _fill(hu, _BLOOD, (heart_e <= 0.55) & cavity)

    sx, sy = layout.spine
    r_ao = layout.aorta_r
    descending = (
        _ellipse(grid, sx + 1.3 * layout.vertebra_r, sy - 0.9 * layout.vertebra_r, r_ao, r_ao)
        <= 1.0
    )
    ascending_y = layout.cy - 0.35 * cav_front
    ascending = _ellipse(grid, layout.cx - 0.01, ascending_y, 1.15 * r_ao, 1.15 * r_ao) <= 1.0
    vena_cava = _ellipse(grid, layout.cx - 0.02 - 2.2 * r_ao, ascending_y, r_ao, r_ao) <= 1.0
    descending = descending & (t <= layout.arch_t)
    ascending = (ascending & (t <= layout.arch_t) | vena_cava & (t <= layout.arch_t + 0.1)) & (
        t >= ht
    )
    _fill(hu, _BLOOD, descending | ascending)

    tx, ty = layout.trachea
    trachea_e = _ellipse(grid, tx, ty, layout.trachea_r, layout.trachea_r)
    above_carina = t >= layout.carina_t
    _fill(hu, _MUSCLE, (trachea_e <= 1.6) & above_carina)
    _fill(hu, _AIR, (trachea_e <= 1.0) & above_carina)

    r = layout.vertebra_r
    spine_zone = _ellipse(grid, sx, sy + r, 2.2 * r, 2.4 * r) <= 1.0
    return band | (heart_e <= 1.3) | descending | ascending | spine_zone


def _lung_mask(
    grid: _Grid, layout: _Layout, cavity_e: np.ndarray, exclusion: np.ndarray
) -> np.ndarray:
    """Both lungs: tapered ellipses above domed diaphragms, inside the cavity."""
    t = grid.t
    cage = layout.cage(t)
    lungs = np.zeros(grid.shape, dtype=bool)
    for lung in layout.lungs:
        footprint = np.square(
            (grid.x - layout.cx - (lung.cx - layout.cx) * cage) / (lung.half_width * cage)
        ) + np.square((grid.y - lung.cy) / lung.half_depth)
        rise = np.clip((t - lung.shoulder_t) / (lung.apex_t - lung.shoulder_t), 0.0, 1.0)
        diaphragm = lung.base_t + lung.dome * np.clip(1.0 - footprint, 0.0, 1.0)
        lungs |= (footprint <= 1.0 - np.square(rise)) & (t >= diaphragm)
    return lungs & (cavity_e <= 1.0) & ~exclusion


def _paint_lungs(hu: np.ndarray, grid: _Grid, layout: _Layout, lung: np.ndarray) -> None:
    """Parenchyma, slightly denser toward the dependent (posterior) side."""
    _, front, back = layout.cavity
    _fill(hu, layout.lung_hu + 60.0 * (grid.y - layout.cy) / (front + back), lung)


def _tube_coverage(
    grid: _Grid, starts: np.ndarray, ends: np.ndarray, radii: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the voxels that round-capped tubes touch, and their coverage in (0, 1].

    Coverage is a one-voxel partial-volume ramp across each tube wall, the maximum over tubes.
    All tubes are evaluated at once in equally sized voxel boxes, one per tube.
    """
    voxel = float(grid.spacing[0])
    margin = (radii + voxel)[:, None]
    low = np.floor(grid.to_voxel(np.minimum(starts, ends) - margin)).astype(int)
    high = np.ceil(grid.to_voxel(np.maximum(starts, ends) + margin)).astype(int) + 1
    size = (high - low).max(axis=0)
    shape = np.array(grid.shape)
    indices = [low[:, i, None] + np.arange(size[i]) for i in range(3)]
    coords = [
        ((index + 0.5) * grid.spacing[i] - _ORIGIN[i]).astype(np.float32).reshape(
            [len(starts)] + [size[i] if j == i else 1 for j in range(3)]
        )
        - starts[:, i].astype(np.float32).reshape(-1, 1, 1, 1)
        for i, index in enumerate(indices)
    ]
    axes = (ends - starts).astype(np.float32)
    along = sum(coords[i] * axes[:, i].reshape(-1, 1, 1, 1) for i in range(3))
    along = np.clip(along / np.maximum((axes * axes).sum(1), 1e-12).reshape(-1, 1, 1, 1), 0, 1)
    squared = sum(
        np.square(coords[i] - along * axes[:, i].reshape(-1, 1, 1, 1)) for i in range(3)
    )
    coverage = np.clip(
        (radii.astype(np.float32).reshape(-1, 1, 1, 1) - np.sqrt(squared)) / voxel + 0.5, 0, 1
    )
    tube, i, j, k = np.nonzero(coverage)
    voxels = np.stack([indices[0][tube, i], indices[1][tube, j], indices[2][tube, k]])
    valid = np.all((voxels >= 0) & (voxels < shape[:, None]), axis=0)
    flat = np.ravel_multi_index(voxels[:, valid], grid.shape)
    return _max_by_index(flat, coverage[tube, i, j, k][valid])


def _max_by_index(flat: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique indices and the largest value given to each."""
    order = np.argsort(flat, kind="stable")
    flat, values = flat[order], values[order]
    first = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    return flat[first], np.maximum.reduceat(values, first) if first.size else values


def _blend_tubes(
    hu: np.ndarray,
    grid: _Grid,
    tubes: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    value: float,
    where: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend groups of ``(starts, ends, radii)`` tubes into ``hu``, only ``where`` if given.

    Returns the flat indices and coverage of the tubes.
    """
    found = [_tube_coverage(grid, *group) for group in tubes if len(group[0])]
    if not found:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32)
    flat, coverage = _max_by_index(
        np.concatenate([f for f, _ in found]), np.concatenate([c for _, c in found])
    )
    weight = coverage if where is None else coverage * where.reshape(-1)[flat]
    values = hu.reshape(-1)
    values[flat] += weight * (np.float32(value) - values[flat])
    return flat, coverage


def _inside(grid: _Grid, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each physical point falls in a voxel of ``mask``."""
    index = np.round(grid.to_voxel(points)).astype(int)
    valid = np.all((index >= 0) & (index < np.array(grid.shape)), axis=1)
    return valid & mask[tuple(np.clip(index, 0, np.array(grid.shape) - 1).T)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Vectors (last axis) scaled to unit length."""
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _branch_directions(rng: np.random.Generator, directions: np.ndarray) -> np.ndarray:
    """Two child directions per parent, splayed to either side: all firsts, then all seconds."""
    normals = _unit(np.cross(directions, rng.normal(size=directions.shape)))
    first, second = rng.uniform(0.35, 0.7, size=(2, len(directions), 1))
    return np.concatenate(
        [
            _unit(directions * np.cos(first) + normals * np.sin(first)),
            _unit(directions * np.cos(second) - normals * np.sin(second)),
        ]
    )


def _vessel_trees(
    rng: np.random.Generator, grid: _Grid, layout: _Layout, lung_mask: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Both lungs' vessel trees, level by level as ``(starts, ends, radii)``, from the hila.

    A branch is shortened until its end lies in the lungs, and dropped (with its children)
    if that fails.
    """
    count = len(_TRUNK_DIRECTIONS)
    starts = np.repeat([lung.hilum for lung in layout.lungs], count, axis=0)
    sides = np.repeat([[lung.side, 1.0, 1.0] for lung in layout.lungs], count, axis=0)
    directions = np.tile(_TRUNK_DIRECTIONS, (2, 1)) * sides
    directions = _unit(directions + rng.normal(0.0, 0.15, directions.shape))
    lengths = np.repeat(rng.uniform(0.08, 0.11, 2), count)
    radii = np.repeat(rng.uniform(0.01, 0.013, 2), count)
    levels = []
    for level in range(_VESSEL_LEVELS):
        steps = lengths * _LENGTH_SHRINK**level * rng.uniform(0.8, 1.2, len(starts))
        inside = _inside(grid, lung_mask, starts + directions * steps[:, None])
        for _ in range(3):
            steps = np.where(inside | (steps < 0.02), steps, 0.6 * steps)
            inside = _inside(grid, lung_mask, starts + directions * steps[:, None])
        starts, directions, steps = starts[inside], directions[inside], steps[inside]
        lengths, radii = lengths[inside], radii[inside]
        ends = starts + directions * steps[:, None]
        levels.append((starts, ends, radii * _RADIUS_SHRINK**level))
        starts, directions = np.concatenate([ends, ends]), _branch_directions(rng, directions)
        lengths, radii = np.concatenate([lengths, lengths]), np.concatenate([radii, radii])
    return levels


def _paint_vessel_trees(
    hu: np.ndarray,
    grid: _Grid,
    layout: _Layout,
    lung_mask: np.ndarray,
    cavity: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Pulmonary arteries from the heart to each hilum, then a branching tree in each lung."""
    hx, hy, ht, _, _, hh, _ = layout.heart
    trunk = np.array([[hx - 0.02, hy - 0.04, 0.8 * (ht + 0.8 * hh)]] * 2)
    hila = np.array([lung.hilum for lung in layout.lungs])
    _blend_tubes(hu, grid, [(trunk, hila, np.full(2, 0.014))], _BLOOD, cavity)
    _blend_tubes(hu, grid, _vessel_trees(rng, grid, layout, lung_mask), _VESSEL, lung_mask)


def _paint_airways_and_arch(
    hu: np.ndarray, grid: _Grid, layout: _Layout, lung_mask: np.ndarray
) -> None:
    """Main bronchi from the carina to each hilum and the aortic arch, which the lungs yield to."""
    tx, ty = layout.trachea
    carina = np.array([[tx, ty, 0.8 * layout.carina_t]] * 2)
    hila = np.array([lung.hilum for lung in layout.lungs])
    radii = np.array([0.75, 0.65]) * layout.trachea_r
    _blend_tubes(hu, grid, [(carina, hila, radii + 0.006)], _MUSCLE, ~lung_mask)
    _blend_tubes(hu, grid, [(carina, hila, radii)], _AIR)
    sx, sy = layout.spine
    arch_z = 0.8 * layout.arch_t
    ascending = [layout.cx - 0.01, layout.cy - 0.35 * layout.cavity[1], arch_z]
    descending = [sx + 1.3 * layout.vertebra_r, sy - 0.9 * layout.vertebra_r, arch_z]
    arch = (np.array([ascending]), np.array([descending]), np.array([layout.aorta_r]))
    flat, coverage = _blend_tubes(hu, grid, [arch], _BLOOD)
    lung_mask.reshape(-1)[flat[coverage >= 0.5]] = False


def _paint_bones(
    hu: np.ndarray, grid: _Grid, layout: _Layout, cavity_e: np.ndarray, muscle: np.ndarray
) -> None:
    """Vertebrae with discs and posterior arches, ribs with costal cartilage, and the sternum."""
    t = grid.t
    r = layout.vertebra_r
    sx, sy = layout.spine
    level = t * layout.vertebra_count + layout.vertebra_phase
    level -= np.floor(level)
    disc = level < 0.16
    vertebra_e = _ellipse(grid, sx, sy, 1.1 * r, r)
    vertebra = vertebra_e <= 1.0
    cortex = np.where(vertebra_e > 0.64, _CORTICAL, _CANCELLOUS)
    _fill(hu, cortex, vertebra & ~disc)
    _fill(hu, _DISC, vertebra & disc)
    canal_y = sy + 1.55 * r
    canal = _ellipse(grid, sx, canal_y, 0.5 * r, 0.5 * r) <= 1.0
    arch = (
        (_ellipse(grid, sx, canal_y, 0.95 * r, 0.95 * r) <= 1.0)
        | (_ellipse(grid, sx, sy + 2.5 * r, 0.22 * r, 0.8 * r) <= 1.0)
        | (_ellipse(grid, sx, sy + 1.4 * r, 1.9 * r, 0.3 * r) <= 1.0)
    )
    _fill(hu, _ARCH, arch & ~canal & muscle & (level > 0.2) & (level < 0.8))
    _fill(hu, _CSF, canal)

    cav_w, cav_front, _ = layout.cavity
    thickness = 0.018 / (0.5 * (cav_w + cav_front))
    shell = (cavity_e > 1.0) & (cavity_e <= (1.0 + thickness) ** 2) & muscle
    around = np.abs(np.arctan2(grid.x - layout.cx, grid.y - layout.cy)) / np.float32(np.pi)
    phase = t * layout.rib_count + layout.rib_slope * around + layout.rib_phase
    rib_band = (phase - np.floor(phase)) < 0.27
    beside_spine = _ellipse(grid, sx, sy + r, 2.2 * r, 2.4 * r) <= 1.0
    rib_arc = (around > 0.08) & (around < 0.8) & ~beside_spine
    _fill(hu, _CORTICAL, shell & rib_band & rib_arc & (t > 0.03))
    _fill(hu, _CARTILAGE, shell & rib_band & (around >= 0.8) & (around < 0.95))
    _fill(hu, _STERNUM, shell & (around >= 0.95) & (t > 0.35) & (t < 0.95))


def _place_nodules(
    grid: _Grid, lung: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[tuple[tuple[float, float, float], float], ...]:
    """Up to ``count`` non-overlapping spheres (voxel units) lying wholly inside the lungs."""
    candidates = np.flatnonzero(lung)
    if not count or not candidates.size:
        return ()
    scale = (np.prod(grid.shape) / _REFERENCE_VOXELS) ** (1.0 / 3.0)
    nodules: list[tuple[tuple[float, float, float], float]] = []
    for _ in range(50 * count):
        if len(nodules) == count:
            break
        radius = max(1.5, float(rng.uniform(2.0, 6.0) * scale))
        index = np.unravel_index(candidates[rng.integers(candidates.size)], grid.shape)
        centre = np.array(index, dtype=float) + rng.uniform(-0.5, 0.5, 3)
        if _fits(lung, centre, radius + 1.0) and all(
            np.linalg.norm(centre - np.array(other)) > radius + other_radius + 2.0
            for other, other_radius in nodules
        ):
            nodules.append((tuple(float(c) for c in centre), radius))
    return tuple(nodules)


def _sphere_box(
    shape: tuple[int, ...], centre: np.ndarray, radius: float
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Voxel box around a sphere and squared voxel distances to its centre; None if clipped."""
    low = np.floor(centre - radius).astype(int)
    high = np.ceil(centre + radius).astype(int) + 1
    if np.any(low < 0) or np.any(high > shape):
        return None
    ix, iy, iz = np.ogrid[low[0] : high[0], low[1] : high[1], low[2] : high[2]]
    squared = (ix - centre[0]) ** 2 + (iy - centre[1]) ** 2 + (iz - centre[2]) ** 2
    return tuple(slice(a, b) for a, b in zip(low, high)), squared


def _fits(mask: np.ndarray, centre: np.ndarray, radius: float) -> bool:
    """Whether a sphere (voxel units) lies wholly inside the volume and inside ``mask``."""
    found = _sphere_box(mask.shape, centre, radius)
    if found is None:
        return False
    box, squared = found
    return bool(np.all(mask[box][squared <= radius**2]))


def _paint_nodules(
    hu: np.ndarray, nodules: tuple[tuple[tuple[float, float, float], float], ...]
) -> np.ndarray:
    """Blend solid nodules with a two-voxel soft edge; returns their exact spherical mask."""
    mask = np.zeros(hu.shape, dtype=bool)
    for centre, radius in nodules:
        box, squared = _sphere_box(hu.shape, np.array(centre), radius + 1.0)
        weight = np.clip((radius + 1.0 - np.sqrt(squared)) / 2.0, 0.0, 1.0).astype(np.float32)
        view = hu[box]
        view += weight * (np.float32(_NODULE) - view)
        mask[box] |= squared <= radius**2
    return mask
