"""Fine-tuning on two CPU processes (Lightning DDP, gloo): test metrics count every test sample exactly once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods.finetune import FinetuneMethod
from lightning_ssl.train import TEST_METRICS

SMALL_XRAY = [
    "data=phantom_xray",
    "data.num_patients=29",
    "data.patch_size=[32,32]",
    "data.batch_size=4",
    "data.val_fraction=0.2",
    "data.test_fraction=0.25",
    "network.features=[4,8,16]",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.enable_progress_bar=false",
    "method=finetune",
]


def _single_process_test(checkpoint: Path, cfg) -> dict[str, float]:
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("test")
    method = FinetuneMethod.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    return trainer.test(method, dataloaders=datamodule.test_dataloader(), verbose=False)[0], len(datamodule.test_dataset)


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("task, metric", [("classification", "test/acc"), ("segmentation", "test/dice")])
def test_two_process_finetuning_scores_the_whole_test_split_once(tmp_path: Path, task: str, metric: str) -> None:
    args = [*SMALL_XRAY, f"method.task={task}", f"output_dir={tmp_path}", "trainer.accelerator=cpu"]
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}
    ddp = [*args, "trainer.devices=2", "trainer.strategy=ddp"]
    done = subprocess.run([sys.executable, "-m", "lightning_ssl", "finetune", *ddp], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (record_file,) = tmp_path.glob(f"*/*/{TEST_METRICS}")
    record = json.loads(record_file.read_text())["metrics"]
    (checkpoint,) = record_file.parent.glob("checkpoints/best-*.ckpt")
    alone, size = _single_process_test(checkpoint, build_config(args))
    assert size % 2 == 1, "an odd test split is what a padding sampler would count twice"
    assert record["test/samples"] == size == alone["test/samples"]
    assert record[metric] == pytest.approx(alone[metric], abs=1e-6)
