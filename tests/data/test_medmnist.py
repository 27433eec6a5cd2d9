"""MedMNIST: npz layouts (2D, RGB, 3D, sizes), official splits, resizing, one-line errors, md5-checked download."""

import functools
import http.server
import socket
import threading

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from real_data import shared_file

from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS, medmnist
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.medmnist import MedMNISTDataModule
from lightning_ssl.io.errors import ChecksumError

SPLIT_SIZES = {"train": 6, "val": 3, "test": 4}


def _arrays(image_shape=(28, 28), label_width=1, num_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in SPLIT_SIZES.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, num_classes, (n, label_width), dtype=np.uint8)
    return arrays


def _write(path, **kwargs):
    np.savez_compressed(path, **_arrays(**kwargs))
    return path


def _datamodule(root, **overrides):
    settings = {"download": False, **overrides}
    config = OmegaConf.structured(MedMNISTDataModule.Config(root=None if root is None else str(root), **settings))
    return MedMNISTDataModule(config)


def _setup(root, **overrides):
    dm = _datamodule(root, **overrides)
    dm.setup()
    return dm


def test_2d_grayscale_items_follow_the_contract_and_keep_the_official_split(tmp_path):
    _write(tmp_path / "pneumoniamnist.npz")
    dm = _setup(tmp_path)
    assert {s: len(getattr(dm, f"{s}_dataset")) for s in SPLIT_SIZES} == SPLIT_SIZES
    raw = np.load(tmp_path / "pneumoniamnist.npz")
    item = dm.val_dataset[2]
    assert set(item) == {"image", "label", "index"}  # no patient ids in MedMNIST
    assert item["image"].shape == (1, 28, 28) and item["image"].dtype == torch.float32
    assert torch.allclose(item["image"][0], torch.from_numpy(raw["val_images"][2] / 255.0).float())
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0 and item["label"] == int(raw["val_labels"][2, 0])
    assert item["index"].dtype == torch.int64 and item["index"] == 2
    info = dm.info
    assert (info.spatial_dims, info.in_channels, info.channel_names, info.patch_size) == (2, 1, ["X-ray"], [28, 28])
    assert info.num_classes == 2 and info.class_names == ["normal", "pneumonia"] and info.intensity == "uint8 / 255 -> [0, 1]"
    assert info.modality == "X-ray (chest, pediatric)"
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (3, 1, 28, 28) and batch["label"].shape == (3,)


def test_rgb_images_get_their_channel_axis_first(tmp_path):
    _write(tmp_path / "pathmnist.npz", image_shape=(28, 28, 3), num_classes=9)
    dm = _setup(tmp_path, flavour="pathmnist")
    raw = np.load(tmp_path / "pathmnist.npz")["train_images"][1]
    image = dm.train_dataset[1]["image"]
    assert image.shape == (3, 28, 28) and torch.allclose(image, torch.from_numpy(np.moveaxis(raw, -1, 0) / 255.0).float())
    assert dm.info.in_channels == 3 and dm.info.channel_names == ["R", "G", "B"] and dm.info.num_classes == 9


def test_3d_volumes(tmp_path):
    _write(tmp_path / "nodulemnist3d.npz", image_shape=(28, 28, 28))
    dm = _setup(tmp_path, flavour="nodulemnist3d", spatial_dims=3, patch_size=[28, 28, 28])
    image = dm.test_dataset[3]["image"]
    assert image.shape == (1, 28, 28, 28) and 0 <= image.min() and image.max() <= 1
    assert dm.info.modality == "CT (chest, LIDC nodules)" and dm.info.spatial_dims == 3


def test_multi_label_chestmnist_yields_float_vectors(tmp_path):
    _write(tmp_path / "chestmnist.npz", label_width=14)
    dm = _setup(tmp_path, flavour="chestmnist")
    label = dm.train_dataset[0]["label"]
    assert label.shape == (14,) and label.dtype == torch.float32 and set(label.tolist()) <= {0.0, 1.0}
    assert dm.info.num_classes == 14


