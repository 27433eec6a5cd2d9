"""BraTS: three official layouts, canonical channels and labels, patches inside the brain, case splits, clear errors."""

import re

import nibabel as nib
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from real_data import shared_file

from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.brats import BraTSDataModule
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import normalise_mri
from lightning_ssl.train import pretrain
from lightning_ssl.metrics.brats_labels import brats_regions

SHAPE = (24, 24, 16)
OLD = ("_", ("t1", "t1ce", "t2", "flair"))
NAMING = {"2017-2020": OLD, "2021": OLD, "2023": ("-", ("t1n", "t1c", "t2w", "t2f"))}
MODEL_RUN = ["network.features=[4,8,16]", "data.batch_size=2", "trainer.max_steps=2", "trainer.enable_progress_bar=false"]


def case_id(layout, i):
    return {"2017-2020": f"BraTS20_Training_{i:03d}", "2021": f"BraTS2021_{i:05d}", "2023": f"BraTS-GLI-{i:05d}-000"}[layout]


def raw_case(seed, shape=SHAPE):
    """Four int16 modalities (t1, t1ce, t2, flair order), zero outside an ellipsoid brain, and a canonical label map."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grid))
    brain = radius < 0.9
    modalities = [
        np.where(brain, 100 * (k + 1) + 40 * grid[k % 3] + rng.normal(0, 5, shape), 0).astype(np.int16) for k in range(4)
    ]
    seg = np.select([radius < 0.15, radius < 0.3, radius < 0.45], [1, 3, 2], 0).astype(np.uint8)
    return modalities, seg


def write_case(root, layout, i, labeled=True, shape=SHAPE, ext=".nii.gz"):
    """One case in the official naming of ``layout``; labels written in the layout's convention (3 -> 4 before 2023)."""
    case = case_id(layout, i)
    folder = root / case
    folder.mkdir(parents=True)
    separator, suffixes = NAMING[layout]
    modalities, seg = raw_case(i, shape)
    for suffix, volume in zip(suffixes, modalities):
        nib.save(nib.Nifti1Image(volume, np.eye(4)), str(folder / f"{case}{separator}{suffix}{ext}"))
    if labeled:
        on_disk = np.where(seg == 3, 4, seg) if layout != "2023" else seg
        nib.save(nib.Nifti1Image(on_disk.astype(np.uint8), np.eye(4)), str(folder / f"{case}{separator}seg{ext}"))
    return folder


def write_set(root, layout="2023", labeled=5, unlabeled=0):
    for i in range(labeled + unlabeled):
        write_case(root, layout, i, labeled=i < labeled)
    return root


def datamodule(root, **overrides):
    settings = {"patch_size": [16, 16, 8], "batch_size": 2, **overrides}
    return BraTSDataModule(OmegaConf.structured(BraTSDataModule.Config(root=str(root), **settings)))


def setup(root, **overrides):
    dm = datamodule(root, **overrides)
    dm.setup("fit")
    return dm


def ids(dataset):
    return {dataset[i]["patient_id"] for i in range(len(dataset))}


@pytest.mark.parametrize(
    "layout,ext", [("2017-2020", ".nii.gz"), ("2021", ".nii.gz"), ("2023", ".nii.gz"), ("2017-2020", ".nii")]
)
def test_each_layout_gives_channels_in_canonical_order_and_canonical_labels(tmp_path, layout, ext):
    write_case(tmp_path, layout, 0, ext=ext)
    dm = setup(tmp_path, patch_size=list(SHAPE), val_fraction=0.0)
    assert [c.layout.name for c in dm.cases] == [layout]
    item = dm.train_dataset[0]  # the patch is the whole volume
    modalities, seg = raw_case(0)
    assert set(item) == {"image", "mask", "patient_id", "meta"} and item["patient_id"] == case_id(layout, 0)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (4, *SHAPE)
    assert torch.allclose(item["image"], torch.from_numpy(normalise_mri(np.stack(modalities).astype(np.float32))), atol=1e-5)
    assert item["mask"].dtype == torch.uint8 and torch.equal(item["mask"][0], torch.from_numpy(seg))
    assert set(item["mask"].unique().tolist()) == {0, 1, 2, 3}
    assert item["meta"]["spacing"].tolist() == [1.0, 1.0, 1.0]


