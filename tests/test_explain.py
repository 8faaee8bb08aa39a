"""Attention rollout, Grad-CAM and overlays (vcpred.explain)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import timm
import torch

from vcpred.explain import (
    attention_rollout, explain_frames, find_vit, grad_cam, overlay_png, paste_map, record_attention,
    rollout_from_attentions,
)
from vcpred.explain.rollout import _discard
from vcpred.models import ModelSpec, create_model

A1 = [[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]
A2 = [[0.2, 0.2, 0.6], [0.3, 0.4, 0.3], [0.5, 0.25, 0.25]]


@pytest.fixture(autouse=True)
def weights_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VCPRED_HOME", str(tmp_path / "home"))


def tiny_vit(seed: int = 0, method: str = "full"):
    return create_model(ModelSpec(backbone="vit_tiny_test", weights="random", method=method, seed=seed))


def images(batch: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_two_layer_rollout_matches_the_hand_computed_example():
    # Class token + 2 patches (grid 1x2). With residual: A1' = [[.75,.125,.125],[.1,.8,.1],[.05,.05,.9]],
    # A2' = [[.6,.1,.3],[.15,.7,.15],[.25,.125,.625]]; row 0 of A2'A1' = [.475, .17, .355].
    maps = rollout_from_attentions([np.array([A1]), np.array([A2])], num_prefix_tokens=1, grid_size=(1, 2))
    assert maps.shape == (1, 1, 2)
    np.testing.assert_allclose(maps[0, 0], [0.17 / 0.355, 1.0], rtol=1e-6)
    # the wrong multiplication order (A1'A2') gives 0.178125 / 0.321875 instead
    assert abs(maps[0, 0, 0] - 0.178125 / 0.321875) > 0.05


def test_rows_are_normalised_per_row_for_unnormalised_head_fusions():
    rng = np.random.default_rng(1)
    heads = rng.dirichlet(np.ones(5), size=(2, 4, 5))  # [B=2, heads=4, N=5, N=5], rows sum to 1
    expected = []
    for b in range(2):
        rollout = np.eye(5)
        for _ in range(2):
            a = heads[b].max(axis=0)  # max over heads: rows no longer sum to 1
            a = 0.5 * a + 0.5 * np.eye(5)
            a = a / a.sum(axis=1, keepdims=True)
            rollout = a @ rollout
        row = rollout[0, 1:]
        expected.append((row / row.max()).reshape(2, 2))
    maps = rollout_from_attentions([heads, heads], num_prefix_tokens=1, grid_size=(2, 2), head_fusion="max")
    np.testing.assert_allclose(maps, np.stack(expected), rtol=1e-6)


def test_discard_never_zeroes_the_class_token_column():
    fused = torch.tensor([[[0.01, 0.5, 0.49], [0.02, 0.9, 0.08], [0.03, 0.07, 0.9]]])
    out = _discard(fused, 0.5, class_index=0)
    assert torch.equal(out[0, :, 0], fused[0, :, 0])  # smallest entries of all, yet kept
    assert int((out[0, :, 1:] == 0).sum()) == 3  # half of the 6 eligible entries
    assert sorted(out[0, :, 1:][out[0, :, 1:] > 0].tolist()) == pytest.approx([0.5, 0.9, 0.9])


def test_rollout_on_a_tiny_vit_equals_numpy_on_the_captured_attention():
    built = tiny_vit()
    vit = find_vit(built.net)
    x = images()
    with record_attention(vit) as captured, torch.no_grad():
        built.core.eval().embed(x)
    assert len(captured) == 2 and captured[0].shape == (3, 3, 17, 17)
    np.testing.assert_allclose(captured[0].sum(-1).numpy(), 1.0, rtol=1e-5)
    expected = []
    for b in range(3):
        rollout = np.eye(17)
        for layer in captured:
            a = layer[b].numpy().astype(np.float64).mean(axis=0)
            a = 0.5 * a + 0.5 * np.eye(17)
            rollout = (a / a.sum(axis=1, keepdims=True)) @ rollout
        row = rollout[0, 1:]
        expected.append((row / row.max()).reshape(4, 4))
    maps = attention_rollout(built.net, x)
    assert maps.shape == (3, 4, 4)
    np.testing.assert_allclose(maps, np.stack(expected), rtol=1e-5)


def test_fused_attention_is_restored_also_after_an_error():
    vit = find_vit(tiny_vit().net)
    before = [block.attn.fused_attn for block in vit.blocks]
    with pytest.raises(RuntimeError, match="boom"):
        with record_attention(vit):
            assert not any(block.attn.fused_attn for block in vit.blocks)
            raise RuntimeError("boom")
    assert [block.attn.fused_attn for block in vit.blocks] == before
    assert not any(block.attn.attn_drop._forward_hooks for block in vit.blocks)


def test_recording_does_not_change_the_logits():
    built = tiny_vit()
    net, x = built.net.eval(), images()
    with torch.no_grad():
        plain = net(x)
        with record_attention(find_vit(net)):
            recorded = net(x)
    torch.testing.assert_close(plain, recorded, atol=1e-5, rtol=1e-5)


def test_rollout_works_through_peft_lora_and_restores_training_mode():
    lora = tiny_vit(method="lora")
    assert hasattr(lora.net, "peft_config")
    lora.net.train()
    maps = attention_rollout(lora.net, images(2))
    assert lora.net.training
    np.testing.assert_allclose(maps, attention_rollout(lora.core, images(2)), rtol=1e-6)  # LoRA B starts at 0
    assert maps.shape == (2, 4, 4) and np.allclose(maps.max(axis=(1, 2)), 1.0)


def test_prefix_tokens_are_read_from_the_model():
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1, reg_tokens=4, num_classes=0)
    assert vit.num_prefix_tokens == 5
    maps = attention_rollout(vit, images(2, 32))
    assert maps.shape == (2, 2, 2) and np.all(np.isfinite(maps))


def test_grad_cam_shapes_and_hand_computation():
    built = create_model(ModelSpec(backbone="resnet_test", weights="random", method="lora"))
    x = images(2, 128)
    maps = grad_cam(built.net, x)
    assert maps.shape == (2, 4, 4) and maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    core = built.core.eval()
    features = core.backbone.forward_features((x - core.input_mean) / core.input_std).detach().requires_grad_(True)
    core.classify(core.backbone.forward_head(features)).sum().backward()
    cam = torch.relu((features.grad.mean(dim=(2, 3), keepdim=True) * features).sum(1)).detach()
    np.testing.assert_allclose(maps, (cam / cam.amax(dim=(1, 2), keepdim=True)).numpy(), rtol=1e-4, atol=1e-6)
    assert explain_frames(built.net, x).shape == (2, 4, 4)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_randomised_weights_give_a_visibly_different_map(artefacts):
    """Sanity check (Adebayo et al. 2018): maps must depend on the learned weights."""
    from vcpred.models import load_model

    x = artefacts.store_frames(["P000", "P003", "P001", "P100"])  # tiny-store frames with the planted block
    for name, model in (("vitlora", dict(backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))),
                        ("resnetlora", dict(backbone="resnet_test", method="lora"))):
        trained = load_model(artefacts.trained_runs(name, **model) / name / "split-00" / "model")
        clinical = torch.zeros(len(x), trained.clinical_features) if trained.clinical_features else None
        randomised = create_model(replace(trained.spec, seed=123), clinical_features=trained.clinical_features)
        trained_map = explain_frames(trained.net, x, clinical)
        random_map = explain_frames(randomised.net, x, clinical)
        assert trained_map.std() > 0, name
        # different: uncorrelated, or (a random CNN often has nothing that raises its logit) flat
        if random_map.std() > 0:
            assert _correlation(trained_map, random_map) < 0.9, name
        else:
            assert np.abs(trained_map - random_map).mean() > 0.1, name


def test_pasted_map_lies_inside_the_crop_box_clipped_to_the_image(tmp_path):
    heat = np.zeros((4, 4), np.float32)
    heat[1, 1] = 1.0  # crop rows 0..10, cols 160..170 (the crop's rows -10..0 and cols 170.. are cut off)
    full = paste_map(heat, (-10, 150, 30, 190), (100, 170))
    inside = np.isfinite(full)
    rows, cols = np.nonzero(inside)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 29, 150, 169)
    assert inside.sum() == 30 * 20
    peak = np.unravel_index(np.nanargmax(full), full.shape)
    assert 0 <= peak[0] < 10 and 158 <= peak[1] < 170
    png = overlay_png(np.random.default_rng(0).random((100, 170)), full, (0, 155, 20, 185), (-10, 150, 30, 190),
                      path=tmp_path / "o.png", spacing=(1.0, 1.0), title="test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "o.png").read_bytes() == png


def test_zoomed_overlay_shows_the_crop_with_context_inside_the_image():
    from vcpred.explain import zoom_box

    assert zoom_box((40, 50, 60, 70), (200, 300)) == (30, 40, 70, 80)  # twice the side, same centre
    assert zoom_box((0, 280, 20, 300), (200, 300)) == (0, 260, 40, 300)  # moved inside at the edges
    assert zoom_box((-10, 0, 90, 100), (50, 80), context=3.0) == (0, 0, 50, 80)  # cut to the image
    full = paste_map(np.eye(4, dtype=np.float32), (40, 50, 60, 70), (200, 300))
    image = np.random.default_rng(0).random((200, 300))
    zoomed = overlay_png(image, full, (42, 52, 58, 68), (40, 50, 60, 70), spacing=(1.0, 1.0), title="t " * 80,
                         view=zoom_box((40, 50, 60, 70), (200, 300)))
    assert zoomed[:8] == b"\x89PNG\r\n\x1a\n"
    assert zoomed != overlay_png(image, full, (42, 52, 58, 68), (40, 50, 60, 70), spacing=(1.0, 1.0), title="t " * 80)


def test_explain_run_draws_the_study_figures_for_store_patients(artefacts, tmp_path):
    from vcpred.explain.maps import explain_run

    runs = artefacts.trained_runs("vitlora", backbone="vit_tiny_test", method="lora", clinical_columns=("age", "sex"))
    _, store, _ = artefacts.tiny_cohort()
    written = explain_run(runs / "vitlora" / "split-00", store, ["P000", "P100"], tmp_path / "figures")
    assert [p.name for p in written] == ["P000.png", "P100.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
