"""CheX (Kermany chest X-rays): official layout, patients from file names, patient-wise train/val split, errors."""

import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from real_data import shared_file

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.chex import CheXDataModule, patient_and_kind
from lightning_ssl.data.errors import DataError
from lightning_ssl.train import pretrain

LAYOUT = {
    "train": {
        "NORMAL": [
            "IM-0115-0001",
            "IM-0115-0002",
            "IM-0117-0001",
            "IM-0119-0001",
            "NORMAL2-IM-0027-0001",
            "NORMAL2-IM-0027-0002",
        ],
        "PNEUMONIA": [
            "person1_bacteria_1",
            "person1_virus_6",
            "person2_bacteria_3",
            "person3_virus_7",
            "person4_bacteria_9",
            "person4_bacteria_10",
            "person5_virus_11",
            "person6_bacteria_12",
        ],
    },
    "val": {"NORMAL": ["NORMAL2-IM-1427-0001"], "PNEUMONIA": ["person1946_bacteria_4874", "person1946_bacteria_4875"]},
    "test": {"NORMAL": ["IM-0001-0001", "IM-0003-0001"], "PNEUMONIA": ["person100_bacteria_475", "person101_virus_187"]},
}
COUNTS = {split: sum(len(names) for names in folders.values()) for split, folders in LAYOUT.items()}


def _jpeg(path, seed, value=None, rgb=False):
    pixels = (
        np.random.default_rng(seed).integers(0, 256, (40, 48), dtype=np.uint8)
        if value is None
        else np.full((40, 48), value, np.uint8)
    )
    image = Image.fromarray(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    (image.convert("RGB") if rgb else image).save(path, "JPEG", quality=95)
    return path


def _chex(root):
    files = [(split, folder, name) for split, folders in LAYOUT.items() for folder, names in folders.items() for name in names]
    for seed, (split, folder, name) in enumerate(files):
        _jpeg(root / "chest_xray" / split / folder / f"{name}.jpeg", seed=seed)
    return root


@pytest.fixture
def chex(tmp_path):
    return _chex(tmp_path / "data")


def _datamodule(root, **overrides):
    settings = {"patch_size": [32, 32], "batch_size": 4, "val_fraction": 0.3, **overrides}
    return CheXDataModule(OmegaConf.structured(CheXDataModule.Config(root=None if root is None else str(root), **settings)))


def _setup(root, **overrides):
    dm = _datamodule(root, **overrides)
    dm.setup()
    return dm


def _patients(dataset):
    return set(dataset.column_values("patient_id"))


def test_patients_and_types_come_from_the_file_names():
    assert patient_and_kind("person1_bacteria_1") == ("person1", "bacteria")
    assert patient_and_kind("person1_virus_6") == ("person1", "virus")
    assert patient_and_kind("IM-0115-0001") == ("IM-0115", None)
    assert patient_and_kind("NORMAL2-IM-0027-0001") == ("NORMAL2-IM-0027", None)
    assert patient_and_kind("scan_42") == (None, None)
    assert patient_and_kind("IM-0429-0001-0002") == ("IM-0429", None)
    assert patient_and_kind("NORMAL2-IM-0173-0001-0001") == ("NORMAL2-IM-0173", None)
    assert patient_and_kind("person447_virus_921_1") == ("person447", "virus")


def _split_of_every_patient(dm):
    splits = {"train": dm.train_dataset, "val": dm.val_dataset, "test": dm.test_dataset}
    where = {}
    for split, dataset in splits.items():
        for patient in _patients(dataset):
            where.setdefault(patient, set()).add(split)
    return where


def test_images_with_three_numbers_stay_with_their_patient(chex, caplog):
    extra = ["IM-0429-0001-0001", "IM-0429-0001-0002", "IM-0429-0002", "NORMAL2-IM-0173-0001-0001", "NORMAL2-IM-0173-0001-0002"]
    for seed, name in enumerate(extra):
        _jpeg(chex / "chest_xray" / "train" / "NORMAL" / f"{name}.jpeg", seed=seed)
    _jpeg(chex / "chest_xray" / "train" / "PNEUMONIA" / "person447_virus_921_1.jpeg", seed=9)
    with caplog.at_level(logging.WARNING):
        for seed in range(6):
            dm = _setup(chex, seed=seed, split_seed=seed, val_fraction=0.5)
            assert all(len(splits) == 1 for splits in _split_of_every_patient(dm).values())
            by_name = {r.image.stem: r.patient_id for d in (dm.train_dataset, dm.val_dataset) for r in d.records}
            assert {by_name[n] for n in extra[:3]} == {"IM-0429"} and by_name["person447_virus_921_1"] == "person447"
    assert "match neither" not in caplog.text


def test_train_images_of_test_patients_are_left_out_unless_asked(chex, caplog):
    _jpeg(chex / "chest_xray" / "train" / "PNEUMONIA" / "person100_virus_184.jpeg", seed=3)
    with caplog.at_level(logging.WARNING):
        dm = _setup(chex)
    assert "person100" not in _patients(dm.train_dataset) | _patients(dm.val_dataset)
    assert len(dm.train_dataset) + len(dm.val_dataset) == COUNTS["train"] + COUNTS["val"]
    assert "1 train/val image(s) of 1 CheX patient(s) who also have test images (e.g. person100) are left out" in caplog.text
    kept = _setup(chex, drop_test_patients=False)
    assert len(kept.train_dataset) + len(kept.val_dataset) == COUNTS["train"] + COUNTS["val"] + 1


@pytest.mark.slow
def test_no_patient_of_the_real_chest_xrays_is_in_two_splits(caplog):
    root = shared_file("chest_xray_224/chest_xray")
    with caplog.at_level(logging.WARNING):
        dm = _setup(root)
    where = _split_of_every_patient(dm)
    assert all(len(splits) == 1 for splits in where.values())
    assert "match neither" not in caplog.text  # every name gives its patient
    patient_of = {r.image.stem: r.patient_id for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset) for r in d.records}
    assert patient_of["IM-0429-0001-0001"] == patient_of["IM-0429-0001-0002"] == "IM-0429"
    assert len(dm.test_dataset) == 624