def test_info_is_known_from_the_config():
    info = BraTSDataModule(build_config(["data=brats"]).data).info
    assert (info.spatial_dims, info.in_channels, info.channel_names) == (3, 4, ["t1", "t1ce", "t2", "flair"])
    assert info.patch_size == [96, 96, 64] and info.spacing == [1.0, 1.0, 1.0] and info.modality == "MRI (brain, BraTS)"
    assert info.num_classes is None and info.class_names == [] and "z-score over brain voxels" in info.intensity
    assert DATASETS["brats"] is BraTSDataModule


@pytest.mark.parametrize("spatial_dims,patch", [(3, [16, 16, 8]), (2, [16, 12])])
def test_batches_in_3d_and_as_axial_slices(tmp_path, spatial_dims, patch):
    dm = setup(write_set(tmp_path), spatial_dims=spatial_dims, patch_size=patch, batch_size=3, patches_per_case=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 4, *patch) and 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["mask"].shape == (3, 1, *patch) and set(batch["mask"].unique().tolist()) <= {0, 1, 2, 3}
    assert len(batch["patient_id"]) == 3 and batch["meta"]["spacing"].shape == (3, spatial_dims)
    assert dm.info.spatial_dims == spatial_dims and len(dm.train_dataset) == 2 * 4


def test_patches_are_centred_inside_the_brain(tmp_path):
    dm = setup(write_set(tmp_path, labeled=2), patch_size=[6, 6, 4], val_fraction=0.5)
    centres = [dm.train_dataset[0]["image"][:, 3, 3, 2] for _ in range(30)]
    assert all(float(c.sum()) > 0 for c in centres)  # outside the brain every channel is 0


def test_split_by_case_with_unlabeled_cases_in_the_pool(tmp_path):
    for i in range(5):
        write_case(tmp_path / "MICCAI_BraTS2020_TrainingData", "2017-2020", i)
    for i in range(5, 7):
        write_case(tmp_path / "MICCAI_BraTS2020_ValidationData", "2017-2020", i, labeled=False)
    dm = setup(tmp_path, val_fraction=0.2, test_fraction=0.2, patches_per_case=2, with_masks=True)
    train, val, test = ids(dm.train_dataset), ids(dm.val_dataset), ids(dm.test_dataset)
    assert (len(train), len(val), len(test)) == (3, 1, 1) and train | val | test == {case_id("2017-2020", i) for i in range(5)}
    assert "mask" in dm.val_dataset[0] and "mask" in dm.test_dataset[0]
    unlabeled = dm.unlabeled_dataset()
    assert ids(unlabeled) == {case_id("2017-2020", 5), case_id("2017-2020", 6)} and "mask" not in unlabeled[0]
    assert next(iter(dm.unlabeled_dataloader()))["image"].shape == (2, 4, 16, 16, 8)
    first, again = (torch.stack([dm.val_dataset[i]["image"] for i in range(2)]) for _ in range(2))
    assert torch.equal(first, again) and not torch.equal(first[0], first[1])  # fixed by seed, two different patches
    assert dm.metadata_vocabulary("patient_id") == sorted(train)


def test_label_budget_counts_cases_and_a_too_large_one_fails(tmp_path):
    dm = setup(write_set(tmp_path, labeled=5, unlabeled=1), patches_per_case=2, label_budget=2, with_masks=True)
    assert len(dm.labeled_dataset()) == 4 and len(ids(dm.labeled_dataset())) == 2 and "mask" in dm.labeled_dataset()[0]
    assert len(dm.budget_labels()) == len(ids(dm.train_dataset)) < len(dm.train_dataset)  # the budget counts cases
    unlabeled = dm.unlabeled_dataset()
    assert len(unlabeled) == 6 and not ids(unlabeled) & ids(dm.labeled_dataset())
    assert all("mask" not in unlabeled[i] for i in range(len(unlabeled)))
    with pytest.raises(DataError, match="asks for 10 labels but the training split has 4 labeled cases"):
        setup(tmp_path, label_budget=10, with_masks=True).budget_indices()


