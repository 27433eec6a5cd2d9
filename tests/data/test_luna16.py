"""LUNA16: MetaImage scans by subset, the Models Genesis split, nodule labels from world mm, clear errors."""

import csv
import logging

import itk
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.luna16 import Luna16DataModule, read_hu, world_to_voxel
from lightning_ssl.train import pretrain

SHAPE = (40, 36, 24)  # x, y, z voxels: every axis different, so a swapped axis shows
SPACING = (0.8, 0.7, 2.5)  # mm
ORIGIN = (-120.0, 30.0, -250.0)  # mm
NODULE_HU = 400.0  # window [-1000, 1000] -> 0.7; body 40 HU -> 0.52, lung -850 HU -> 0.075
# seriesuid -> (subset, nodule voxel (x, y, z) or None); real LUNA16 ids hold dots
SCANS = {
    "1.3.6.1.4.1.14519.5.2.1.6279.6001.100": (0, (12, 25, 15)),
    "1.3.6.1.4.1.14519.5.2.1.6279.6001.101": (0, None),
    "1.3.6.1.4.1.14519.5.2.1.6279.6001.500": (5, (27, 11, 6)),
    "1.3.6.1.4.1.14519.5.2.1.6279.6001.700": (7, None),
}
UID_WITH_NODULE = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100"


def _hu(nodule, seed=0):
    """A chest-like int16 HU volume (x, y, z): air, a body ellipse, two lungs, a one-voxel bright nodule."""
    rng = np.random.default_rng(seed)
    x, y, _ = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    hu = np.full(SHAPE, -1000.0)
    hu[(x / 0.9) ** 2 + (y / 0.8) ** 2 < 1] = 40
    hu[((np.abs(x) - 0.4) / 0.3) ** 2 + (y / 0.5) ** 2 < 1] = -850
    if nodule is not None:
        hu[tuple(nodule)] = NODULE_HU  # one voxel: a patch shows it exactly when it holds the centre
    return (hu + rng.normal(0, 5, SHAPE) * (hu < NODULE_HU)).clip(-1000, None).astype(np.int16)


def _world(voxel):
    return [o + s * v for o, s, v in zip(ORIGIN, SPACING, voxel)]


def _write_mhd(path, volume):
    image = itk.image_from_array(np.ascontiguousarray(volume.transpose(2, 1, 0)))  # ITK arrays are (z, y, x)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    itk.imwrite(image, str(path))


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def _write_luna(root, scans=SCANS, annotations=True):
    rows = []
    for number, (uid, (subset, nodule)) in enumerate(scans.items()):
        folder = root / f"subset{subset}"
        folder.mkdir(parents=True, exist_ok=True)
        _write_mhd(folder / f"{uid}.mhd", _hu(nodule, seed=number))
        if nodule is not None:
            rows.append([uid, *_world(nodule), 5.0])
    rows.append(["1.3.6.1.4.1.14519.5.2.1.6279.6001.999", -10.0, 20.0, -30.0, 6.0])  # a scan of an absent subset
    if annotations:
        _write_csv(root / "annotations.csv", ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"], rows)
    _write_csv(root / "candidates.csv", ["seriesuid", "coordX", "coordY", "coordZ", "class"], [r[:4] + [1] for r in rows])
    return root


@pytest.fixture(scope="module")
def luna(tmp_path_factory):
    return _write_luna(tmp_path_factory.mktemp("luna16"))


def _datamodule(root, **overrides):
    settings = {"patch_size": [16, 16, 8], "patches_per_volume": 4, "batch_size": 2, **overrides}
    return Luna16DataModule(OmegaConf.structured(Luna16DataModule.Config(root=str(root), **settings)))


def _setup(root, **overrides):
    dm = _datamodule(root, **overrides)
    dm.setup("fit")
    return dm


def _uids(dataset):
    return {s.seriesuid for s in dataset.volumes}


def test_items_follow_the_contract_and_subsets_are_the_split(luna):
    dm = _setup(luna)
    assert _uids(dm.train_dataset) == {u for u, (s, _) in SCANS.items() if s == 0}
    assert _uids(dm.val_dataset) == {u for u, (s, _) in SCANS.items() if s == 5}
    assert _uids(dm.test_dataset) == {u for u, (s, _) in SCANS.items() if s == 7}
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (8, 4, 4)
    item = dm.val_dataset[1]
    assert set(item) == {"image", "label", "patient_id", "meta"}
    assert item["image"].shape == (1, 16, 16, 8) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0 and item["patient_id"].endswith(".500")
    assert torch.allclose(item["meta"]["spacing"], torch.tensor(SPACING)) and item["meta"]["spacing"].dtype == torch.float32
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 16, 16, 8) and batch["label"].shape == (2,) and len(batch["patient_id"]) == 2
    info = dm.info
    assert (info.spatial_dims, info.in_channels, info.patch_size, info.num_classes) == (3, 1, [16, 16, 8], 2)
    assert info.class_names == ["no nodule", "nodule"] and "[-1000, 1000]" in info.intensity
    assert dm.metadata_vocabulary("patient_id") == sorted(u for u, (s, _) in SCANS.items() if s == 0)


