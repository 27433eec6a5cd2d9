"""data=decathlon: Medical Segmentation Decathlon / nnU-Net raw folders read, normalised, split and checked."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from decathlon_data import (
    MRI_LABELS,
    SHAPE,
    ct_case,
    mri_case,
    save,
    set_up,
    write_decathlon,
)
from real_data import shared_file

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.case_labels import label_map_pairs
from lightning_ssl.data.decathlon import DecathlonDataModule, LoadCase
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import normalise_mri, window_hu
from lightning_ssl.data.sampling import Draw
from lightning_ssl.errors import ConfigError


def ids(dataset):
    return {dataset[i]["patient_id"] for i in range(len(dataset))}


def problem_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("- ")]


def test_ct_items_are_windowed_patches_with_masks(tmp_path):
    root = write_decathlon(tmp_path, cases=4)
    dm = set_up(root, val_fraction=0.25, test_fraction=0.25)
    assert DATASETS["decathlon"] is DecathlonDataModule
    item = dm.train_dataset[0]
    assert set(item) == {"image", "mask", "patient_id", "meta"} and item["patient_id"].startswith("case_")
    assert item["image"].shape == (1, 16, 16, 16) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["mask"].shape == (1, 16, 16, 16) and item["mask"].dtype == torch.uint8
    assert set(item["mask"].unique().tolist()) <= {0, 1} and item["meta"]["spacing"].tolist() == [1.0, 1.0, 1.0]
    info = dm.info
    assert (info.in_channels, info.channel_names, info.num_classes) == (1, ["CT"], None)
    assert info.intensity == "CT: HU clipped to [-1000, 1000] then scaled to [0, 1]" and info.modality == "CT (fixture)"
    whole = set_up(root, "volumes", val_fraction=0.25, test_fraction=0.25, hu_window=[-100, 300]).val_dataset[0]
    hu, labels = ct_case(int(whole["patient_id"][-3:]))
    assert whole["image"].shape == (1, *SHAPE) and torch.equal(whole["mask"][0], torch.from_numpy(labels))
    assert torch.allclose(whole["image"][0], torch.from_numpy(window_hu(hu, [-100, 300])))


def test_a_label_budget_larger_than_the_training_cases_names_them(tmp_path):
    dm = set_up(write_decathlon(tmp_path, cases=4), val_fraction=0.25, test_fraction=0.25, label_budget=3)
    with pytest.raises(DataError, match="asks for 3 labels but the training split has 2 labeled cases: lower data.label_budget"):
        dm.budget_indices()


@pytest.mark.parametrize("per_channel_files", [False, True])
def test_four_channel_mri_from_one_4d_file_or_a_file_per_channel(tmp_path, per_channel_files):
    root = write_decathlon(tmp_path, cases=3, modality="MRI", per_channel_files=per_channel_files)
    dm = set_up(root, "volumes", val_fraction=0.34, test_fraction=0.0)
    item = dm.val_dataset[0]
    channels, labels = mri_case(int(item["patient_id"][-3:]))
    expected = normalise_mri(np.moveaxis(channels, -1, 0).astype(np.float32))
    assert item["image"].shape == (4, *SHAPE) and torch.allclose(item["image"], torch.from_numpy(expected), atol=1e-6)
    assert torch.equal(item["mask"][0], torch.from_numpy(labels)) and set(item["mask"].unique().tolist()) == {0, 1, 2, 3}
    assert dm.train_dataset[0]["image"].shape == (4, 16, 16, 16)
    info = dm.info
    assert info.in_channels == 4 and info.channel_names == ["FLAIR", "T1w", "t1gd", "T2w"] and info.modality.startswith("MRI")
    assert "z-score over brain voxels (non-zero)" in info.intensity


def test_nnunet_v2_folders_without_a_training_list(tmp_path):
    root = write_decathlon(tmp_path, cases=3, modality="MRI", per_channel_files=True, test="unlabelled")
    description = json.loads((root / "dataset.json").read_text())
    v2 = {"channel_names": description["modality"], "labels": {name: int(k) for k, name in MRI_LABELS.items()},
          "numTraining": 3, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(v2))
    dm = set_up(root, val_fraction=0.34, test_fraction=0.0)
    assert [(c.case_id, c.role, len(c.images)) for c in dm.cases] == [
        *[(f"case_{i:03d}", "training", 4) for i in range(3)], *[(f"test_{i:03d}", "pool", 4) for i in range(2)]
    ]
    assert dm.info.channel_names == ["FLAIR", "T1w", "t1gd", "T2w"] and dm.train_dataset[0]["image"].shape == (4, 16, 16, 16)


def test_training_patches_hold_foreground_as_often_as_asked_and_come_from_item_rng(tmp_path):
    root = write_decathlon(tmp_path, cases=3)
    always = set_up(root, patch_size=[8, 8, 8], val_fraction=0.0, test_fraction=0.0, foreground_fraction=1.0).train_dataset
    never = set_up(root, patch_size=[8, 8, 8], val_fraction=0.0, test_fraction=0.0, foreground_fraction=0.0).train_dataset
    assert all(always[i % len(always)]["mask"][0, 4, 4, 4] == 1 for i in range(24))  # centred on the lesion
    assert all(never[i % len(never)]["mask"][0, 4, 4, 4] == 0 for i in range(24))  # centred on background
    first, again, other = (always[Draw(1, key)]["image"] for key in [(0, 0, 0, 1), (0, 0, 0, 1), (0, 1, 0, 1)])
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_small_volumes_are_padded_and_whole_volumes_come_one_per_batch(tmp_path):
    root = write_decathlon(tmp_path, cases=4)
    dm = set_up(root, "volumes", patch_size=[32, 16, 16], val_fraction=0.25, test_fraction=0.25)
    assert dm.train_dataset[0]["image"].shape == (1, 32, 16, 16)
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (1, 1, 32, 24, 20) and batch["mask"].shape == (1, 1, 32, 24, 20)  # padded in X only
    assert next(iter(dm.test_dataloader()))["image"].shape[0] == 1
    patches = set_up(root, patch_size=[32, 16, 16], val_fraction=0.25, test_fraction=0.25)
    assert next(iter(patches.val_dataloader()))["image"].shape == (2, 1, 32, 16, 16)


def test_axial_slices_for_2d_and_whole_volumes_to_score(tmp_path):
    root = write_decathlon(tmp_path, cases=4)
    dm = set_up(root, "volumes", spatial_dims=2, patch_size=[16, 16], val_fraction=0.25, test_fraction=0.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 16, 16) and batch["mask"].shape == (2, 1, 16, 16)
    assert batch["meta"]["spacing"].shape == (2, 2) and dm.info.axes == "X,Y (axial slices)"
    assert dm.val_dataset[0]["image"].shape == (1, *SHAPE)


def test_splits_are_by_patient_and_follow_split_seed_not_seed(tmp_path):
    names = [f"pat{p}_scan{s}" for p in range(6) for s in range(2)]
    root = write_decathlon(tmp_path, names=names)
    settings = {"val_fraction": 0.2, "test_fraction": 0.2, "patient_regex": r"(pat\d+)_"}
    dm = set_up(root, **settings)
    train, val, test = (ids(d) for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset))
    assert (len(train), len(val), len(test)) == (4, 1, 1) and not (train & val or train & test or val & test)
    assert len(dm.val_dataset) == 2 * 2  # both scans of the patient, two patches each
    assert ids(set_up(root, seed=7, **settings).test_dataset) == test
    assert any(ids(set_up(root, split_seed=s, **settings).test_dataset) != test for s in (1, 2, 3))
    with pytest.raises(DataError, match=r"data.patient_regex='\(patient\\\\d\+\)' does not match .*pat0_scan0.nii.gz"):
        set_up(root, patient_regex=r"(patient\d+)")


def test_labelled_imagests_is_the_test_split(tmp_path):
    root = write_decathlon(tmp_path, cases=5, test="labelled")
    dm = set_up(root, "volumes", val_fraction=0.2, test_fraction=0.4)
    assert ids(dm.test_dataset) == {"test_000", "test_001"} and "mask" in dm.test_dataset[0]
    assert len(ids(dm.train_dataset)) == 4 and len(ids(dm.val_dataset)) == 1


def test_unlabelled_imagests_joins_the_pretraining_pool_but_no_budget(tmp_path):
    root = write_decathlon(tmp_path, cases=5, test="unlabelled")
    dm = set_up(root, val_fraction=0.2, test_fraction=0.2, label_budget=2)
    assert {"test_000", "test_001"} <= ids(dm.train_dataset) and not {"test_000", "test_001"} & ids(dm.test_dataset)
    labeled, unlabeled = dm.budget_datasets()
    assert len(ids(labeled)) == 2 and not ids(labeled) & {"test_000", "test_001"} and "mask" in labeled[0]
    assert {"test_000", "test_001"} <= ids(unlabeled) and all("mask" not in unlabeled[i] for i in range(len(unlabeled)))
    batch = next(iter(dm.train_dataloader()))  # pretraining: every case, the keys they all have
    assert set(batch) == {"image", "patient_id", "meta"}
    dm.training_data = "labeled"
    assert "mask" in next(iter(dm.train_dataloader()))


def write_table(root, rows, header="case,scan,malignancy"):
    path = root / "ratings.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


CLASSES = {"case_labels": "ratings.csv", "label_column": "malignancy", "label_map": {1: 0, 2: 0, 3: 0, 4: 1, 5: 1}}


def test_case_classes_from_a_table_with_a_map_a_threshold_or_the_values(tmp_path):
    root = write_decathlon(tmp_path, cases=10)
    values = [1, 5, 2, 4, 3, 5, "", 4, 1, ""]  # case_006 and case_009 have no rating
    write_table(root, [f"case_{i:03d},{i},{v}" for i, v in enumerate(values)])
    dm = set_up(root, val_fraction=0.25, test_fraction=0.25, label_budget=4, **CLASSES)
    assert dm.info.num_classes == 2 and dm.info.class_names == ["malignancy 1,2,3", "malignancy 4,5"]
    assert dm.classes == {f"case_{i:03d}": int(v >= 4) for i, v in enumerate(values) if v != ""}
    scored = ids(dm.val_dataset) | ids(dm.test_dataset)
    assert not scored & {"case_006", "case_009"} and {"case_006", "case_009"} <= ids(dm.train_dataset)
    assert len(dm.val_dataset) == 2 and all(dm.val_dataset[i]["label"] == dm.classes[dm.val_dataset[i]["patient_id"]] for i in range(2))
    labeled = dm.labeled_dataset()
    assert len(ids(labeled)) == 4 and not ids(labeled) & {"case_006", "case_009"}
    assert sorted(int(labeled[i]["label"]) for i in range(0, len(labeled), 2)) == [0, 0, 1, 1]  # stratified
    classes = [dm.train_dataset[i].get("label") for i in range(len(dm.train_dataset))]
    assert any(c is None for c in classes) and dm.train_labels().tolist().count(-1) == 2 * 2
    per_case = dm.budget_labels()  # what data.label_budget counts: cases, not their 2 patches each
    assert per_case.tolist() == [dm.classes.get(c, -1) for c in sorted(ids(dm.train_dataset))]
    assert all(item["mask"].any() for item in (dm.train_dataset[i] for i in range(len(dm.train_dataset))) if "label" in item)  # the lesion
    threshold = set_up(root, **{**CLASSES, "label_map": None, "label_threshold": 4}, class_names=["benign", "malignant"])
    assert threshold.classes == dm.classes and threshold.info.class_names == ["benign", "malignant"]
    by_value = set_up(root, **{**CLASSES, "label_map": None})
    assert by_value.info.class_names == [f"malignancy {v}" for v in range(1, 6)] and by_value.classes["case_001"] == 4


def test_every_value_outside_the_map_is_a_problem_naming_its_line(tmp_path, capsys):
    root = write_decathlon(tmp_path, cases=6)
    write_table(root, ["case_000,0,1", "case_001,1,7", "case_002,2,4", "case_003,3,high", "case_003,3,4"])
    table = root / "ratings.csv"
    with pytest.raises(DataError, match=rf"{re.escape(str(table))} line 3 \(case case_001\): malignancy='7' is not in data.label_map .*\(and 2 more"):
        set_up(root, **CLASSES)
    overrides = ["data=decathlon", f"data.root={root}", "data.patch_size=[16,16,16]", "data.case_labels=ratings.csv", "data.label_column=malignancy"]
    assert main(["check-data", *overrides, "data.label_map={1: 0, 2: 0, 3: 0, 4: 1, 5: 1}"]) == 1
    lines = problem_lines(capsys.readouterr().out)
    assert len(lines) == 3 and "line 5 (case case_003): malignancy='high' is not in data.label_map" in lines[1]
    assert "line 6 (case case_003): case case_003 is already on line 5: keep one row per case" in lines[2]
    with pytest.raises(DataError, match="line 5 .*malignancy='high' is not a number"):
        set_up(root, **{**CLASSES, "label_map": None, "label_threshold": 4})
    with pytest.raises(DataError, match=r"ratings.csv has no column 'grade' \(its columns: case, scan, malignancy\)"):
        set_up(root, **{**CLASSES, "label_column": "grade"})
    with pytest.raises(ConfigError, match="data.class_names has 3 names but the labels make 2 classes"):
        set_up(root, **CLASSES, class_names=["a", "b", "c"])
    with pytest.raises(ConfigError, match="data.case_labels needs data.label_column"):
        set_up(root, case_labels="ratings.csv")


def test_label_maps_as_the_command_line_and_yaml_give_them():
    expected = [("1", 0), ("2", 0), ("3", 0), ("4", 1), ("5", 1)]
    from_shell = build_config(["data=decathlon", "data.label_map={1:0,2:0,3:0,4:1,5:1}"]).data.label_map  # YAML 1.1 base 60
    assert label_map_pairs(from_shell) == expected
    assert label_map_pairs({1: 0, 2: 0, 3: 0, 4: 1, 5: 1}) == expected == label_map_pairs("{1:0, 2:0, 3:0, 4:1, 5:1}")
    assert label_map_pairs(build_config(["data=decathlon", "data.label_map={a:benign,b:malignant}"]).data.label_map) == [
        ("a", "benign"), ("b", "malignant")
    ]
    with pytest.raises(ConfigError, match="data.label_map=301 is not a map: write .* in quotes"):
        label_map_pairs(301)  # what an unquoted {1:0,...,5:1} leaves after the shell's brace expansion


def break_copy(root):
    """Three problems: a missing label file, a label map on another grid, a label value dataset.json does not list."""
    missing = root / "labelsTr" / "case_001.nii.gz"
    missing.unlink()
    other_grid = save(np.zeros((24, 24, 19), np.uint8), root / "labelsTr" / "case_002.nii.gz")
    _, labels = ct_case(3)
    value_3 = save(np.where(labels == 1, 3, 0).astype(np.uint8), root / "labelsTr" / "case_003.nii.gz")
    return missing, other_grid, value_3


def test_check_data_summarises_cases_and_names_each_problem_on_one_line(tmp_path, capsys):
    root = write_decathlon(tmp_path / "ok", cases=5, test="labelled")
    args = ["check-data", "DATA=decathlon", f"data.root={root}", "data.patch_size=[16,16,16]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "problems found: 0" in out and "segmentation (masks)" in out and "cases: 7" in out
    row = next(line for line in out.splitlines() if line.startswith("test_001"))
    assert re.split(r"\s{2,}", row)[1:] == ["test_001", "test", "24x24x20", "1x1x1", "[-1000, 120]", "0, 1", "-"]
    broken = write_decathlon(tmp_path / "broken", cases=5)
    missing, other_grid, value_3 = break_copy(broken)
    with pytest.raises(DataError, match=rf"{re.escape(str(missing))} is missing \(dataset.json lists it for case case_001\).*\(and 2 more"):
        set_up(broken)
    assert main(["check-data", "DATA=decathlon", f"data.root={broken}", "data.patch_size=[16,16,16]"]) == 1
    lines = problem_lines(capsys.readouterr().out)
    assert len(lines) == 3 and str(missing) in lines[0]
    assert f"{other_grid} is 24x24x19 but its image" in lines[1] and "case_002.nii.gz is 24x24x20" in lines[1]
    assert f"{value_3} holds label value(s) [3] that dataset.json does not list (0 background, 1 lesion)" in lines[2]


def test_folder_and_file_errors_name_what_to_fix(tmp_path):
    with pytest.raises(DataError, match="dataset.json does not exist: data.root must be the folder holding dataset.json"):
        set_up(tmp_path)
    root = write_decathlon(tmp_path / "mri", cases=2, modality="MRI")
    description = json.loads((root / "dataset.json").read_text())
    description["modality"] = {"0": "FLAIR", "1": "T1w"}
    (root / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(DataError, match=r"case_000.nii.gz is 24x24x20x4 but dataset.json names 2 channel\(s\)"):
        set_up(root, val_fraction=0.0, test_fraction=0.0)
    scaled = write_decathlon(tmp_path / "ct", cases=2)
    with pytest.raises(DataError, match=r"case_000.nii.gz holds values in \[-1000, 120\], not \[0, 1\]: .* use data.intensity=auto"):
        set_up(scaled, val_fraction=0.0, test_fraction=0.0, intensity="none").train_dataset[0]
    cut = scaled / "imagesTr" / "case_001.nii.gz"
    cut.write_bytes(cut.read_bytes()[:-300])
    with pytest.raises(DataError, match=rf"cannot read {re.escape(str(cut))}: .*is the file complete"):
        set_up(scaled, val_fraction=0.0, test_fraction=0.0)


def test_resampling_to_a_spacing(tmp_path):
    root = write_decathlon(tmp_path, cases=2, spacing=(1.0, 1.0, 2.0))
    dm = set_up(root, "volumes", val_fraction=0.5, test_fraction=0.0, spacing=[2.0, 2.0, 2.0], patch_size=[8, 8, 8])
    item = dm.val_dataset[0]
    assert item["image"].shape == (1, 12, 12, 20) and item["mask"].shape == (1, 12, 12, 20)
    assert item["meta"]["spacing"].tolist() == [2.0, 2.0, 2.0] and dm.info.spacing == [2.0, 2.0, 2.0]
    assert set(item["mask"].unique().tolist()) == {0, 1}  # nearest-neighbour labels


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_cached_cases_give_the_same_items_and_disk_is_not_decoded_again(tmp_path, cache, monkeypatch):
    root = write_decathlon(tmp_path / "data", cases=3)
    settings = {"val_fraction": 0.34, "test_fraction": 0.0, "cache": cache, "cache_dir": str(tmp_path / "cache")}
    plain = set_up(root, "volumes", val_fraction=0.34, test_fraction=0.0).val_dataset[0]
    cached = set_up(root, "volumes", **settings)
    assert all(torch.equal(plain[k], cached.val_dataset[0][k]) for k in ("image", "mask"))
    if cache == "disk":
        assert len(list((tmp_path / "cache" / "decathlon").glob("*.npz"))) == 1
        monkeypatch.setattr(LoadCase, "decode", lambda self, item: pytest.fail("decoded again"))
        assert torch.equal(set_up(root, "volumes", **settings).val_dataset[0]["image"], plain["image"])


@pytest.mark.slow
def test_genesis_pretrains_on_a_decathlon_folder_through_the_cli(tmp_path):
    root = write_decathlon(tmp_path / "data", cases=4, test="unlabelled")
    args = ["pretrain", "METHOD=genesis", "DATA=decathlon", f"data.root={root}", "data.patch_size=[16,16,16]", "data.batch_size=2",
            "network.features=[4,8,16]", "trainer.max_steps=-1", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.enable_progress_bar=false", "logger=csv", f"output_dir={tmp_path / 'runs'}", f"zoo.store={tmp_path / 'zoo'}"]
    assert main(args) == 0
    assert list((tmp_path / "runs").rglob("last.ckpt")) and "val/loss" in next((tmp_path / "runs").rglob("metrics.csv")).read_text()


LIDC = ["DATA=decathlon", "data.intensity=none", "data.patch_size=[32,32,32]"]


@pytest.mark.slow
def test_real_lidc_nodules_check_clean(capsys):
    root = shared_file("lidc_nodules/dataset.json").parent
    assert main(["check-data", *LIDC, f"data.root={root}", "data.cache=memory"]) == 0
    out = capsys.readouterr().out
    assert "problems found: 0" in out and "cases: 134" in out and "segmentation (masks)" in out
    rows = [line for line in out.splitlines() if line.startswith("lidc_")]
    assert len(rows) == 134 and all(re.split(r"\s{2,}", row)[3:7:3] == ["51x51x51", "0, 1"] for row in rows)


def test_real_lidc_malignancy_classes_and_patches():
    root = shared_file("lidc_nodules/dataset.json").parent
    dm = set_up(root, "volumes", intensity="none", patch_size=[32, 32, 32], case_labels="nodule_ratings.csv",
                label_column="malignancy", label_threshold=4, class_names=["benign", "malignant"])
    assert sorted(np.bincount(list(dm.classes.values())).tolist()) == [67, 67] and len(dm.cases) == 134
    item = dm.train_dataset[0]
    assert item["image"].shape == (1, 32, 32, 32) and 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["mask"].any() and int(item["label"]) == dm.classes[item["patient_id"]]  # centred on the nodule
    whole = dm.test_dataset[0]
    assert whole["image"].shape == (1, 51, 51, 51) and set(whole["mask"].unique().tolist()) == {0, 1}


def test_real_lidc_broken_copy_names_each_problem_on_one_line(tmp_path, capsys):
    source = shared_file("lidc_nodules/dataset.json").parent
    root = tmp_path / "lidc_broken"
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
        for path in (source / folder).iterdir():
            (root / folder / path.name).symlink_to(path)
    (root / "dataset.json").symlink_to(source / "dataset.json")
    missing = root / "labelsTr" / "lidc_0001_nod1.nii.gz"
    missing.unlink()
    other_grid, value_3 = root / "labelsTr" / "lidc_0002_nod3.nii.gz", root / "labelsTr" / "lidc_0003_nod1.nii.gz"
    for path, change in ((other_grid, lambda m: m[:, :, :50]), (value_3, lambda m: np.where(m > 0, 3, 0))):
        label = nib.load(str(source / "labelsTr" / path.name))
        path.unlink()
        nib.save(nib.Nifti1Image(change(np.asarray(label.dataobj)).astype(np.uint8), label.affine), str(path))
    assert main(["check-data", *LIDC, f"data.root={root}"]) == 1
    lines = problem_lines(capsys.readouterr().out)
    assert len(lines) == 3 and f"{missing} is missing" in lines[0]
    assert f"{other_grid} is 51x51x50 but its image" in lines[1] and f"{value_3} holds label value(s) [3]" in lines[2]
