"""JSRT: headerless big-endian 12-bit .IMG files, inversion, nodule labels, SCR masks and 2-fold split, clear errors."""

import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.jsrt import JSRTDataModule, read_jsrt
from lightning_ssl.train import pretrain

SIDE = 2048
# SCR puts the odd-numbered images in fold1 and the even-numbered ones in fold2.
FOLDS = {"JPCLN001": "fold1", "JPCLN002": "fold2", "JPCLN003": "fold1", "JPCNN001": "fold1", "JPCNN002": "fold2"}
TOP, BOTTOM, CORNER = 258, 3000, 4095  # 258 = 0x0102: read little-endian it would be 513
# 1024 x 1024 SCR parts as (rows, columns) boxes; the patient's left lung is on the image's right.
PARTS = {
    "right lung": (slice(200, 800), slice(100, 450)),
    "left lung": (slice(200, 800), slice(550, 900)),
    "heart": (slice(500, 900), slice(400, 650)),
    "right clavicle": (slice(100, 180), slice(100, 450)),
    "left clavicle": (slice(100, 180), slice(550, 900)),
}


def _raw():
    """Raw values (2048, 2048): 258 above, 3000 below, 4095 (displayed black) in the top-left quarter of the top half."""
    values = np.full((SIDE, SIDE), BOTTOM, dtype=np.uint16)
    values[: SIDE // 2] = TOP
    values[: SIDE // 2, : SIDE // 4] = CORNER
    return values


def _write_img(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    values.astype(">u2").tofile(path)


def _write_gif(path, box):
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((1024, 1024), dtype=np.uint8)
    mask[box] = 255
    Image.fromarray(mask).save(path)


@pytest.fixture(scope="module")
def jsrt(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsrt")
    for image_id, fold in FOLDS.items():
        _write_img(root / "All247images" / f"{image_id}.IMG", _raw())
        for part, box in PARTS.items():
            _write_gif(root / "scratch" / fold / "masks" / part / f"{image_id}.gif", box)
    return root


def _datamodule(root, **overrides):
    settings = {"patch_size": [64, 64], "batch_size": 2, **overrides}
    return JSRTDataModule(OmegaConf.structured(JSRTDataModule.Config(root=str(root), **settings)))


def _setup(root, **overrides):
    dm = _datamodule(root, **overrides)
    dm.setup("fit")
    return dm


def _ids(dataset):
    return set(dataset.column_values("patient_id"))


def test_reader_keeps_the_byte_order_and_inverts_for_display(jsrt):
    image = read_jsrt(jsrt / "All247images" / "JPCLN001.IMG")
    assert image.shape == (SIDE, SIDE) and image.dtype == np.float32
    assert image[10, 1000] == pytest.approx(1 - TOP / 4095)  # big-endian 0x0102 = 258, not 513
    assert image[10, 10] == 0.0 and image[2000, 10] == pytest.approx(1 - BOTTOM / 4095)  # row 0 is the top


def test_items_masks_and_the_scr_split(jsrt):
    dm = _setup(jsrt)
    assert _ids(dm.test_dataset) == {i for i, f in FOLDS.items() if f == "fold2"}
    assert _ids(dm.train_dataset) | _ids(dm.val_dataset) == {i for i, f in FOLDS.items() if f == "fold1"}
    assert len(dm.val_dataset) == 1 and not (_ids(dm.train_dataset) & _ids(dm.val_dataset))
    item = dm.test_dataset[0]
    assert set(item) == {"image", "label", "patient_id", "mask"} and item["patient_id"] == "JPCLN002"
    assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert float(item["image"][0, 5, 5]) == pytest.approx(0.0, abs=1e-6)  # the 4095 corner: black
    assert float(item["image"][0, 5, 40]) == pytest.approx(1 - TOP / 4095, abs=1e-5)
    assert float(item["image"][0, 50, 30]) == pytest.approx(1 - BOTTOM / 4095, abs=1e-5)
    assert item["label"].dtype == torch.int64 and int(item["label"]) == 1 and int(dm.test_dataset[1]["label"]) == 0
    mask = item["mask"]
    assert mask.shape == (1, 64, 64) and mask.dtype == torch.uint8 and set(mask.unique().tolist()) == {0, 1}
    assert mask[0, 30, 15] == 1 and mask[0, 30, 45] == 1  # right and left lung: the union
    assert mask[0, 30, 31] == 0 and mask[0, 5, 15] == 0  # between the lungs, above them
    labels = dm.train_dataset.class_labels()
    assert labels == [int(i.startswith("JPCLN")) for i in sorted(_ids(dm.train_dataset))]
    assert dm.metadata_vocabulary("patient_id") == sorted(_ids(dm.train_dataset))
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 64, 64) and batch["mask"].shape == (2, 1, 64, 64) and len(batch["patient_id"]) == 2
    info = dm.info
    assert (info.spatial_dims, info.in_channels, info.patch_size, info.num_classes) == (2, 1, [64, 64], 2)
    assert info.class_names == ["no nodule", "nodule"] and info.spacing == [5.6, 5.6] and "4095" in info.intensity


@pytest.mark.parametrize("kind,inside,outside", [("heart", (45, 33), (30, 15)), ("clavicles", (8, 15), (30, 15))])
def test_heart_and_clavicle_masks(jsrt, kind, inside, outside):
    mask = _setup(jsrt, mask=kind, cache="none").val_dataset[0]["mask"][0]
    assert mask[inside] == 1 and mask[outside] == 0


def test_without_masks_or_scr(jsrt, tmp_path):
    assert "mask" not in _setup(jsrt, mask="none", cache="none").test_dataset[0]
    dm = _setup(jsrt / "All247images", cache="none")  # root may be the image folder; no SCR under it
    assert "mask" not in dm.train_dataset[0]
    ids = [_ids(getattr(dm, f"{s}_dataset")) for s in ("train", "val", "test")]
    assert [len(i) for i in ids] == [2, 1, 2] and set().union(*ids) == set(FOLDS) and sum(len(i) for i in ids) == 5
    with pytest.raises(
        DataError, match=r"data.mask=lungs need the SCR masks: looked for fold1 and fold2 .* under .*All247images"
    ):
        _setup(jsrt / "All247images", mask="lungs")
    with pytest.raises(DataError, match=r"data.split=scr need the SCR masks"):
        _setup(jsrt / "All247images", split="scr")


def test_disk_cache_reads_no_file_on_the_second_run(jsrt, tmp_path, monkeypatch):
    memory = _setup(jsrt)
    disk = {"cache": "disk", "cache_dir": str(tmp_path / "cache")}
    [_setup(jsrt, **disk).train_dataset[index] for index in range(2)]
    monkeypatch.setattr("lightning_ssl.data.jsrt.read_jsrt", lambda path: pytest.fail(f"{path} was read again"))
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: pytest.fail("a mask was read again"))
    again = _setup(jsrt, **disk)
    for index in range(2):
        for key in ("image", "mask", "label"):
            assert torch.equal(again.train_dataset[index][key], memory.train_dataset[index][key])


def test_label_budget(jsrt):
    labeled, unlabeled = _setup(jsrt, label_budget=1, cache="none").budget_indices()
    assert len(labeled) == 1 and len(unlabeled) == 1
    with pytest.raises(DataError, match=r"asks for 3 labels but the training split has 2"):
        _setup(jsrt, label_budget=3, cache="none").budget_indices()


def test_file_errors(tmp_path):
    images = tmp_path / "All247images"
    images.mkdir()
    with pytest.raises(DataError, match=r"no JSRT .IMG file in .*All247images: expected <root>/All247images/JPCLN001.IMG"):
        _setup(tmp_path)
    (images / "JPCLN004.IMG").write_bytes(b"\0" * 1000)
    with pytest.raises(DataError, match=r"JPCLN004.IMG has 1000 bytes, not 2048x2048x2 = 8388608: truncated or not a JSRT"):
        _setup(tmp_path)
    (images / "JPCLN004.IMG").unlink()
    (images / "scan7.IMG").write_bytes(b"")
    with pytest.raises(DataError, match="scan7.IMG is not a JSRT image name"):
        _setup(tmp_path)
    (images / "scan7.IMG").unlink()
    _write_img(images / "JPCNN010.IMG", np.full((SIDE, SIDE), 0x0FFF, dtype=np.uint16).byteswap())  # little-endian 4095
    with pytest.raises(DataError, match=r"JPCNN010.IMG holds values up to 65295, above 12 bits"):
        _setup(tmp_path, split="random", val_fraction=0, test_fraction=0)
    with pytest.raises(DataError, match="is not a folder"):
        _setup(tmp_path / "missing")


def test_mask_errors(jsrt, tmp_path):
    root = tmp_path / "jsrt"
    shutil.copytree(jsrt / "scratch", root / "scratch")
    (root / "All247images").mkdir()
    for image_id in FOLDS:
        (root / "All247images" / f"{image_id}.IMG").symlink_to(jsrt / "All247images" / f"{image_id}.IMG")
    (root / "scratch" / "fold2" / "masks" / "right lung" / "JPCNN002.gif").unlink()
    with pytest.raises(DataError, match=r"the SCR mask .*right lung/JPCNN002.gif of JPCNN002.IMG is missing"):
        _setup(root)
    grey = np.zeros((1024, 1024), dtype=np.uint8)
    grey[:10, :10], grey[20:30, :10] = 128, 255
    Image.fromarray(grey).save(root / "scratch" / "fold2" / "masks" / "right lung" / "JPCNN002.gif")
    with pytest.raises(DataError, match=r"JPCNN002.gif holds the grey levels \[0, 128, 255\]: not a binary SCR mask"):
        _setup(root)
    _write_gif(root / "scratch" / "fold2" / "masks" / "right lung" / "JPCNN002.gif", (slice(0, 5), slice(0, 5)))
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(root / "scratch" / "fold2" / "masks" / "left lung" / "JPCNN002.gif")
    with pytest.raises(DataError, match=r"right lung/JPCNN002.gif is 1024x1024 but .*left lung/JPCNN002.gif is 512x512"):
        _setup(root)


def test_check_data_summarises_the_splits(jsrt, tmp_path, capsys):
    args = ["check-data", "data=jsrt", "data.patch_size=[64,64]"]
    assert main([*args, f"data.root={jsrt}"]) == 0
    out = capsys.readouterr().out
    assert "data jsrt at" in out and "problems found: 0" in out and "1x64x64" in out and "mask values" in out
    assert all(split in out for split in ("train", "val", "test")) and "nodule: 1" in out
    (tmp_path / "All247images").mkdir()
    (tmp_path / "All247images" / "JPCLN001.IMG").write_bytes(b"\0" * 10)
    assert main([*args, f"data.root={tmp_path}"]) != 0
    assert "truncated or not a JSRT .IMG" in capsys.readouterr().out


def test_data_jsrt_resolves_from_the_command_line():
    assert DATASETS["jsrt"] is JSRTDataModule
    data = build_config(["data=jsrt"]).data
    assert data.spatial_dims == 2 and list(data.patch_size) == [256, 256] and data.mask == "auto" and data.split == "auto"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "chen"])
def test_pretrains_on_jsrt_for_two_steps(jsrt, tmp_path, method):
    overrides = [
        f"method={method}",
        "data=jsrt",
        f"data.root={jsrt}",
        "data.patch_size=[64,64]",
        "data.batch_size=2",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path}",
    ]
    result = pretrain(build_config(overrides))
    assert result.zoo_entry is not None and (result.zoo_entry / "encoder.safetensors").is_file()


def test_random_split_follows_split_seed_not_seed(jsrt):
    def test_ids(**seeds):
        return _ids(_setup(jsrt, split="random", mask="none", cache="none", **seeds).test_dataset)

    assert test_ids(seed=0, split_seed=0) == test_ids(seed=5, split_seed=0)
    assert any(test_ids(split_seed=s) != test_ids(split_seed=0) for s in (1, 2, 3))
