"""Dual cross-attention: shapes, masking (padding in either stream changes nothing), no-image
posts, gradients to both streams."""

from __future__ import annotations

import pytest
import torch

from mabsa.modules.dual_attention import DualCrossAttention, masked_mean


def block(fusion="gate", dim=16, text_dim=12, visual_dim=10):
    torch.manual_seed(0)
    return DualCrossAttention(text_dim, visual_dim, dim, heads=4, dropout=0.0, fusion=fusion).eval()


def inputs(b=3, lt=5, lv=4, text_dim=12, visual_dim=10):
    torch.manual_seed(1)
    text, visual = torch.randn(b, lt, text_dim), torch.randn(b, lv, visual_dim)
    text_mask = torch.ones(b, lt, dtype=torch.bool)
    visual_mask = torch.ones(b, lv, dtype=torch.bool)
    text_mask[1, 3:] = False
    visual_mask[2, 2:] = False
    return text, visual, text_mask, visual_mask


def test_masked_mean_by_hand():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert masked_mean(x, torch.tensor([[True, True, False]])).tolist() == [[2.0, 3.0]]
    assert masked_mean(x, torch.tensor([[False, False, False]])).tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("fusion", ["gate", "sum"])
def test_shapes(fusion):
    m = block(fusion)
    text, visual, tm, vm = inputs()
    out, t2v, v2t, g = m(text, visual, tm, vm, return_parts=True)
    assert out.shape == (3, 5, 12) and t2v.shape == (3, 5, 16) and v2t.shape == (3, 4, 16) and g.shape == (3, 16)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("fusion", ["gate", "sum"])
def test_padding_in_either_stream_has_no_effect(fusion):
    m = block(fusion)
    text, visual, tm, vm = inputs()
    ref = m(text, visual, tm, vm)
    # more padding, filled with garbage, in both streams
    text2 = torch.cat([text, 50 * torch.randn(3, 3, 12)], 1)
    visual2 = torch.cat([visual, -70 * torch.randn(3, 6, 10)], 1)
    tm2 = torch.cat([tm, torch.zeros(3, 3, dtype=torch.bool)], 1)
    vm2 = torch.cat([vm, torch.zeros(3, 6, dtype=torch.bool)], 1)
    # and garbage written into the positions that were padding already
    text2[1, 3:5] = 1e3
    visual2[2, 2:4] = -1e3
    out = m(text2, visual2, tm2, vm2)
    assert torch.allclose(out[:, :5][tm], ref[tm], atol=1e-5)


def test_each_stream_matters_at_real_positions():
    m = block()
    text, visual, tm, vm = inputs()
    ref = m(text, visual, tm, vm)
    v = visual.clone()
    v[0, 0] += 1.0  # a real visual token of post 0
    changed = m(text, v, tm, vm)
    assert not torch.allclose(changed[0], ref[0]) and torch.allclose(changed[1:], ref[1:])
    t = text.clone()
    t[0, 4] += 1.0  # a real text token of post 0 reaches its other tokens through image->text
    changed = m(t, visual, tm, vm)
    assert not torch.allclose(changed[0, :4], ref[0, :4])


def test_a_post_without_image_gets_its_normalised_text():
    m = block()
    text, visual, tm, vm = inputs()
    vm[0] = False
    out = m(text, visual, tm, vm)
    assert torch.allclose(out[0], m.norm(text[0]), atol=1e-6)


def test_gradients_reach_both_streams_and_every_parameter():
    m = block().train()
    text, visual, tm, vm = inputs()
    text.requires_grad_(True)
    visual.requires_grad_(True)
    m(text, visual, tm, vm)[tm].sum().backward()
    assert text.grad.abs().sum() > 0 and visual.grad[vm].abs().sum() > 0
    assert visual.grad[~vm].abs().sum() == 0  # padding gets nothing
    assert all(p.grad is not None for p in m.parameters())


def test_unknown_fusion_is_refused():
    with pytest.raises(ValueError, match="fusion"):
        DualCrossAttention(8, 8, fusion="concat")
