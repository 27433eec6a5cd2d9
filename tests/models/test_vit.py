"""network=vit: MONAI's ViT as an encoder whose tokens form a (B, C, *grid) map, through the config, zoo and fine-tuning."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny
from method_helpers import build_finetune, build_method, train_one_step

from lightning_ssl import zoo
from lightning_ssl.errors import ConfigError
from lightning_ssl.models import build_network
from lightning_ssl.models.heads import global_pool

TINY_OPTIONS = {"patch_size": 8, "hidden_size": 24, "mlp_dim": 48, "num_layers": 2, "num_heads": 2}
TINY = ["network=vit", *(f"network.{key}={value}" for key, value in TINY_OPTIONS.items())]
SIZES = {2: [32, 48], 3: [32, 32, 16]}


def _tiny(spatial_dims: int, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    settings = {**TINY_OPTIONS, **options}
    return build_network("vit", spatial_dims=spatial_dims, in_channels=1, img_size=SIZES[spatial_dims], **settings)


def _data(spatial_dims: int) -> list[str]:
    return [f"data.spatial_dims={spatial_dims}", f"data.patch_size=[{','.join(map(str, SIZES[spatial_dims]))}]"]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_tokens_form_a_grid_map_that_pools(spatial_dims: int) -> None:
    network = _tiny(spatial_dims).eval()
    with torch.no_grad():
        features = network.encoder(torch.rand(2, 1, *SIZES[spatial_dims]))
    assert len(features) == 1 and features[0].shape == (2, 24, *(s // 8 for s in SIZES[spatial_dims]))
    assert network.encoder.out_channels == 24 and network.encoder.downsampling_factor == 8
    assert global_pool(features[-1]).shape == (2, 24)
    assert not hasattr(network, "decoder")


def test_each_grid_cell_holds_the_token_of_the_patch_at_that_place() -> None:
    network = _tiny(2, num_layers=0, pos_embed_type="none").eval()  # no attention, no position: tokens are local
    x = torch.rand(1, 1, 32, 48)
    changed = x.clone()
    changed[..., 8:16, 40:48] += 1  # the patch at grid row 1, column 5
    with torch.no_grad():
        difference = (network.encoder(changed)[0] - network.encoder(x)[0]).abs().sum(dim=1)[0]
    assert difference.shape == (4, 6)
    assert difference[1, 5] > 0 and torch.count_nonzero(difference) == 1


@pytest.mark.parametrize("method_name,spatial_dims", [("simclr", 2), ("byol", 2), ("simclr", 3), ("byol", 3)])
def test_one_training_step_through_the_config(method_name: str, spatial_dims: int) -> None:
    method = build_method(method_name, *TINY, *_data(spatial_dims))
    loss, before = train_one_step(method, torch.rand(4, 1, *SIZES[spatial_dims]))
    assert torch.isfinite(loss)
    encoder = dict(method.network.encoder.named_parameters())
    assert all(p.grad is not None for p in encoder.values())  # no unused parameter: DDP runs refuse them
    assert any(not torch.equal(p, before[f"network.encoder.{name}"]) for name, p in encoder.items())
    assert method.architecture["kwargs"]["img_size"] == SIZES[spatial_dims]


def test_published_encoder_loads_back_with_identical_features(tmp_path) -> None:
    network = _tiny(2).eval()
    kwargs = {"spatial_dims": 2, "in_channels": 1, "img_size": SIZES[2], **TINY_OPTIONS}
    directory = zoo.publish_network("tiny_vit", network, {"architecture": {"name": "vit", "kwargs": kwargs}}, store=tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == ["encoder.safetensors", "metadata.json"]
    x = torch.rand(2, 1, *SIZES[2])
    with torch.no_grad():
        assert torch.equal(zoo.load("tiny_vit", store=tmp_path)(x)[0], network.encoder(x)[0])


def test_fine_tuning_from_a_vit_entry_keeps_its_input_size(tmp_path) -> None:
    network = _tiny(3)
    kwargs = {"spatial_dims": 3, "in_channels": 1, "img_size": SIZES[3], **TINY_OPTIONS}
    zoo.publish_network("tiny_vit", network, {"architecture": {"name": "vit", "kwargs": kwargs}})
    method, report = build_finetune(*tiny(tmp_path), "method.init=zoo:tiny_vit")
    assert report["init"] == "tiny_vit"
    assert torch.equal(method.network.encoder.vit.patch_embedding.position_embeddings, network.encoder.vit.patch_embedding.position_embeddings)
    with pytest.raises(ConfigError, match=r"made for inputs of \[32, 32, 16\].*set data.patch_size=\[32,32,16\]") as error:
        build_finetune(*tiny(tmp_path), "data.patch_size=[32,32,32]", "method.init=zoo:tiny_vit")
    assert "\n" not in str(error.value)


def test_views_of_another_size_fail_with_one_line() -> None:
    method = build_method("simclr", *TINY, *_data(2), "method.views.small_crops=2")
    with pytest.raises(ConfigError, match=r"takes inputs of \[32, 48\] only .*got \[16, 24\].*method.views.small_crops") as error:
        method.training_step({"image": torch.rand(4, 1, *SIZES[2])}, 0)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "method_name,overrides,message",
    [
        ("simclr", ["data.patch_size=[30,30]"], r"network=vit needs data.patch_size divisible by 8 .*data.patch_size=\[32,32\]"),
        ("simclr", ["network.hidden_size=20", "network.num_heads=3"], r"network=vit: hidden_size should be divisible by num_heads"),
        ("simclr", ["network.proj_type=linear"], r"invalid value for 'network.proj_type'.*expected one of \[conv, perceptron\]"),
        ("genesis", [], r"network 'vit' has none: use network=unet or network=swinunetr"),
        ("chen", [], r"network 'vit' has none"),
    ],
)
def test_bad_sizes_options_and_methods_fail_with_one_line(method_name: str, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        build_method(method_name, *TINY, "data.spatial_dims=2", "data.patch_size=[32,32]", *overrides)
    assert "\n" not in str(error.value)
