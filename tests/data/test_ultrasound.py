"""Ultrasound: fetal planes (CSV + PNGs, official split, patient-wise val) and BUSI (images + unioned lesion masks)."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from real_data import shared_file

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.image_folder import ImageFolderDataModule
from lightning_ssl.data.ultrasound import FETAL_CSV, PLANES, BUSIDataModule, FetalPlanesDataModule
from lightning_ssl.train import pretrain

HEADER = "Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train "  # the trailing space is in the official file


def _png(path, seed=0, size=(36, 44), value=None, rgb=False):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size, dtype=np.uint8) if value is None else np.full(size, value, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert("RGB") if rgb else image).save(path)
    return path


def _fetal_rows():
    """Ten patients of two images each; patients 9 and 10 are in the official test split."""
    rows = []
    for patient in range(1, 11):
        for k in range(2):
            plane = PLANES[(patient + k) % len(PLANES)]
            brain = "Trans-thalamic" if plane == "Fetal brain" else "Not A Brain"
            name = f"Patient{patient:05d}_Plane{k + 1}_1_of_2"
            rows.append([name, str(patient), plane, brain, f"Op. {patient % 3 + 1}", "Voluson E6", "0" if patient > 8 else "1"])
    return rows


def _fetal(root, rows=None, header=HEADER):
    rows = _fetal_rows() if rows is None else rows
    root.mkdir(parents=True, exist_ok=True)
    (root / FETAL_CSV).write_text("\n".join([header, *(";".join(row) for row in rows)]) + "\n")
    for seed, row in enumerate(rows):
        _png(root / "Images" / f"{row[0]}.png", seed=seed, rgb=seed % 2 == 1)
    return root


def _square(size, corner, width=10):
    mask = np.zeros(size, np.uint8)
    mask[corner[0] : corner[0] + width, corner[1] : corner[1] + width] = 255
    return mask


def _busi(root, per_class=4):
    base = root / "Dataset_BUSI_with_GT"
    for label, name in enumerate(("benign", "malignant", "normal")):
        for i in range(1, per_class + 1):
            stem = f"{name} ({i})"
            _png(base / name / f"{stem}.png", seed=10 * label + i, size=(40, 48))
            mask = _square((40, 48), (5, 5)) if name != "normal" else np.zeros((40, 48), np.uint8)
            Image.fromarray(mask).save(base / name / f"{stem}_mask.png")
        if name != "normal":
            Image.fromarray(_square((40, 48), (20, 30))).save(base / name / f"{name} (1)_mask_1.png")
    return root


def _datamodule(cls, root, **overrides):
    settings = {"patch_size": [32, 32], "batch_size": 4, **overrides}
    return cls(OmegaConf.structured(cls.Config(root=None if root is None else str(root), **settings)))


def _setup(cls, root, **overrides):
    dm = _datamodule(cls, root, **overrides)
    dm.setup()
    return dm


def _find(dm, name):
    """(dataset, index) of the image file ``name`` in whichever split holds it."""
    for dataset in (dm.train_dataset, dm.val_dataset, dm.test_dataset):
        for index, record in enumerate(dataset.records):
            if record.image.name == name:
                return dataset, index
    raise AssertionError(f"{name} is in no split")


def test_fetal_planes_items_and_official_split(tmp_path):
    root = _fetal(tmp_path / "FETAL_PLANES_ZENODO")
    dm = _setup(FetalPlanesDataModule, tmp_path, val_fraction=0.25)  # the Zenodo folder inside root is found
    item = dm.train_dataset[0]
    assert set(item) == {"image", "label", "patient_id"}
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["label"].dtype == torch.int64
    test_patients = set(dm.test_dataset.column_values("patient_id"))
    train, val = set(dm.train_dataset.column_values("patient_id")), set(dm.val_dataset.column_values("patient_id"))
    assert test_patients == {"9", "10"} and len(val) == 2 and not train & val and train | val == {str(p) for p in range(1, 9)}
    record = next(r for r in dm.test_dataset.records if r.image.stem == "Patient00009_Plane2_1_of_2")
    assert record.image == root / "Images" / "Patient00009_Plane2_1_of_2.png" and PLANES[record.label] == PLANES[10 % 6]
    assert dm.info.class_names == ["fetal abdomen", "fetal brain", "fetal femur", "fetal thorax", "maternal cervix", "other"]
    assert dm.info.modality == "ultrasound (fetal, B-mode)" and dm.info.channel_names == ["ultrasound"]
    assert dm.metadata_vocabulary("operator") == sorted(set(dm.train_dataset.column_values("operator")))
    assert set(dm.train_dataset.column_values("us_machine")) == {"Voluson E6"}
    assert "Trans-thalamic" in dm.train_dataset.column_values("brain_plane") + dm.val_dataset.column_values("brain_plane")
    assert dm.train_dataset.column_values("scanner") is None


def test_fetal_planes_grey_value_of_an_rgb_png(tmp_path):
    rows = _fetal_rows()
    _fetal(tmp_path, rows)
    _png(tmp_path / "Images" / f"{rows[19][0]}.png", value=51, rgb=True)
    image = _setup(FetalPlanesDataModule, tmp_path).test_dataset[-1]["image"]
    assert torch.allclose(image, torch.full((1, 32, 32), 0.2), atol=1e-6)


def test_fetal_planes_errors_name_the_file_column_image_or_row(tmp_path):
    with pytest.raises(DataError, match=f"{FETAL_CSV} is missing"):
        _setup(FetalPlanesDataModule, tmp_path)
    _fetal(tmp_path, header=HEADER.replace(";Operator", ";Sonographer"))
    with pytest.raises(DataError, match=r"lacks the columns \['Operator'\]"):
        _setup(FetalPlanesDataModule, tmp_path)
    _fetal(tmp_path, header=HEADER.replace(";", ","))
    with pytest.raises(DataError, match=r"lacks the columns \['Image_name', 'Patient_num'.*semicolon-separated"):
        _setup(FetalPlanesDataModule, tmp_path)
    rows = _fetal_rows()
    rows[4][2] = "Fetal heart"
    _fetal(tmp_path, rows)
    with pytest.raises(DataError, match=r"line 6 \(Patient00003_Plane1_1_of_2\): unknown plane 'Fetal heart'"):
        _setup(FetalPlanesDataModule, tmp_path)
    _fetal(tmp_path)
    (tmp_path / "Images" / "Patient00004_Plane2_1_of_2.png").unlink()
    with pytest.raises(DataError, match=r"Patient00004_Plane2_1_of_2.png is listed in .* but missing$"):
        _setup(FetalPlanesDataModule, tmp_path)
    assert main(["check-data", "data=fetal_planes", f"data.root={tmp_path}"]) == 1


def test_fetal_planes_check_data(tmp_path, capsys):
    _fetal(tmp_path)
    assert main(["check-data", "data=fetal_planes", f"data.root={tmp_path}", "data.patch_size=[32,32]"]) == 0
    out = capsys.readouterr().out
    assert "problems found: 0" in out and "1x32x32" in out
    assert next(line for line in out.splitlines() if line.startswith("test ")).split()[1:3] == ["4", "2"]


def test_busi_items_masks_are_the_union_of_the_mask_files(tmp_path):
    _busi(tmp_path)
    dm = _setup(BUSIDataModule, tmp_path / "Dataset_BUSI_with_GT", val_fraction=0.1, test_fraction=0.2)
    datasets = [dm.train_dataset, dm.val_dataset, dm.test_dataset]
    assert [len(d) for d in datasets] == [9, 1, 2]
    names = [{str(r.image) for r in d.records} for d in datasets]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    dataset, index = _find(dm, "benign (1).png")
    assert [m.name for m in dataset.records[index].masks] == ["benign (1)_mask.png", "benign (1)_mask_1.png"]
    item = dataset[index]
    assert set(item) == {"image", "label", "mask"} and item["label"] == 0
    assert (
        item["mask"].shape == (1, 32, 32) and item["mask"].dtype == torch.uint8 and set(item["mask"].unique().tolist()) == {0, 1}
    )
    two_squares = np.maximum(_square((40, 48), (5, 5)), _square((40, 48), (20, 30)))
    expected = np.asarray(Image.fromarray(two_squares).resize((32, 32), Image.Resampling.NEAREST)) // 255
    assert torch.equal(item["mask"][0], torch.from_numpy(expected))
    assert dm.train_dataset.column_values("patient_id") is None and dm.metadata_vocabulary("patient_id") is None
    assert dm.info.class_names == ["benign", "malignant", "normal"] and dm.info.modality == "ultrasound (breast, B-mode)"


def test_busi_errors_name_the_image_and_mask(tmp_path):
    with pytest.raises(DataError, match=r"no Dataset_BUSI_with_GT/\{benign,malignant,normal\} folders under"):
        _setup(BUSIDataModule, tmp_path)
    _busi(tmp_path)
    folder = tmp_path / "Dataset_BUSI_with_GT" / "malignant"
    (folder / "malignant (2)_mask.png").unlink()
    with pytest.raises(DataError, match=r"malignant \(2\).png has no mask: expected malignant \(2\)_mask.png"):
        _setup(BUSIDataModule, tmp_path)
    Image.fromarray(_square((30, 48), (5, 5))).save(folder / "malignant (2)_mask.png")
    with pytest.raises(DataError, match=r"mask .*malignant \(2\)_mask.png is 48x30 but its image .*malignant \(2\).png is 48x40"):
        _setup(BUSIDataModule, tmp_path)
    dataset, index = _find(_setup(BUSIDataModule, tmp_path, verify=False), "malignant (2).png")
    with pytest.raises(DataError, match=r"mask .*malignant \(2\)_mask.png is 48x30 but its image .*malignant \(2\).png is 48x40"):
        dataset[index]  # without the verify pass, found when read
    Image.fromarray(np.full((40, 48), 128, np.uint8)).save(folder / "malignant (2)_mask.png")
    with pytest.raises(DataError, match=r"mask .*malignant \(2\)_mask.png holds values \[128\]: expected a binary mask"):
        _setup(BUSIDataModule, tmp_path)
    dataset, index = _find(_setup(BUSIDataModule, tmp_path, verify=False), "malignant (2).png")
    with pytest.raises(DataError, match=r"mask .*malignant \(2\)_mask.png holds values \[128\]: expected a binary mask"):
        dataset[index]


def test_busi_check_data_and_label_budget(tmp_path, capsys):
    _busi(tmp_path)
    assert main(["check-data", "data=busi", f"data.root={tmp_path}", "data.patch_size=[32,32]", "data.label_budget=3"]) == 0
    out = capsys.readouterr().out
    assert "problems found: 0" in out and "0, 1" in out and "train: labeled" in out
    with pytest.raises(DataError, match="asks for 50 labels"):
        _setup(BUSIDataModule, tmp_path, label_budget=50).budget_indices()


@pytest.mark.slow
def test_chen_runs_on_busi(tmp_path):
    _busi(tmp_path / "data")
    overrides = [
        "method=chen",
        "data=busi",
        f"data.root={tmp_path / 'data'}",
        "data.patch_size=[32,32]",
        "data.batch_size=4",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path / 'runs'}",
    ]
    result = pretrain(build_config(overrides))
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()


def test_real_ultrasound_images_through_image_folder():
    femur = shared_file("ultrasound/femur_input.png")
    dm = _setup(ImageFolderDataModule, femur.parent, modality="ultrasound", patch_size=[64, 64])
    items = [dm.train_dataset[i] for i in range(len(dm.train_dataset))]
    assert sorted(dm.train_dataset.column_values("patient_id")) == ["femur_input", "neck_input"]
    assert dm.val_dataset is dm.train_dataset and dm.test_dataset is None  # two images: nobody to hold out
    for item in items:
        assert set(item) == {"image", "patient_id"} and item["image"].shape == (1, 64, 64)
        assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["image"].std() > 0.05
    assert dm.info.modality == "ultrasound"


def _without_masks(root, keep=()):
    for mask in (root / "Dataset_BUSI_with_GT").rglob("*_mask*.png"):
        if mask.name not in keep:
            mask.unlink()
    return root


def test_busi_without_mask_files_is_a_classification_set(tmp_path, capsys, caplog):
    _without_masks(_busi(tmp_path))
    dm = _setup(BUSIDataModule, tmp_path)  # auto: no image has a mask
    assert set(dm.train_dataset[0]) == {"image", "label"} and "has a mask file: classification only" in caplog.text
    assert set(_setup(BUSIDataModule, tmp_path, with_masks=False).train_dataset[0]) == {"image", "label"}
    with pytest.raises(DataError, match=r"no image under .* has a mask file \(12 images\): this BUSI copy supports classification only, set data.with_masks=false$"):
        _setup(BUSIDataModule, tmp_path, with_masks=True)
    assert main(["check-data", "data=busi", f"data.root={tmp_path}", "data.patch_size=[32,32]"]) == 0
    assert "supports: self-supervised pretraining, classification (3 classes)\n" in capsys.readouterr().out
    assert main(["check-data", "data=busi", f"data.root={tmp_path}", "data.patch_size=[32,32]", "data.with_masks=true"]) == 1
    out = capsys.readouterr().out
    assert "problems found: 1" in out and "supports classification only" in out


def test_busi_lists_every_image_without_its_mask(tmp_path, capsys):
    _without_masks(_busi(tmp_path), keep={"benign (1)_mask.png", "benign (2)_mask.png"})
    assert main(["check-data", "data=busi", f"data.root={tmp_path}", "data.patch_size=[32,32]"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("- ")]
    assert len(lines) == 10 and all("has no mask: expected" in line and "data.with_masks=false" in line for line in lines)
    assert _setup(BUSIDataModule, tmp_path, with_masks=False).info.num_classes == 3


def test_busi_with_masks_supports_both_tasks(tmp_path, capsys):
    _busi(tmp_path)
    assert main(["check-data", "data=busi", f"data.root={tmp_path}", "data.patch_size=[32,32]"]) == 0
    assert "supports: self-supervised pretraining, classification (3 classes), segmentation (masks)" in capsys.readouterr().out
