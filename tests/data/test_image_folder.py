"""A folder of one's own 2D images: masks by suffix, classes from folders, patients by regex, errors, real X-rays."""

import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageFile
from real_data import shared_file

from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.image_folder import ImageFolderDataModule
from lightning_ssl.train import pretrain


def _image(path, seed=0, size=(40, 40), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(path, fmt)
    return path


def _mask(path, size=(40, 40), values=(0, 255)):
    mask = np.full(size, values[0], np.uint8)
    mask[size[0] // 4 : size[0] // 2, : size[1] // 2] = values[1]
    Image.fromarray(mask).save(path)
    return path


def _folder(root, count=6, suffix="-mask"):
    """``count`` JPEG images ``N.jpg``, each with its PNG mask ``N<suffix>.png`` (a quarter of the image is 255)."""
    for n in range(1, count + 1):
        _image(root / f"{n}.jpg", seed=n)
        if suffix is not None:
            _mask(root / f"{n}{suffix}.png")
    return root


def _datamodule(root, **overrides):
    settings = {"patch_size": [32, 32], "batch_size": 2, **overrides}
    config = ImageFolderDataModule.Config(root=None if root is None else str(root), **settings)
    return ImageFolderDataModule(OmegaConf.structured(config))


def _setup(root, **overrides):
    dm = _datamodule(root, **overrides)
    dm.setup()
    return dm


def _splits(dm):
    return [d for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset) if d is not None]


def test_images_with_masks_by_suffix_split_by_patient(tmp_path):
    _folder(tmp_path)
    dm = _setup(tmp_path, mask_suffix="-mask", val_fraction=0.2, test_fraction=0.2, modality="X-ray")
    ids = [set(d.column_values("patient_id")) for d in _splits(dm)]
    assert [len(i) for i in ids] == [4, 1, 1] and set.union(*ids) == {str(n) for n in range(1, 7)}
    item = dm.train_dataset[0]
    assert set(item) == {"image", "mask", "patient_id"}
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["mask"].shape == (1, 32, 32) and item["mask"].dtype == torch.uint8
    assert set(item["mask"].unique().tolist()) == {0, 1} and item["mask"].float().mean() == 0.125
    assert dm.info.modality == "X-ray" and dm.info.num_classes is None and dm.train_labels() is None
    batch = next(iter(dm.train_dataloader()))
    assert batch["mask"].shape == (2, 1, 32, 32) and len(batch["patient_id"]) == 2


def test_16_bit_png_is_scaled_by_65535(tmp_path):
    for n in range(3):
        Image.fromarray(np.full((40, 40), 16384 * (n + 1), np.uint16)).save(tmp_path / f"{n}.png")
    dm = _setup(tmp_path, val_fraction=0.4)
    values = sorted(round(float(d[i]["image"].mean()), 4) for d in _splits(dm) for i in range(len(d)))
    assert values == [0.25, 0.5, 0.75]


def test_masks_are_not_images_and_busi_style_suffix(tmp_path):
    _folder(tmp_path, count=3, suffix="_mask")
    assert len(_setup(tmp_path).train_dataset.records) + len(_setup(tmp_path).val_dataset.records) == 3  # excluded by *mask*
    dm = _setup(tmp_path, mask_suffix="_mask", exclude=[])
    assert all(r.masks == (tmp_path / f"{r.image.stem}_mask.png",) for d in _splits(dm) for r in d.records)
    assert "mask" not in _setup(tmp_path).train_dataset[0]  # no mask_suffix: no masks


def test_classes_from_folders(tmp_path):
    for n, name in enumerate(["normal/a.png", "normal/b.png", "pneumonia/c.png", "pneumonia/deep/d.png", "effusion/e.png"]):
        _image(tmp_path / name, seed=n)
    dm = _datamodule(tmp_path, labels_from_folders=True, val_fraction=0.2)
    assert dm.info.class_names == ["effusion", "normal", "pneumonia"] and dm.info.num_classes == 3  # before setup
    dm.setup()
    labels = {r.patient_id: r.label for d in _splits(dm) for r in d.records}
    assert labels == {"normal/a": 1, "normal/b": 1, "pneumonia/c": 2, "pneumonia/deep/d": 2, "effusion/e": 0}
    assert dm.train_dataset[0]["label"].dtype == torch.int64
    assert _datamodule(tmp_path, labels_from_folders=True, class_names=["normal", "pneumonia", "effusion"]).info.num_classes == 3
    with pytest.raises(DataError, match=r"effusion/e.png is not in a class sub-folder .*\['normal', 'pneumonia'\]"):
        _setup(tmp_path, labels_from_folders=True, class_names=["normal", "pneumonia"])
    _image(tmp_path / "loose.png")
    with pytest.raises(DataError, match="loose.png is not in a class sub-folder"):
        _setup(tmp_path, labels_from_folders=True)


def test_patient_id_regex_keeps_a_patients_images_together(tmp_path):
    for patient in range(5):
        for view in ("pa", "lat"):
            _image(tmp_path / f"case{patient}_{view}.png", seed=patient)
    dm = _setup(tmp_path, patient_id_regex=r"^(case\d+)_", val_fraction=0.2, test_fraction=0.2)
    ids = [d.column_values("patient_id") for d in _splits(dm)]
    assert [len(i) for i in ids] == [6, 2, 2] and [len(set(i)) for i in ids] == [3, 1, 1]
    assert not set(ids[0]) & set(ids[1]) and not set(ids[0]) & set(ids[2])
    _image(tmp_path / "other.png")
    with pytest.raises(DataError, match=r"patient_id_regex='\^\(case\\\\d\+\)_' does not match 'other.png'"):
        _setup(tmp_path, patient_id_regex=r"^(case\d+)_")


def test_fewer_than_three_images_train_and_validate_on_the_same(tmp_path, caplog):
    _folder(tmp_path, count=2)
    with caplog.at_level(logging.WARNING):
        dm = _setup(tmp_path, mask_suffix="-mask")
    assert "only 2 patient(s)" in caplog.text and "validation reuses them" in caplog.text
    assert dm.val_dataset is dm.train_dataset and len(dm.train_dataset) == 2 and dm.test_dataset is None


def test_memory_and_disk_caches_give_the_same_items(tmp_path, monkeypatch):
    _folder(tmp_path / "images", count=5)
    root = tmp_path / "images"
    plain = [_setup(root, mask_suffix="-mask").train_dataset[index] for index in range(4)]
    half = _setup(root, mask_suffix="-mask", cache="memory", cache_rate=0.5)
    assert len(half.train_dataset._cache) == 2 and len(half.train_dataset) == 4
    for index in range(4):
        assert torch.equal(half.train_dataset[index]["image"], plain[index]["image"])
        assert torch.equal(half.train_dataset[index]["mask"], plain[index]["mask"])
    disk = {"mask_suffix": "-mask", "cache": "disk", "cache_dir": str(tmp_path / "cache")}
    [_setup(root, **disk).train_dataset[index] for index in range(4)]
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda *args: pytest.fail("an image was decoded on the second run"))
    again = _setup(root, **disk)
    for index in range(4):
        assert torch.equal(again.train_dataset[index]["image"], plain[index]["image"])
        assert torch.equal(again.train_dataset[index]["mask"], plain[index]["mask"])