def test_size_picks_the_64_file_and_root_may_be_the_file_itself(tmp_path):
    _write(tmp_path / "breastmnist.npz")
    _write(tmp_path / "breastmnist_64.npz", image_shape=(64, 64))
    assert _setup(tmp_path, flavour="breastmnist", size=64, patch_size=[64, 64]).train_dataset[0]["image"].shape == (1, 64, 64)
    dm = _setup(tmp_path / "breastmnist_64.npz", flavour="breastmnist", patch_size=[64, 64])
    assert dm.train_dataset[0]["image"].shape == (1, 64, 64)
    assert _setup(tmp_path / "breastmnist.npz", flavour="breastmnist").train_dataset[0]["image"].shape == (1, 28, 28)


def test_images_are_resized_once_to_the_patch_size(tmp_path):
    arrays = _arrays()
    arrays["train_images"][0] = 51  # a flat image stays flat (0.2) after resizing
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    dm = _setup(tmp_path, patch_size=[40, 40])
    image = dm.train_dataset[0]["image"]
    assert image.shape == (1, 40, 40) and torch.allclose(image, torch.full_like(image, 0.2))
    assert dm.train_dataset.images.shape == (6, 1, 40, 40) and dm.train_dataset.images.dtype == torch.uint8
    _write(tmp_path / "organmnist3d.npz", image_shape=(28, 28, 28))
    dm = _setup(tmp_path, flavour="organmnist3d", spatial_dims=3, patch_size=[16, 16, 16])
    image = dm.val_dataset[0]["image"]
    assert image.shape == (1, 16, 16, 16) and 0 <= image.min() and image.max() <= 1


def test_missing_file_without_download_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        _setup(tmp_path)
    message = str(error.value)
    assert medmnist.url_of("pneumoniamnist.npz") in message and str(tmp_path / "pneumoniamnist.npz") in message
    assert "data.download=false" in message and "\n" not in message


def test_npz_missing_keys(tmp_path):
    arrays = _arrays()
    del arrays["test_labels"], arrays["val_images"]
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    with pytest.raises(ValueError, match=r"pneumoniamnist.npz lacks the keys \['val_images', 'test_labels'\]"):
        _setup(tmp_path)


def test_truncated_file(tmp_path):
    data = (_write(tmp_path / "full.npz")).read_bytes()
    (tmp_path / "pneumoniamnist.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot read .*pneumoniamnist.npz.*fetch it again"):
        _setup(tmp_path)


def test_labels_and_images_of_different_length(tmp_path):
    arrays = _arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    with pytest.raises(ValueError, match="train_images holds 6 images but train_labels 5 labels"):
        _setup(tmp_path)


def test_spatial_dims_mismatch_names_the_file_shape_and_setting(tmp_path):
    _write(tmp_path / "organmnist3d.npz", image_shape=(28, 28, 28))
    with pytest.raises(ConfigError) as error:
        _setup(tmp_path, flavour="organmnist3d")
    message = str(error.value)
    assert "organmnist3d.npz" in message and "(28, 28, 28)" in message and "data.spatial_dims=3" in message


def test_unknown_flavour_suggests_the_closest_and_bad_sizes_fail(tmp_path):
    with pytest.raises(ConfigError, match="unknown MedMNIST flavour 'pneumonimnist'.*did you mean pneumoniamnist"):
        _setup(tmp_path, flavour="pneumonimnist")
    with pytest.raises(ConfigError, match=r"data.size=128 .* nodulemnist3d: use one of \(28, 64\)"):
        _setup(tmp_path, flavour="nodulemnist3d", size=128, spatial_dims=3, patch_size=[28, 28, 28])