def test_world_mm_maps_to_the_voxel_of_the_nodule(luna):
    nodule = SCANS[UID_WITH_NODULE][1]
    _, affine, ras = read_hu(luna / "subset0" / f"{UID_WITH_NODULE}.mhd")
    assert np.allclose(world_to_voxel([_world(nodule)], affine, ras), [nodule])
    dm = _setup(luna)
    scans = {s.seriesuid: s for s in dm.train_dataset.volumes + dm.val_dataset.volumes}
    assert scans[UID_WITH_NODULE].nodules.tolist() == [list(nodule)]
    assert scans["1.3.6.1.4.1.14519.5.2.1.6279.6001.500"].nodules.tolist() == [[27, 11, 6]]
    assert scans["1.3.6.1.4.1.14519.5.2.1.6279.6001.101"].nodules.shape == (0, 3)


@pytest.mark.parametrize("spatial_dims,patch", [(3, [16, 16, 8]), (2, [16, 16])])
def test_the_patch_holding_the_nodule_centre_is_labelled_1(luna, spatial_dims, patch):
    dm = _setup(luna, spatial_dims=spatial_dims, patch_size=patch)
    for dataset in (dm.train_dataset, dm.val_dataset):
        planned = dataset.class_labels()
        for _ in range(3):  # training positions change at every access; the plan does not
            items = [dataset[i] for i in range(len(dataset))]
            assert [int(it["label"]) for it in items] == planned
            # The bright nodule (0.7) is in exactly the patches labelled 1: world -> voxel kept the axes apart.
            assert [int(it["image"].max() > 0.65) for it in items] == planned
    assert sum(dm.train_dataset.class_labels()) == 1 and sum(dm.val_dataset.class_labels()) == 1
    assert dm.val_dataset[0]["image"].shape == (1, *patch)


def test_validation_positions_are_fixed_and_training_positions_change(luna):
    dm = _setup(luna)
    assert all(torch.equal(dm.val_dataset[i]["image"], dm.val_dataset[i]["image"]) for i in range(4))
    draws = [dm.train_dataset[3]["image"] for _ in range(4)]
    assert not all(torch.equal(draws[0], d) for d in draws[1:])
    centres = torch.stack([dm.train_dataset[i]["image"][0, 8, 8, 4] for i in range(8) for _ in range(3)])
    assert float((centres > 0.02).float().mean()) > 0.9  # centred in the body, not the air around it


def test_without_annotations_items_have_no_label(tmp_path):
    dm = _setup(_write_luna(tmp_path, annotations=False))
    assert "label" not in dm.train_dataset[0] and dm.train_labels() is None
    with pytest.raises(DataError, match="has no class labels"):
        dm.budget_indices()


def test_label_budget(luna):
    labeled, unlabeled = _setup(luna, label_budget=2).budget_indices()
    assert len(labeled) == 2 and len(unlabeled) == 6
    with pytest.raises(DataError, match=r"asks for 9 labels but the training split has 8"):
        _setup(luna, label_budget=9).budget_indices()


def test_absent_subsets_warn_and_validation_falls_back_to_training_scans(tmp_path, caplog):
    scans = {u: v for u, v in SCANS.items() if v[0] == 0}
    with caplog.at_level(logging.WARNING):
        dm = _setup(_write_luna(tmp_path, scans))
    assert "subsets absent" in caplog.text and "[1, 2, 3, 4, 5, 6, 7, 8, 9]" in caplog.text
    assert len(dm.train_dataset.volumes) == 1 and len(dm.val_dataset.volumes) == 1 and dm.test_dataset is None
    assert not (_uids(dm.train_dataset) & _uids(dm.val_dataset))


def test_disk_cache_memory_maps_the_scans_and_gives_the_same_items(luna, tmp_path):
    in_memory = _setup(luna)
    cached = _setup(luna, cache="disk", cache_dir=str(tmp_path / "cache"))
    again = _setup(luna, cache="disk", cache_dir=str(tmp_path / "cache"))
    assert (
        isinstance(again.train_dataset.volumes[0].hu, np.memmap) and len(list((tmp_path / "cache" / "luna16").glob("*.npy"))) == 8
    )
    for dm in (cached, again):
        assert all(torch.equal(dm.val_dataset[i]["image"], in_memory.val_dataset[i]["image"]) for i in range(4))
    facts = tmp_path / "cache" / "luna16" / f"{UID_WITH_NODULE}.facts.npz"
    written = facts.stat().st_mtime_ns
    _setup(luna, cache="disk", cache_dir=str(tmp_path / "cache"), body_threshold=-600)
    assert facts.stat().st_mtime_ns != written  # another body threshold: the entry is rebuilt
    with pytest.raises(DataError, match="data.cache_dir"):
        _setup(luna, cache="disk")
    with pytest.raises(ConfigError, match=r"'data.cache'.*'ram', expected one of \[none, memory, disk\]"):
        build_config(["data=luna16", "data.cache=ram"])


