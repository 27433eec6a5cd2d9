"""What every method shares: the network from the config, optimiser and schedule, zoo metadata, what its previews show."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_ssl.errors import one_line
from lightning_ssl.methods.optim import check as check_optim
from lightning_ssl.methods.optim import lr_factor
from lightning_ssl.methods.optim import optimizer as build_optimizer
from lightning_ssl.methods.preview import Preview
from lightning_ssl.models import OnlineProbe, build_network, has_decoder, input_arguments
from lightning_ssl.models.heads import global_pool
from lightning_ssl.schema import ConfigError, DataInfo, MethodConfig, plain


class EncoderOnly(nn.Module):
    """The encoder of a network, for methods that never train its decoder (the zoo then publishes the encoder only)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps, finest first."""
        return self.encoder(x)


def _built(architecture: dict[str, Any]) -> nn.Module:
    """The network of ``architecture``; a network that refuses its arguments is a ConfigError naming them."""
    try:
        return build_network(architecture["name"], **architecture["kwargs"])
    except ConfigError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as error:
        given = {k: v for k, v in architecture["kwargs"].items() if k not in ("spatial_dims", "in_channels", "out_channels")}
        raise ConfigError(f"network={architecture['name']} cannot be built from {given}: {one_line(error)}") from None


class BaseMethod(pl.LightningModule):
    """A self-supervised method: subclasses set ``Config`` and implement the training/validation steps.

    ``usage_notes`` tells the zoo's model card what a user of the weights must know beyond the architecture.
    ``config`` is the whole resolved run config as a plain dict, ``data_info`` the DataModule's ``DataInfo`` as a
    dict; both are saved in checkpoints with the resolved ``architecture``, so ``load_from_checkpoint`` rebuilds the
    method on its own and ``zoo.publish`` finds the network under ``network`` with its ``zoo_metadata``.
    What depends on the config is decided by classmethods before anything is built: whether the decoder is trained
    (``uses_decoder``; only the encoder is kept otherwise), its output channels and activation, the architecture,
    and the metric the best checkpoint is chosen on (``monitored``). ``training_data`` says what the method trains
    on: ``all`` training images, the ``labeled`` budget, or ``semi_supervised`` batches of budget and unlabeled pool.
    ``evaluation_data`` says what it scores: ``patches`` like the training ones, or whole ``volumes`` (larger inputs,
    e.g. a segmentation by sliding windows); the run passes both to the DataModule.
    When the data has class labels and ``method.online_probe`` is on, ``probe`` is a linear classifier on detached
    features.
    """

    Config: type[MethodConfig] = MethodConfig
    required_keys: tuple[str, ...] = ("image",)
    output_activation: str | None = None
    citation: str = ""
    usage_notes: str = ""
    trains_decoder: bool = True
    training_data: str = "all"
    evaluation_data: str = "patches"

    @classmethod
    def uses_decoder(cls, method: Any) -> bool:
        """Whether the method trains (and publishes) the decoder under this method config."""
        return cls.trains_decoder

    @classmethod
    def output_channels(cls, method: Any, data_info: dict[str, Any]) -> int:
        """Channels of the decoder's output; restoration methods restore every input channel."""
        return int(data_info["in_channels"])

    @classmethod
    def activation(cls, method: Any) -> str | None:
        """The activation the decoder's logits were trained with (the zoo's model card says it)."""
        return cls.output_activation

    @classmethod
    def monitored(cls, method: Any) -> tuple[str, str]:
        """(metric, mode) of the best checkpoint."""
        return "val/loss", "min"

    @classmethod
    def resolve_architecture(cls, config: dict[str, Any], data_info: dict[str, Any]) -> dict[str, Any]:
        """``{"name", "kwargs"}`` of the network this method builds from ``config["network"]`` and the data."""
        network = dict(config["network"])
        name = network.pop("name")
        if cls.uses_decoder(config["method"]) and not has_decoder(name):
            raise ConfigError(f"method {config['method']['name']!r} trains a decoder but network {name!r} has none: use network=unet or network=swinunetr")
        kwargs = {**network, "spatial_dims": data_info["spatial_dims"], "in_channels": data_info["in_channels"]}
        kwargs.update(input_arguments(name, kwargs, data_info["patch_size"]))
        if has_decoder(name):
            kwargs["out_channels"] = cls.output_channels(config["method"], data_info)
        return {"name": name, "kwargs": kwargs}

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = OmegaConf.create(config)
        self.data_info = DataInfo(**data_info)
        self.architecture = architecture or self.resolve_architecture(config, data_info)
        self.output_activation = self.activation(config["method"])
        check_optim(self.cfg.optim)
        network = _built(self.architecture)
        self.network = network if self.uses_decoder(config["method"]) else EncoderOnly(network.encoder)
        self.probe = self._online_probe()
        self.save_hyperparameters(
            {"config": config, "data_info": data_info, "architecture": self.architecture, "zoo_metadata": self._zoo_metadata()}
        )

    def _online_probe(self) -> OnlineProbe | None:
        classes = self.data_info.num_classes
        if not (self.cfg.method.online_probe and classes):
            return None
        self.train_probe_accuracy = MulticlassAccuracy(classes, average="micro")
        self.val_probe_accuracy = MulticlassAccuracy(classes, average="micro")
        return OnlineProbe(self.network.encoder.out_channels, classes)

    def class_names(self) -> list[str]:
        """The data's class names, or the class indices as text where the data names none."""
        return self.data_info.class_names or [str(k) for k in range(self.data_info.num_classes or 0)]

    def representation(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled bottleneck features (B, F) of the encoder."""
        return global_pool(self.network.encoder(images)[-1])

    def probe_loss(self, features: torch.Tensor, batch: dict[str, Any], stage: str) -> torch.Tensor:
        """Train the online probe on pooled ``features`` (detached) and log its accuracy; zero without a probe or labels."""
        labels = batch.get("label")
        if self.probe is None or labels is None or labels.dim() != 1:
            return features.new_zeros(())
        loss, logits = self.probe(features, labels)
        accuracy = self.train_probe_accuracy if stage == "train" else self.val_probe_accuracy
        accuracy(logits.argmax(dim=1), labels)
        size = labels.shape[0]
        self.log(f"{stage}/probe_acc", accuracy, on_step=False, on_epoch=True, prog_bar=stage == "val", batch_size=size)
        self.log(f"{stage}/probe_loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=size)
        return loss

    def _zoo_metadata(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "method": self.cfg.method.name,
            "method_config": plain(self.cfg.method),
            "data": self.cfg.data.name,
            "data_config": plain(self.cfg.data),
            "input": self.data_info.as_dict(),
            "output_activation": self.activation(self.cfg.method),
            "citation": self.citation,
            "usage_notes": self.usage_notes,
            "licence": "weights: same terms as the training data; code: Apache-2.0",
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the latest logged metrics with the zoo metadata."""
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}
        checkpoint["hyper_parameters"]["zoo_metadata"]["metrics"] = metrics

    def check_batch(self, batch: dict[str, Any]) -> None:
        """Fail with a clear message when the data lacks a key this method needs."""
        missing = [k for k in self.required_keys if k not in batch]
        if missing:
            raise KeyError(f"method {self.cfg.method.name!r} needs batch keys {missing}; this DataModule yields {sorted(batch)}")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters by learning rate: the encoder at ``optim.lr x optim.encoder_lr_scale``, the online probe
        at ``method.probe_lr`` (no weight decay), everything else at ``optim.lr``."""
        probe = set(self.probe.parameters()) if self.probe is not None else set()
        encoder = set(self.network.encoder.parameters())
        trainable = [p for p in self.parameters() if p.requires_grad and p not in probe]
        scale = self.cfg.optim.encoder_lr_scale
        groups = [{"params": [p for p in trainable if p not in encoder or scale == 1.0]}]
        if scale != 1.0:
            groups.append({"params": [p for p in trainable if p in encoder], "lr": self.cfg.optim.lr * scale})
        if probe:
            groups.append({"params": list(probe), "lr": self.cfg.method.probe_lr, "weight_decay": 0.0})
        return [group for group in groups if group["params"]]

    def configure_optimizers(self) -> Any:
        """Optimiser and per-step schedule from ``optim`` in the config."""
        optim = self.cfg.optim
        optimizer = build_optimizer(self.parameter_groups(), optim)
        if optim.scheduler == "none" and optim.warmup_steps <= 0:
            return optimizer
        factor = lr_factor(optim, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def validation_generator(self, device: torch.device, batch_idx: int) -> torch.Generator:
        """The random draws of validation batch ``batch_idx``: the same every epoch, so validation losses compare."""
        return torch.Generator(device=device).manual_seed(self.cfg.seed + batch_idx)

    def preview(self, batch: dict[str, Any], dataloader_idx: int = 0) -> Preview | None:
        """What to show of a validation batch (the run's image logging draws it); None: nothing for this loader."""
        return None
