"""The procedural chest-CT phantom: determinism, tissue values, anatomy, nodules and shapes."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from lightning_ssl.data.phantoms import ChestCTPhantom, chest_ct_phantom

SMALL = (64, 64, 32)


@lru_cache(maxsize=None)
def phantom(
    seed: int, shape: tuple[int, int, int] = (128, 128, 64), probability: float = 0.5
) -> ChestCTPhantom:
    return chest_ct_phantom(seed, shape, probability)


def spheres(shape: tuple[int, int, int], nodules: tuple) -> np.ndarray:
    """The voxels whose centres lie within a nodule's radius, computed independently."""
    ix, iy, iz = np.indices(shape, sparse=True)
    mask = np.zeros(shape, dtype=bool)
    for (x, y, z), radius in nodules:
        mask |= (ix - x) ** 2 + (iy - y) ** 2 + (iz - z) ** 2 <= radius**2
    return mask


def test_same_seed_gives_identical_phantoms() -> None:
    first, second = chest_ct_phantom(3), chest_ct_phantom(3)
    assert first.patient_id == second.patient_id == "phantom-0003"
    for name in ("hu", "body_mask", "lung_mask", "nodule_mask"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.nodules == second.nodules


def test_different_seeds_give_different_patients() -> None:
    first, second = phantom(1), phantom(2)
    assert first.patient_id != second.patient_id
    assert not np.array_equal(first.hu, second.hu)
    assert first.body_mask.sum() != second.body_mask.sum()
    assert first.lung_mask.sum() != second.lung_mask.sum()


def test_shapes_and_dtypes() -> None:
    p = phantom(0)
    assert p.hu.shape == p.body_mask.shape == p.lung_mask.shape == p.nodule_mask.shape
    assert p.hu.shape == (128, 128, 64)
    assert p.hu.dtype == np.float32
    assert p.body_mask.dtype == p.lung_mask.dtype == p.nodule_mask.dtype == np.bool_
    assert p.hu.min() >= -1024 and p.hu.max() <= 3071
    assert isinstance(p.nodules, tuple)


@pytest.mark.parametrize("seed", [0, 5, 11])
def test_tissue_values(seed: int) -> None:
    p = phantom(seed)
    hu, body, lung = p.hu, p.body_mask, p.lung_mask
    assert abs(np.median(hu[~body]) + 1000) < 5
    assert -900 <= np.median(hu[lung]) <= -780
    bone = body & (hu > 300)
    assert bone.sum() > 0.02 * body.sum()
    assert not np.any(bone & lung)
    assert not np.any(hu[~body] > 300)
    assert -150 <= np.median(hu[body & ~lung & ~bone]) <= 100
    noise = hu[~body][hu[~body] > -1000] + 1000
    assert 10 < np.sqrt(np.mean(noise**2)) < 30


def test_anatomy() -> None:
    p = phantom(4)
    x, y, z = p.hu.shape
    assert np.all(p.lung_mask <= p.body_mask)
    right, left = p.lung_mask[: x // 2].sum(), p.lung_mask[x // 2 :].sum()
    assert min(right, left) > 0.3 * max(right, left)
    assert p.lung_mask[x // 2 - 1 : x // 2 + 1].sum() < 0.01 * p.lung_mask.sum()
    lung_per_slice = p.lung_mask.sum(axis=(0, 1))
    assert lung_per_slice[int(0.9 * z)] < 0.5 * lung_per_slice.max()
    midline_bone = (p.hu[x // 2 - 2 : x // 2 + 2] > 300).any(axis=0)
    assert midline_bone[y // 2 :].any(axis=0).mean() > 0.6
    assert midline_bone[y // 2 :].sum() > 2 * midline_bone[: y // 2].sum()


def test_nodules_lie_in_the_lungs_and_match_the_mask() -> None:
    radii = []
    for seed in range(6):
        p = phantom(seed, probability=1.0)
        assert 1 <= len(p.nodules) <= 3
        assert np.all(p.nodule_mask <= p.lung_mask)
        np.testing.assert_array_equal(p.nodule_mask, spheres(p.hu.shape, p.nodules))
        for centre, radius in p.nodules:
            radii.append(radius)
            assert np.median(p.hu[spheres(p.hu.shape, ((centre, radius - 1.0),))]) > -100
    assert all(2.0 <= r <= 6.0 for r in radii)


def test_nodule_probability_zero_and_one() -> None:
    for seed in range(8):
        none = phantom(seed, SMALL, 0.0)
        assert none.nodules == () and not none.nodule_mask.any()
        assert len(phantom(seed, SMALL, 1.0).nodules) >= 1


def test_nodule_probability_changes_only_the_nodules() -> None:
    healthy, diseased = phantom(2, probability=0.0), phantom(2, probability=1.0)
    np.testing.assert_array_equal(healthy.body_mask, diseased.body_mask)
    np.testing.assert_array_equal(healthy.lung_mask, diseased.lung_mask)
    grown = tuple((centre, radius + 1.0) for centre, radius in diseased.nodules)
    near = spheres(diseased.hu.shape, grown)
    np.testing.assert_array_equal(healthy.hu[~near], diseased.hu[~near])


def test_about_half_of_patients_have_nodules_by_default() -> None:
    with_nodules = sum(bool(phantom(seed, SMALL).nodules) for seed in range(40))
    assert 12 <= with_nodules <= 28


@pytest.mark.parametrize("shape", [SMALL, (96, 80, 48), (32, 32, 32), (160, 144, 40)])
def test_other_shapes(shape: tuple[int, int, int]) -> None:
    p = chest_ct_phantom(7, shape, nodule_probability=1.0)
    assert p.hu.shape == p.lung_mask.shape == p.nodule_mask.shape == shape
    assert -900 <= np.median(p.hu[p.lung_mask]) <= -780
    assert (p.hu[p.body_mask] > 300).any()
    assert p.nodules and np.all(p.nodule_mask <= p.lung_mask)
    np.testing.assert_array_equal(p.nodule_mask, spheres(shape, p.nodules))


@pytest.mark.parametrize("shape", [(31, 64, 64), (64, 64, 16), (64, 64)])
def test_too_small_or_malformed_shape_is_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="at least 32 voxels"):
        chest_ct_phantom(0, shape)


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_probability_outside_unit_interval_is_rejected(probability: float) -> None:
    with pytest.raises(ValueError, match="nodule_probability"):
        chest_ct_phantom(0, SMALL, probability)
