"""Every bad input a hostile or unlucky user gives gets one clear line, before training: no traceback, nothing trained.

Each case is a command line and a fragment the error must contain; files the case needs are written first.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny
from PIL import Image

from lightning_ssl.cli import main

PHANTOM = ["network.features=[4,8,16]", "trainer.enable_progress_bar=false", "trainer.max_steps=1"]


def empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def a_file(tmp: Path) -> Path:
    (tmp / "file.txt").write_text("not a folder")
    return tmp / "file.txt"


def image_folder(tmp: Path, broken: str) -> Path:
    """Three good X-rays with lung masks and one bad file (``broken``: garbage, empty, or a mask valued 128)."""
    root = tmp / "images"
    root.mkdir()
    for index in range(4):
        pixels = np.random.default_rng(index).integers(0, 255, (48, 48), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"case{index}.png")
        Image.fromarray(((pixels > 128) * 255).astype(np.uint8)).save(root / f"case{index}-mask.png")
    if broken == "garbage":
        (root / "case3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    elif broken == "empty":
        (root / "case3.png").write_bytes(b"")
    else:
        buffer = io.BytesIO()
        Image.fromarray(np.full((48, 48), 128, dtype=np.uint8)).save(buffer, format="PNG")
        (root / "case3-mask.png").write_bytes(buffer.getvalue())
    return root


def user_config(tmp: Path, text: str) -> Path:
    (tmp / "my.yaml").write_text(text)
    return tmp / "my.yaml"


Case = tuple[str, Callable[[Path], list[str]], str]
CASES: list[Case] = [
    ("mistyped key", lambda t: ["pretrain", "trainer.max_epoch=3"], "did you mean trainer.max_epochs"),
    ("value outside a choice", lambda t: ["pretrain", "optim.name=sgdx"], "expected one of [sgd, adam, adamw]"),
    ("value of the wrong type", lambda t: ["pretrain", "trainer.max_steps=ten"], "trainer.max_steps"),
    ("unknown method", lambda t: ["pretrain", "method=simclrr"], "did you mean simclr"),
    ("unknown dataset", lambda t: ["pretrain", "data=chexx"], "did you mean chex"),
    ("unknown network", lambda t: ["pretrain", "network=resnett"], "did you mean resnet"),
    ("override without a value", lambda t: ["pretrain", "trainer.max_steps"], "write overrides as key=value"),
    ("dangling --key", lambda t: ["pretrain", f"output_dir={t}", "--seed"], "--seed needs a value"),
    ("missing user config", lambda t: ["pretrain", f"config={t / 'nope.yaml'}"], "does not exist"),
    ("user config not a mapping", lambda t: ["pretrain", "config=" + str(user_config(t, "- a\n- b\n"))], "must hold a mapping"),
    ("user config with a mistyped key", lambda t: ["pretrain", f"config={user_config(t, 'optim: {lrr: 0.1}')}"], "did you mean optim.lr"),
    ("invalid zoo name", lambda t: ["pretrain", *tiny(t), "zoo.name=Bad Name"], "invalid zoo name"),
    ("unknown logger", lambda t: ["pretrain", "logger=mlflow"], "expected one of [csv, tensorboard, wandb, none]"),
    ("decoder method on an encoder-only network", lambda t: ["pretrain", "network=resnet", "trainer.max_steps=1"], "trains a decoder"),
    ("label budget on self-supervised pretraining", lambda t: ["pretrain", *tiny(t), "data.label_budget=10"], "is unused"),
    ("2D method on 3D data", lambda t: ["pretrain", *tiny(t), "method=multimix", "data=phantom_ct"], "2D method"),
    ("negative learning rate", lambda t: ["pretrain", *tiny(t), *PHANTOM, "optim.lr=-1"], "optim.lr"),
    ("zero batch size", lambda t: ["pretrain", *tiny(t), *PHANTOM, "data.batch_size=0"], "data.batch_size"),
    ("negative workers", lambda t: ["pretrain", *tiny(t), *PHANTOM, "data.num_workers=-1"], "data.num_workers"),
    ("precision Lightning does not know", lambda t: ["pretrain", *tiny(t), *PHANTOM, "trainer.precision=17-true"], "trainer"),
    ("network that cannot be built", lambda t: ["pretrain", *tiny(t), *PHANTOM, "network.features=[]"], "network"),
    ("validation fraction above 1", lambda t: ["pretrain", *tiny(t), *PHANTOM, "data.val_fraction=1.5"], "val_fraction"),
    ("patch larger than the volume", lambda t: ["pretrain", *tiny(t), *PHANTOM, "data.patch_size=[64,64,64]"], "larger than the volume"),
    ("resume with no run", lambda t: ["pretrain", f"output_dir={t}", "resume=last"], "no run of"),
    ("resume of a missing path", lambda t: ["pretrain", f"output_dir={t}", f"resume={t / 'nope'}"], "expected 'last'"),
    ("fine-tune init that is not a zoo reference", lambda t: ["finetune", *tiny(t), "method.init=simclr"], "neither 'scratch' nor"),
    ("fine-tune init not in the store", lambda t: ["finetune", *tiny(t), "method.init=zoo:absent_entry"], "absent_entry"),
    ("linear probe for segmentation", lambda t: ["finetune", *tiny(t), "method.task=segmentation", "method.mode=linear"], "classification protocol"),
    ("BraTS regions with two classes", lambda t: ["finetune", *tiny(t), "method.task=segmentation", "method.seg_metrics=brats_regions"], "seg_classes=4"),
    ("budget larger than the data", lambda t: ["finetune", *tiny(t), *PHANTOM, "method.task=segmentation", "data.label_budget=100000"], "asks for"),
    ("negative budget", lambda t: ["finetune", *tiny(t), *PHANTOM, "method.task=segmentation", "data.label_budget=-3"], "must be positive"),
    ("data.root unset", lambda t: ["pretrain", "method=simclr", "data=chex"], "data.root is not set"),
    ("data.root missing", lambda t: ["pretrain", "method=simclr", "data=chex", f"data.root={t / 'nope'}"], "is not a folder"),
    ("data.root is a file", lambda t: ["pretrain", "method=simclr", "data=chex", f"data.root={a_file(t)}"], "is not a folder"),
    ("CheX folder without its layout", lambda t: ["pretrain", "method=simclr", "data=chex", f"data.root={empty(t)}"], "chest_xray"),
    ("MedMNIST folder without the file", lambda t: ["pretrain", "method=simclr", "data=pneumoniamnist", f"data.root={empty(t)}", "data.download=false"], "pneumoniamnist"),
    ("3D patch for 2D images", lambda t: ["pretrain", "method=simclr", "data=chex", f"data.root={empty(t)}", "data.patch_size=[64,64,64]"], "patch_size"),
    ("CT folder without volumes", lambda t: ["pretrain", "data=ct_folder", f"data.root={empty(t)}"], str("empty")),
    ("corrupt PNG", lambda t: ["pretrain", "method=chen", "data=image_folder", f"data.root={image_folder(t, 'garbage')}", "data.mask_suffix=-mask", *PHANTOM], "case3.png"),
    ("zero-byte PNG", lambda t: ["pretrain", "method=chen", "data=image_folder", f"data.root={image_folder(t, 'empty')}", "data.mask_suffix=-mask", *PHANTOM], "case3.png"),
    ("mask valued 128", lambda t: ["pretrain", "method=chen", "data=image_folder", f"data.root={image_folder(t, 'mask128')}", "data.mask_suffix=-mask", *PHANTOM], "case3-mask.png"),
    ("output folder under a file", lambda t: ["pretrain", *tiny(t), *PHANTOM, f"output_dir={a_file(t)}/runs"], "is a file"),
    ("zoo store under a file", lambda t: ["pretrain", *tiny(t), *PHANTOM, f"zoo.store={a_file(t)}/store"], "is a file"),
    ("missing sweep file", lambda t: ["sweep", str(t / "nope.yaml"), "--count", "1"], "does not exist"),
    ("check-data with a mistyped key", lambda t: ["check-data", "data=chex", "data.rooot=x"], "did you mean data.root"),
    ("config with an unknown method", lambda t: ["config", "method=bogus"], "unknown method 'bogus'"),
]


@pytest.mark.parametrize("name,argv,fragment", CASES, ids=[case[0] for case in CASES])
def test_a_bad_input_gets_one_clear_line_before_training(tmp_path: Path, capsys, monkeypatch, name: str, argv, fragment: str) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    args = argv(tmp_path)
    if not any(arg.startswith("output_dir=") for arg in args) and args[0] in ("pretrain", "finetune"):
        args.append(f"output_dir={tmp_path / 'runs'}")
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"exit {code}: {err[-500:]}"
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err, err
    assert not list(tmp_path.rglob("*.ckpt")), "something trained before the error"