def test_without_any_seg_file_items_have_no_mask(tmp_path):
    dm = setup(write_set(tmp_path, labeled=0, unlabeled=4))
    assert set(dm.train_dataset[0]) == set(dm.val_dataset[0]) == {"image", "patient_id", "meta"}
    assert dm.unlabeled_dataset() is dm.train_dataset and dm.train_labels() is None
    with pytest.raises(DataError, match="label_budget needs segmented cases with their masks: set data.with_masks=true"):
        datamodule(tmp_path, label_budget=1).budget_indices()
    with pytest.raises(DataError, match="data.with_masks=true but no case under .* has a seg file"):
        setup(tmp_path, with_masks=True)


def test_a_mix_of_segmented_and_unsegmented_cases_pretrains_on_all_of_them(tmp_path):
    dm = setup(write_set(tmp_path, labeled=3, unlabeled=2), val_fraction=0.2)
    assert len(ids(dm.train_dataset) | ids(dm.val_dataset)) == 5
    assert "mask" not in dm.train_dataset[0] and "mask" not in dm.val_dataset[0]


def test_minmax_normalisation(tmp_path):
    write_case(tmp_path, "2023", 0)
    dm = setup(tmp_path, patch_size=list(SHAPE), val_fraction=0.0, mri_normalisation="minmax")
    image = dm.train_dataset[0]["image"]
    assert torch.allclose(image, torch.from_numpy(normalise_mri(np.stack(raw_case(0)[0]), "minmax")), atol=1e-5)
    assert float(image.amax(dim=(1, 2, 3)).min()) == pytest.approx(1.0) and dm.info.intensity.startswith("per-modality min-max")


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_cached_cases_give_the_same_items(tmp_path, cache):
    root = write_set(tmp_path / "data", labeled=3)
    plain = setup(root, val_fraction=0.4)
    cached = setup(root, val_fraction=0.4, cache=cache, cache_dir=str(tmp_path / "cache"))
    for i in range(len(plain.val_dataset)):
        assert all(torch.equal(plain.val_dataset[i][k], cached.val_dataset[i][k]) for k in ("image", "mask"))
    assert cache == "memory" or len(list((tmp_path / "cache").glob("*.pt"))) == len(ids(plain.val_dataset))  # read cases only


def test_brats_regions_unbatched_and_batched():
    labels = torch.tensor([0, 1, 2, 3], dtype=torch.uint8).reshape(1, 2, 2, 1)
    regions = brats_regions(labels)
    assert regions.shape == (3, 2, 2, 1) and regions.dtype == torch.uint8
    assert regions.reshape(3, 4).tolist() == [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    assert torch.equal(brats_regions(labels[None])[0], regions)  # (B=1, 1, *spatial)
    batch = torch.stack([labels, 3 - labels]).reshape(2, 1, 2, 2)  # 2D, batched
    assert brats_regions(batch).shape == (2, 3, 2, 2) and torch.equal(brats_regions(batch)[0].flatten(1), regions.flatten(1))


def test_missing_modality_names_the_case_and_file(tmp_path):
    folder = write_case(tmp_path, "2023", 0)
    (folder / "BraTS-GLI-00000-000-t2w.nii.gz").unlink()
    with pytest.raises(DataError, match="case BraTS-GLI-00000-000 .* is missing BraTS-GLI-00000-000-t2w.nii.gz"):
        setup(tmp_path)


def test_modalities_of_different_shapes_name_the_case_and_shapes(tmp_path):
    folder = write_case(tmp_path, "2021", 0)
    nib.save(nib.Nifti1Image(np.ones((24, 24, 12), np.int16), np.eye(4)), str(folder / "BraTS2021_00000_flair.nii.gz"))
    with pytest.raises(DataError, match=r"case BraTS2021_00000: .*different shapes .*t2 \[24, 24, 16\], flair \[24, 24, 12\]"):
        setup(tmp_path)


def test_truncated_files(tmp_path):
    folder = write_case(tmp_path, "2017-2020", 0)
    path = folder / "BraTS20_Training_000_t1ce.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header is intact: found by the verify pass at setup
    with pytest.raises(DataError, match="cannot read .*BraTS20_Training_000_t1ce.nii.gz: .*is the file complete"):
        setup(tmp_path, val_fraction=0.0)
    dm = setup(tmp_path, val_fraction=0.0, verify=False)  # without it, found when the case is read
    with pytest.raises(DataError, match="cannot read .*BraTS20_Training_000_t1ce.nii.gz: .*is the file complete"):
        dm.train_dataset[0]
    path.write_bytes(data[:20])  # no header: found at setup
    with pytest.raises(DataError, match="cannot read .*BraTS20_Training_000_t1ce.nii.gz"):
        setup(tmp_path, val_fraction=0.0)


def test_nan_voxels(tmp_path):
    folder = write_case(tmp_path, "2023", 0)
    volume = raw_case(0)[0][3].astype(np.float32)
    volume[5, 5, 5] = np.nan
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(folder / "BraTS-GLI-00000-000-t2f.nii.gz"))
    with pytest.raises(DataError, match="BraTS-GLI-00000-000-t2f.nii.gz holds NaN"):
        setup(tmp_path, val_fraction=0.0).train_dataset[0]