def test_items_follow_the_contract(chex):
    _jpeg(chex / "chest_xray" / "test" / "NORMAL" / "IM-0001-0001.jpeg", seed=0, value=102, rgb=True)
    dm = _setup(chex)
    item = dm.test_dataset[0]
    assert set(item) == {"image", "label", "patient_id"}
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert torch.allclose(item["image"], torch.full((1, 32, 32), 0.4), atol=2 / 255)  # RGB JPEG read as grey / 255
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0 and item["label"] == 0
    assert item["patient_id"] == "IM-0001"
    info = dm.info
    assert (info.spatial_dims, info.in_channels, info.patch_size, info.class_names) == (2, 1, [32, 32], ["normal", "pneumonia"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 1, 32, 32) and 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["label"].dtype == torch.int64 and len(batch["patient_id"]) == 4


def test_train_and_val_are_resplit_by_patient_and_the_official_test_kept(chex):
    dm = _setup(chex)
    train, val = _patients(dm.train_dataset), _patients(dm.val_dataset)
    assert not train & val and len(val) == 4  # 0.3 of the 13 patients of train + val
    assert len(dm.train_dataset) + len(dm.val_dataset) == COUNTS["train"] + COUNTS["val"]
    assert [r.image.stem for r in dm.test_dataset.records] == LAYOUT["test"]["NORMAL"] + LAYOUT["test"]["PNEUMONIA"]
    assert _patients(_setup(chex).val_dataset) == val  # deterministic for one seed
    assert {frozenset(_patients(_setup(chex, split_seed=s).val_dataset)) for s in range(4)} != {frozenset(val)}
    assert dm.train_labels().tolist() == [int(r.label) for r in dm.train_dataset.records]
    assert set(dm.metadata_vocabulary("patient_id")) == train


def test_official_val_keeps_the_16_image_split_and_root_may_be_the_chest_xray_folder(chex):
    dm = _setup(chex / "chest_xray", official_val=True)
    assert len(dm.train_dataset) == COUNTS["train"] and len(dm.val_dataset) == COUNTS["val"]
    assert _patients(dm.val_dataset) == {"NORMAL2-IM-1427", "person1946"}


def test_three_classes_read_the_pneumonia_type(chex):
    dm = _setup(chex, classes="three", official_val=True)
    labels = {r.image.stem: int(r.label) for r in dm.train_dataset.records}
    assert labels["IM-0115-0001"] == 0 and labels["person1_bacteria_1"] == 1 and labels["person1_virus_6"] == 2
    assert dm.info.class_names == ["normal", "bacteria", "virus"] and dm.info.num_classes == 3


def test_unmatched_names_are_their_own_patients_with_one_warning(chex, caplog):
    for name in ("scan_a", "scan_b"):
        _jpeg(chex / "chest_xray" / "train" / "PNEUMONIA" / f"{name}.jpeg", seed=1)
    with caplog.at_level(logging.WARNING):
        dm = _setup(chex, official_val=True)
    assert {"scan_a", "scan_b"} <= _patients(dm.train_dataset)
    warnings = [r.message for r in caplog.records if "match neither" in r.message]
    assert len(warnings) == 1 and warnings[0].startswith("2 CheX file name(s)")
    with pytest.raises(DataError, match=r"scan_a.jpeg .* does not say bacteria or virus: use data.classes=binary"):
        _setup(chex, classes="three")


def test_label_budgets_and_memory_cache(chex):
    dm = _setup(chex, label_budget=4)
    labeled, unlabeled = dm.budget_indices()
    assert len(labeled) == 4 and len(labeled) + len(unlabeled) == len(dm.train_dataset)
    assert set(dm.train_labels()[labeled].tolist()) == {0, 1}  # stratified
    with pytest.raises(DataError, match="asks for 100 labels but the training split has"):
        _setup(chex, label_budget=100).budget_indices()
    cached = _setup(chex, cache="memory")
    assert len(cached.train_dataset._cache) == len(cached.train_dataset)
    assert torch.equal(cached.train_dataset[3]["image"], dm.train_dataset[3]["image"])
    with pytest.raises(DataError, match="data.cache=disk needs data.cache_dir="):
        _setup(chex, cache="disk")


def _no_decoding(*args, **kwargs):
    raise AssertionError("an image file was opened")


def test_disk_cache_decodes_every_image_once_across_runs(chex, tmp_path, monkeypatch):
    settings = {"cache": "disk", "cache_dir": str(tmp_path / "cache")}
    plain = _setup(chex).train_dataset
    first = _setup(chex, **settings)
    items = [first.train_dataset[i] for i in range(len(first.train_dataset))]
    assert all(torch.equal(item["image"], plain[index]["image"]) for index, item in enumerate(items))
    assert len(list((tmp_path / "cache" / "images2d").glob("*.npz"))) == len(items)
    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", _no_decoding)
        second = _setup(chex, **settings)
        for index, item in enumerate(items):
            again = second.train_dataset[index]
            assert torch.equal(again["image"], item["image"])
            assert again["label"] == item["label"] and again["patient_id"] == item["patient_id"]
    changed = second.train_dataset.records[0].image
    _jpeg(changed, seed=0, value=0)  # a file replaced under its name is decoded again
    assert float(_setup(chex, **settings).train_dataset[0]["image"].max()) < 0.05


def test_layout_errors_explain_the_expected_layout(tmp_path):
    with pytest.raises(DataError, match=r"no chest_xray/train folder under .*: expected <root>/chest_xray/\{train,val,test\}"):
        _setup(tmp_path)
    (tmp_path / "chest_xray" / "train" / "NORMAL").mkdir(parents=True)
    with pytest.raises(DataError, match=r"chest_xray/train/PNEUMONIA is missing"):
        _setup(tmp_path)
    (tmp_path / "chest_xray" / "train" / "PNEUMONIA").mkdir()
    with pytest.raises(DataError, match=r"no images in .*chest_xray/train/\{NORMAL,PNEUMONIA\}"):
        _setup(tmp_path)
    with pytest.raises(DataError, match="data.root is not set"):
        _setup(None)


def test_truncated_jpeg_is_named_at_setup_when_read_and_by_check_data(chex, capsys):
    path = chex / "chest_xray" / "test" / "PNEUMONIA" / "person100_bacteria_475.jpeg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot read .*person100_bacteria_475.jpeg: image file is truncated"):
        _setup(chex)
    dm = _setup(chex, verify=False)
    index = next(i for i, r in enumerate(dm.test_dataset.records) if r.image == path)
    with pytest.raises(DataError, match=r"cannot read .*person100_bacteria_475.jpeg: image file is truncated"):
        dm.test_dataset[index]
    assert main(["check-data", "data=chex", f"data.root={chex}", "data.patch_size=[32,32]"]) == 1
    out = capsys.readouterr().out
    assert "problems found: 1" in out and "person100_bacteria_475.jpeg" in out


def test_check_data_prints_the_summary(chex, capsys):
    assert main(["check-data", "data=chex", f"data.root={chex}", "data.patch_size=[32,32]", "data.val_fraction=0.3"]) == 0
    out = capsys.readouterr().out
    assert "problems found: 0" in out and "normal: " in out and "pneumonia: " in out and "1x32x32" in out
    test_row = next(line for line in out.splitlines() if line.startswith("test "))
    assert test_row.split()[1:3] == [str(COUNTS["test"]), "4"]


@pytest.mark.slow
def test_simclr_with_the_patient_metadata_head_runs_on_chex(chex, tmp_path, caplog):
    overrides = [
        "method=simclr",
        "data=chex",
        f"data.root={chex}",
        "data.patch_size=[32,32]",
        "data.batch_size=4",
        "data.val_fraction=0.3",
        "method.metadata_head=true",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path / 'runs'}",
    ]
    cfg = build_config(overrides)
    patients = len(DATASETS["chex"](cfg.data).metadata_vocabulary("patient_id"))
    with caplog.at_level(logging.INFO):
        result = pretrain(cfg)
    assert f"metadata head: cross-entropy over {patients} values of 'patient_id'" in caplog.text
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
