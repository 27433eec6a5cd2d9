"""Bad files are found at setup, before training, each named on its own line; the pass is recorded so a second run
does not pay it; data.verify=false skips it; a bad file met by a loader worker still reaches the user as one line."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from lightning_ssl.cli import main
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.image_folder import ImageFolderDataModule
from lightning_ssl.data.verify import DataProblems

REPO = Path(__file__).resolve().parents[2]


def _image(path, seed, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 40), dtype=np.uint8)).save(path, fmt)
    return path


def _mask(path, value=255):
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:30] = value
    Image.fromarray(mask).save(path)
    return path


def _folder(root, count=8):
    for n in range(count):
        _image(root / f"{n}.png", seed=n)
        _mask(root / f"{n}-mask.png")
    return root


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _setup(root, **overrides):
    settings = {"patch_size": [32, 32], "batch_size": 2, "mask_suffix": "-mask", **overrides}
    dm = ImageFolderDataModule(OmegaConf.structured(ImageFolderDataModule.Config(root=str(root), **settings)))
    dm.setup("fit")
    return dm


def _broken(root):
    """A zero-byte PNG, a truncated JPEG, masks holding 128 and 100: four bad files."""
    (root / "0.png").write_bytes(b"")
    (root / "1.png").unlink()
    _truncate(_image(root / "1.jpg", seed=1))
    _mask(root / "2-mask.png", value=128)
    _mask(root / "3-mask.png", value=100)
    return ["0.png", "1.jpg", "2-mask.png", "3-mask.png"]


def test_every_bad_file_fails_setup_and_check_data_lists_each_on_its_own_line(tmp_path, capsys):
    root = _folder(tmp_path / "images")
    names = _broken(root)
    with pytest.raises(DataProblems) as raised:
        _setup(root, pattern=["*.png", "*.jpg"])
    assert len(raised.value.problems) == 4 and "\n" not in str(raised.value)
    assert str(raised.value).endswith("(and 3 more problem(s): `python -m lightning_ssl check-data` with the same data settings lists them)")
    assert main(["check-data", "data=image_folder", f"data.root={root}", "data.mask_suffix=-mask", "data.patch_size=[32,32]"]) == 1
    out = capsys.readouterr().out
    assert "problems found: 4" in out
    lines = [line for line in out.splitlines() if line.startswith("- ")]
    assert [next(n for n in names if f"{root}/{n}" in line) for line in lines] == names
    assert "is empty (0 bytes)" in lines[0] and "truncated" in lines[1] and "[128]" in lines[2] and "[100]" in lines[3]


def test_a_second_run_does_not_check_unchanged_files_again(tmp_path, monkeypatch):
    root = _folder(tmp_path / "images")
    _setup(root)
    record = list((tmp_path / "lightning-ssl-cache" / "verified").glob("image_folder-*.json"))
    assert len(record) == 1
    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", lambda *args, **kwargs: pytest.fail("a file was checked again"))
        _setup(root)
    _mask(root / "5-mask.png", value=128)  # a changed file is checked again
    with pytest.raises(DataError, match=r"5-mask.png holds values \[128\]"):
        _setup(root)
    _mask(root / "5-mask.png")
    _setup(root, cache_dir=str(tmp_path / "cache"))  # the record sits in data.cache_dir when it is set
    assert len(list((tmp_path / "cache" / "verified").glob("image_folder-*.json"))) == 1


def test_verify_false_skips_the_pass(tmp_path):
    root = _folder(tmp_path / "images")
    _truncate(root / "4.png")
    dm = _setup(root, verify=False)
    dataset, index = next((d, i) for d in (dm.train_dataset, dm.val_dataset) for i, r in enumerate(d.records) if r.image.name == "4.png")
    with pytest.raises(DataError, match=r"cannot read .*4.png"):
        dataset[index]
    assert not (tmp_path / "lightning-ssl-cache" / "verified").exists()


@pytest.mark.slow
def test_a_bad_file_read_by_a_loader_worker_is_one_line_and_exit_code_2(tmp_path):
    root = tmp_path / "images"
    for n in range(8):
        _image(root / f"{n}.jpg", seed=n, fmt="JPEG")
    for n in range(8):
        _truncate(root / f"{n}.jpg")  # every file: whichever batch comes first fails
    command = [
        sys.executable, "-m", "lightning_ssl", "pretrain", "method=simclr", "data=image_folder", f"data.root={root}",
        "data.patch_size=[32,32]", "data.batch_size=2", "data.num_workers=2", "data.verify=false",
        "network.features=[4,8,16]", "trainer.max_steps=2", "trainer.enable_progress_bar=false", f"output_dir={tmp_path / 'runs'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert errors[0].startswith(f"error: cannot read {root}/") and "truncated" in errors[0] and "worker" not in errors[0]
    assert done.stderr.rstrip().splitlines()[-1] == errors[0]


def test_without_a_writable_cache_folder_every_file_is_still_checked(tmp_path, monkeypatch):
    root = _folder(tmp_path / "images")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LIGHTNING_SSL_CACHE", str(blocked))
    _setup(root)
    _mask(root / "1-mask.png", value=100)
    with pytest.raises(DataError, match=r"1-mask.png holds values \[100\]"):
        _setup(root)
