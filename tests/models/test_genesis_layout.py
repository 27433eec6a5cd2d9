"""The Models Genesis network matches the official checkpoint's key layout exactly."""

import torch

from lightning_ssl.models import GenesisUNet3D
from lightning_ssl.models.genesis_unet import split_official_state_dict


def _conv_bn(prefix: str, out_ch: int, in_ch: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.conv1.weight": (out_ch, in_ch, 3, 3, 3),
        f"{prefix}.conv1.bias": (out_ch,),
        f"{prefix}.bn1.weight": (out_ch,),
        f"{prefix}.bn1.bias": (out_ch,),
        f"{prefix}.bn1.running_mean": (out_ch,),
        f"{prefix}.bn1.running_var": (out_ch,),
        f"{prefix}.bn1.num_batches_tracked": (),
    }


def official_layout() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``Genesis_Chest_CT.pt`` as the authors' UNet3D defines them (without ``module.``)."""
    layout: dict[str, tuple[int, ...]] = {}
    for name, in_ch, depth in [("down_tr64", 1, 0), ("down_tr128", 64, 1), ("down_tr256", 128, 2), ("down_tr512", 256, 3)]:
        width = 32 * 2**depth
        layout |= _conv_bn(f"{name}.ops.0", width, in_ch) | _conv_bn(f"{name}.ops.1", 2 * width, width)
    for name, in_ch, depth in [("up_tr256", 512, 2), ("up_tr128", 256, 1), ("up_tr64", 128, 0)]:
        width = 32 * 2 ** (depth + 1)
        layout[f"{name}.up_conv.weight"] = (in_ch, in_ch, 2, 2, 2)
        layout[f"{name}.up_conv.bias"] = (in_ch,)
        layout |= _conv_bn(f"{name}.ops.0", width, in_ch + in_ch // 2) | _conv_bn(f"{name}.ops.1", width, width)
    layout["out_tr.final_conv.weight"] = (1, 64, 1, 1, 1)
    layout["out_tr.final_conv.bias"] = (1,)
    return layout


def test_encoder_and_decoder_hold_exactly_the_official_keys_and_shapes():
    net = GenesisUNet3D()
    ours = {k: tuple(v.shape) for part in (net.encoder, net.decoder) for k, v in part.state_dict().items()}
    assert ours == official_layout()


def test_official_checkpoint_loads_with_zero_missing_and_zero_unexpected_keys():
    source = GenesisUNet3D()
    official = {"module." + k: v for part in (source.encoder, source.decoder) for k, v in part.state_dict().items()}
    parts = split_official_state_dict(official)
    target = GenesisUNet3D()
    for name in ("encoder", "decoder"):
        result = getattr(target, name).load_state_dict(parts[name], strict=True)
        assert result.missing_keys == [] and result.unexpected_keys == []
    x = torch.rand(1, 1, 16, 16, 8)
    assert torch.equal(source(x), target(x))


def test_shapes_and_batch_statistics_in_eval_mode():
    net = GenesisUNet3D().eval()
    x = torch.rand(2, 1, 16, 16, 8)
    features = net.encoder(x)
    assert [tuple(f.shape[1:]) for f in features] == [(64, 16, 16, 8), (128, 8, 8, 4), (256, 4, 4, 2), (512, 2, 2, 1)]
    assert net(x).shape == (2, 1, 16, 16, 8)
    # The official BatchNorm always normalises with the batch's statistics: a sample's output depends on its batch.
    alone = net(x[:1])
    assert not torch.allclose(alone, net(x)[:1])