def test_unexpected_label_values_name_the_file_and_values(tmp_path):
    write_case(tmp_path, "2021", 0)  # labels 0, 1, 2, 4
    with pytest.raises(DataError, match=r"BraTS2021_00000_seg.nii.gz holds label values \[0, 1, 2, 4\], not all in .* 2023"):
        setup(tmp_path, val_fraction=0.0, label_convention="2023").train_dataset[0]
    mask = setup(tmp_path, val_fraction=0.0, label_convention="2017").train_dataset[0]["mask"]
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda root: None, "no BraTS case under"),
        (lambda root: write_case(root, "2023", 0).rename(root / "scans"), "scans matches no BraTS layout"),
        (lambda root: write_case(root, "2023", 0) and None, r"patch size \[32, 32, 8\] is larger than case"),
    ],
)
def test_folder_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        setup(tmp_path, patch_size=[32, 32, 8])


def test_config_errors(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        setup(tmp_path / "absent")
    with pytest.raises(ConfigError, match="data.label_convention='2019'"):
        setup(tmp_path, label_convention="2019")
    with pytest.raises(ConfigError, match="data.mri_normalisation='percentile'"):
        _ = datamodule(tmp_path, mri_normalisation="percentile").info


def test_check_data_prints_the_summary_and_fails_on_a_broken_case(tmp_path, capsys):
    root = write_set(tmp_path / "ok", labeled=4, unlabeled=1)
    assert main(["check-data", "data=brats", f"data.root={root}", "data.patch_size=[16,16,8]"]) == 0
    out = capsys.readouterr().out
    assert "mask values" in out and "problems found: 0" in out and "4x16x16x8" in out
    broken = write_set(tmp_path / "broken", labeled=4)
    (broken / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-t1n.nii.gz").write_bytes(b"\x1f\x8b truncated")
    assert main(["check-data", "data=brats", f"data.root={broken}", "data.patch_size=[16,16,8]"]) == 1
    assert "BraTS-GLI-00001-000-t1n.nii.gz" in capsys.readouterr().out


@pytest.mark.slow
def test_genesis_3d_runs_on_brats(tmp_path):
    root = write_set(tmp_path / "data", labeled=3, unlabeled=1)
    run = ["method=genesis", "data=brats", f"data.root={root}", "data.patch_size=[16,16,8]", f"output_dir={tmp_path}", *MODEL_RUN]
    result = pretrain(build_config(run))
    assert result.last_checkpoint.is_file()


@pytest.mark.slow
def test_simclr_on_axial_slices(tmp_path):
    root = write_set(tmp_path / "data", labeled=3)
    run = ["method=simclr", "data=brats", f"data.root={root}", "data.spatial_dims=2", "data.patch_size=[16,16]"]
    result = pretrain(build_config([*run, "data.patches_per_case=2", f"output_dir={tmp_path}", *MODEL_RUN]))
    assert result.last_checkpoint.is_file()


@pytest.mark.slow
def test_real_brats_2023_cases():
    root = shared_file("brats/BraTS-GLI-90001-000").parent
    dm = setup(root, patch_size=[32, 32, 16], val_fraction=0.0, cache="memory", with_masks=True)  # each case is read once
    assert [(c.case_id, c.layout.name, c.labeled) for c in dm.cases] == [
        ("BraTS-GLI-00001-000", "2023", False),
        ("BraTS-GLI-90001-000", "2023", True),
    ]
    item = dm.train_dataset[0]
    assert item["patient_id"] == "BraTS-GLI-90001-000" and item["image"].shape == (4, 32, 32, 16)
    assert item["mask"].shape == (1, 32, 32, 16) and set(item["mask"].unique().tolist()) <= {0, 1, 2, 3}
    assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["image"].amax() > 0
    case = dm.train_dataset.volumes[0]  # the whole case, cropped to the brain
    assert set(case.mask.unique().tolist()) == {0, 1, 2, 3} and case.image.amax(dim=(1, 2, 3)).tolist() == [1.0] * 4
    unlabeled = dm.unlabeled_dataset()
    assert len(unlabeled) == 1 and unlabeled[0]["patient_id"] == "BraTS-GLI-00001-000" and "mask" not in unlabeled[0]


def test_split_and_fixed_patches_follow_split_seed_not_seed(tmp_path):
    write_set(tmp_path, labeled=6)
    settings = {"val_fraction": 0.2, "test_fraction": 0.2, "patches_per_case": 2}

    def test_split(**seeds):
        test = setup(tmp_path, **settings, **seeds).test_dataset
        return ids(test), torch.stack([test[i]["image"] for i in range(len(test))])

    cases, patches = test_split(seed=0, split_seed=0)
    other_seed = test_split(seed=9, split_seed=0)
    assert other_seed[0] == cases and torch.equal(other_seed[1], patches)
    assert any(test_split(seed=0, split_seed=s)[0] != cases for s in (1, 2, 3))


def test_nan_truncated_and_label_4_cases_are_found_at_setup_and_each_listed_by_check_data(tmp_path, capsys):
    write_set(tmp_path, layout="2023", labeled=4)
    bad_labels = tmp_path / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-seg.nii.gz"
    seg = np.asarray(nib.load(str(bad_labels)).dataobj)
    nib.save(nib.Nifti1Image(np.where(seg == 3, 4, seg).astype(np.uint8), np.eye(4)), str(bad_labels))  # 2017 labels in 2023
    nan = tmp_path / "BraTS-GLI-00002-000" / "BraTS-GLI-00002-000-t1n.nii.gz"
    volume = raw_case(2)[0][0].astype(np.float32)
    volume[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(nan))
    cut = tmp_path / "BraTS-GLI-00003-000" / "BraTS-GLI-00003-000-t2w.nii.gz"
    cut.write_bytes(cut.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"BraTS-GLI-00001-000-seg.nii.gz holds label values \[0, 1, 2, 4\].* \(and 2 more problem"):
        setup(tmp_path)
    assert main(["check-data", "data=brats", f"data.root={tmp_path}", "data.patch_size=[16,16,8]"]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("- ")]
    assert "problems found: 3" in out and len(lines) == 3
    assert str(bad_labels) in lines[0] and f"{nan} holds NaN" in lines[1] and f"cannot read {cut}" in lines[2]


def test_check_data_gives_one_line_per_bad_case_naming_its_file_not_one_per_patch(tmp_path, capsys):
    write_set(tmp_path, layout="2023", labeled=5)
    cut = tmp_path / "BraTS-GLI-00002-000" / "BraTS-GLI-00002-000-t1c.nii.gz"
    cut.write_bytes(cut.read_bytes()[:-200])
    overrides = ["data=brats", f"data.root={tmp_path}", "data.patch_size=[16,16,8]", "data.patches_per_case=4", "data.verify=false"]
    assert main(["check-data", *overrides]) == 1
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("- ")]
    assert "problems found: 1" in out and re.search(rf"^- \w+ items \d+-\d+: cannot read {re.escape(str(cut))}", line)