def test_a_file_under_an_unknown_flavour_name_is_described_from_its_arrays(tmp_path):
    _write(tmp_path / "mymnist.npz", num_classes=5, image_shape=(28, 28, 3), seed=3)
    dm = _datamodule(tmp_path, flavour="mymnist")
    assert dm.info.in_channels == 3 and dm.info.num_classes == 5 and dm.info.modality == "see medmnist.com"
    dm.setup()
    assert dm.train_dataset[0]["image"].shape == (3, 28, 28)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server for ``tmp_path/served``, set as the module's download address."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setattr(medmnist, "BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setenv("LIGHTNING_SSL_DATA", str(tmp_path / "cache"))
    yield served
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_md5_then_loads(server, tmp_path, monkeypatch):
    fixture = _write(server / "pneumoniamnist.npz")
    monkeypatch.setitem(medmnist.MD5, "pneumoniamnist.npz", medmnist.md5_file(fixture))
    dm = _datamodule(None, download=True)
    dm.prepare_data()
    cached = tmp_path / "cache" / "medmnist" / "pneumoniamnist.npz"
    assert cached.read_bytes() == fixture.read_bytes()
    dm.setup()
    assert len(dm.train_dataset) == 6


def test_download_with_wrong_md5_raises_and_leaves_nothing(server, tmp_path, monkeypatch):
    fixture = _write(server / "pneumoniamnist.npz")
    monkeypatch.setitem(medmnist.MD5, "pneumoniamnist.npz", "0" * 32)
    with pytest.raises(ChecksumError) as error:
        _setup(None, download=True)
    assert f"has md5 {medmnist.md5_file(fixture)}, expected {'0' * 32}" in str(error.value)
    assert not any((tmp_path / "cache").rglob("*.npz*"))


def test_download_offline_says_where_to_get_the_file(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(medmnist, "BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(
        FileNotFoundError, match=r"missing and downloading it failed \(.*\): fetch http://127.0.0.1:\d+/breastmnist"
    ):
        _setup(tmp_path / "data", flavour="breastmnist", download=True)


def test_real_pneumoniamnist():
    path = shared_file("pneumoniamnist/pneumoniamnist.npz")
    dm = _setup(path.parent)
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (4690, 524, 621)
    labels = dm.train_dataset.labels
    assert set(labels.unique().tolist()) == {0, 1} and abs(labels.float().mean().item() - 0.74) < 0.01
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (64, 1, 28, 28) and 0 <= batch["image"].min() and batch["image"].max() <= 1


def test_data_pneumoniamnist_resolves_from_the_command_line(capsys):
    assert DATASETS["pneumoniamnist"] is DATASETS["medmnist"] is MedMNISTDataModule
    cfg = build_config(["data=pneumoniamnist"])
    assert cfg.data.name == "pneumoniamnist" and cfg.data.flavour == "pneumoniamnist"
    assert cfg.data.spatial_dims == 2 and list(cfg.data.patch_size) == [28, 28] and cfg.data.batch_size == 64
    assert main(["config", "data=pneumoniamnist"]) == 0
    assert "name: pneumoniamnist" in capsys.readouterr().out
    assert build_config(["data=medmnist", "data.flavour=breastmnist"]).data.name == "medmnist"


def test_labels_outside_the_classes_are_named_at_setup_and_by_check_data(tmp_path, capsys):
    arrays = _arrays()
    arrays["train_labels"] = arrays["train_labels"].astype(np.int64)
    arrays["train_labels"][[1, 4], 0] = [7, -3]
    path = tmp_path / "pneumoniamnist.npz"
    np.savez(path, **arrays)
    message = rf"{path}: train_labels hold the value\(s\) -3, 7, expected 0..1 \(2 classes\)"
    with pytest.raises(DataError, match=message):
        _setup(tmp_path)
    assert main(["check-data", "data=pneumoniamnist", f"data.root={tmp_path}", "data.download=false"]) == 1
    out = capsys.readouterr().out
    assert "problems found: 1" in out
    (line,) = [line for line in out.splitlines() if "train_labels" in line]
    assert str(path) in line and "-3, 7" in line
    arrays["train_labels"] = np.tile(arrays["train_labels"] % 2, (1, 14))
    arrays["train_labels"][0, 3] = 2
    np.savez(tmp_path / "chestmnist.npz", **arrays)
    with pytest.raises(DataError, match=r"train_labels hold the value\(s\) 2, expected 0 or 1 \(multi-label\)"):
        _setup(tmp_path, flavour="chestmnist")