def test_folder_and_config_errors(tmp_path):
    with pytest.raises(DataError, match="no image matching"):
        _setup(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        _setup(tmp_path / "missing")
    with pytest.raises(ConfigError, match="set data.spatial_dims=2"):
        _setup(tmp_path, spatial_dims=3, patch_size=[32, 32, 16])
    _folder(tmp_path, count=4)
    (tmp_path / "3-mask.png").unlink()
    with pytest.raises(DataError, match=r"3.jpg has no mask 3-mask.png"):
        _setup(tmp_path, mask_suffix="-mask")
    _mask(tmp_path / "3-mask.png", size=(40, 30))
    with pytest.raises(DataError, match=r"mask .*3-mask.png is 30x40 but its image .*3.jpg is 40x40"):
        _setup(tmp_path, mask_suffix="-mask")


def test_unreadable_image_and_mask_values_are_named_at_setup_and_when_read(tmp_path, capsys):
    _folder(tmp_path, count=4)
    data = _image(tmp_path / "2.png", seed=2, size=(64, 64)).read_bytes()
    (tmp_path / "2.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "2.jpg").unlink()
    _mask(tmp_path / "2-mask.png", size=(64, 64))
    _mask(tmp_path / "4-mask.png", values=(0, 128))
    with pytest.raises(DataError, match=r"cannot read .*2.png: .*Truncated.* \(and 1 more problem\(s\): `python -m lightning_ssl check-data`"):
        _setup(tmp_path, mask_suffix="-mask", val_fraction=0.25)
    dm = _setup(tmp_path, mask_suffix="-mask", val_fraction=0.25, verify=False)
    dataset = {r.patient_id: (d, i) for d in _splits(dm) for i, r in enumerate(d.records)}
    broken, index = dataset["2"]
    with pytest.raises(DataError, match=r"cannot read .*2.png: .*truncated"):
        broken[index]
    odd, index = dataset["4"]
    with pytest.raises(DataError, match=r"mask .*4-mask.png holds values \[128\]"):
        odd[index]
    assert main(["check-data", "data=image_folder", f"data.root={tmp_path}", "data.mask_suffix=-mask"]) == 1
    out = capsys.readouterr().out
    assert "problems found: 2" in out and "2.png" in out and "4-mask.png" in out


def _real_xrays():
    folder = shared_file("xray_lung_seg/1.jpg").parent
    return ["data=image_folder", f"data.root={folder}", "data.mask_suffix=-mask", "data.modality=X-ray"]


def test_real_xrays_with_lung_masks():
    cfg = build_config([*_real_xrays(), "data.patch_size=[128,128]"])
    dm = DATASETS["image_folder"](cfg.data)
    dm.setup()
    items = [d[i] for d in _splits(dm) for i in range(len(d))]
    assert len(items) == 4 and len(dm.val_dataset) == 1
    for item in items:
        assert item["image"].shape == (1, 128, 128) and 0 <= item["image"].min() and item["image"].max() <= 1
        assert set(item["mask"].unique().tolist()) == {0, 1}
        lungs = item["mask"].float().mean().item()
        assert 0.15 < lungs < 0.6, lungs
        # lungs are dark on an X-ray: darker than the rest of the image
        assert item["image"][item["mask"] == 1].mean() < item["image"][item["mask"] == 0].mean()
    assert dm.info.modality == "X-ray" and dm.info.channel_names == ["grayscale"]


def test_check_data_on_real_xrays(capsys):
    assert main(["check-data", *_real_xrays()]) == 0
    out = capsys.readouterr().out
    assert "problems found: 0" in out and "1x256x256" in out and "0, 1" in out


@pytest.mark.slow
def test_chen_runs_on_real_xrays(tmp_path):
    overrides = [
        "method=chen",
        *_real_xrays(),
        "data.patch_size=[64,64]",
        "data.batch_size=2",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path / 'runs'}",
    ]
    result = pretrain(build_config(overrides))
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