def test_layout_errors(tmp_path):
    with pytest.raises(DataError, match="data.root is not set"):
        Luna16DataModule(OmegaConf.structured(Luna16DataModule.Config())).setup()
    with pytest.raises(DataError, match="is not a folder"):
        _setup(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no LUNA16 scan under .*subset0..subset9"):
        _setup(tmp_path)
    _write_mhd(tmp_path / "flat.mhd", _hu(None))
    with pytest.raises(DataError, match=r"flat.mhd is not inside a subsetN folder.*data=ct_folder"):
        _setup(tmp_path)
    _write_luna(tmp_path / "val_only", {u: v for u, v in SCANS.items() if v[0] == 5})
    with pytest.raises(DataError, match=r"no scan of data.train_subsets=\[0, 1, 2, 3, 4\]"):
        _setup(tmp_path / "val_only")
    with pytest.raises(DataError, match=r"subset\(s\) \[5\] are in more than one"):
        _setup(tmp_path / "val_only", train_subsets=[5])


def test_missing_or_truncated_raw_names_both_files(tmp_path):
    root = _write_luna(tmp_path)
    raw = root / "subset5" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.500.raw"
    data = raw.read_bytes()
    raw.write_bytes(data[:1000])
    with pytest.raises(DataError, match=rf"6001.500.raw holds 1000 bytes but 1.3.*6001.500.mhd describes {len(data)}.*truncated"):
        _setup(root)
    raw.unlink()
    with pytest.raises(DataError, match=r"6001.500.mhd names the data file .*6001.500.raw, which is missing"):
        _setup(root)
    (root / "subset5" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.500.mhd").write_text("not a header\n")
    with pytest.raises(DataError, match=r"6001.500.mhd has no DimSize or ElementDataFile line: not a MetaImage header"):
        _setup(root)


def test_malformed_annotations_and_nan_voxels(tmp_path):
    root = _write_luna(tmp_path)
    _write_csv(root / "annotations.csv", ["seriesuid", "x", "y", "z"], [["a", 1, 2, 3]])
    with pytest.raises(DataError, match=r"annotations.csv lacks the columns \['coordX', 'coordY', 'coordZ'\]"):
        _setup(root)
    _write_csv(root / "annotations.csv", ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"], [["a", "1", "?", "3", 4]])
    with pytest.raises(DataError, match=r"annotations.csv line 2: coordinates \['1', '\?', '3'\] are not numbers"):
        _setup(root)
    (root / "annotations.csv").unlink()
    volume = _hu(None).astype(np.float32)
    volume[3, 4, 5] = np.nan
    _write_mhd(root / "subset7" / "1.3.6.1.4.1.14519.5.2.1.6279.6001.700.mhd", volume)
    with pytest.raises(DataError, match="6001.700.mhd holds NaN"):
        _setup(root)


def test_patch_larger_than_a_scan(luna):
    with pytest.raises(DataError, match=r"is smaller than the patch: lower data.patch_size"):
        _setup(luna, patch_size=[64, 64, 32])
    with pytest.raises(ConfigError, match=r"data.patch_size=\[16, 16, 8\] needs 2 values for data.spatial_dims=2"):
        _setup(luna, spatial_dims=2, patch_size=[16, 16, 8])


def test_check_data_summarises_the_splits(luna, tmp_path, capsys):
    args = ["check-data", "data=luna16", "data.patch_size=[16,16,8]", "data.patches_per_volume=2"]
    assert main([*args, f"data.root={luna}"]) == 0
    out = capsys.readouterr().out
    assert "data luna16 at" in out and "problems found: 0" in out
    assert all(split in out for split in ("train", "val", "test")) and "1x16x16x8" in out and "0.8x0.7x2.5" in out
    broken = _write_luna(tmp_path / "broken")
    (broken / "subset0" / f"{UID_WITH_NODULE}.raw").write_bytes(b"\0" * 10)
    assert main([*args, f"data.root={broken}"]) != 0
    assert "truncated" in capsys.readouterr().out


def test_data_luna16_resolves_with_the_models_genesis_defaults():
    assert DATASETS["luna16"] is Luna16DataModule
    data = build_config(["data=luna16"]).data
    assert (list(data.train_subsets), list(data.val_subsets), list(data.test_subsets)) == ([0, 1, 2, 3, 4], [5, 6], [7, 8, 9])
    assert list(data.patch_size) == [64, 64, 32] and data.patches_per_volume == 32 and data.spatial_dims == 3


@pytest.mark.slow
def test_genesis_pretrains_on_luna16_for_two_steps(luna, tmp_path):
    overrides = [
        "method=genesis",
        "data=luna16",
        f"data.root={luna}",
        "data.patch_size=[32,32,16]",
        "data.patches_per_volume=2",
        "data.batch_size=2",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path}",
    ]
    result = pretrain(build_config(overrides))
    assert result.zoo_entry is not None and (result.zoo_entry / "encoder.safetensors").is_file()
