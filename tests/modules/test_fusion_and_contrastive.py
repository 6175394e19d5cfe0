"""CLAMP's building blocks against hand computations and their defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from mabsa.modules.attention import MultiHeadAttention
from mabsa.modules.contrastive import cosine_cost, ipot, symmetric_info_nce, word_region_alignment_loss
from mabsa.modules.fusion import ProgressiveAttentionFusion, RelativeBiasCrossAttention
from mabsa.modules.multiloss import AdaptiveMultiLoss


def test_info_nce_equals_hand_computation_on_3x3():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    image = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    # cosine similarities: S = [[1,0,0],[0,1,1],[s,s,s]] with s = 1/sqrt(2); tau = 1
    e, s = math.e, 1 / math.sqrt(2)
    rows = -math.log(e / (e + 2)) - math.log(e / (1 + 2 * e)) - math.log(1 / 3)
    cols = (
        -math.log(e / (e + 1 + math.exp(s)))
        - math.log(e / (1 + e + math.exp(s)))
        - math.log(math.exp(s) / (1 + e + math.exp(s)))
    )
    expected = (rows + cols) / 3
    assert symmetric_info_nce(text, image, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_prefers_matched_pairs():
    torch.manual_seed(0)
    x, v = torch.randn(4, 8), torch.randn(4, 8)
    assert symmetric_info_nce(x, x, 0.1) < symmetric_info_nce(x, v, 0.1)
    with pytest.raises(ValueError):
        symmetric_info_nce(x, v[:3])


def test_ipot_plan_meets_the_marginals_with_padding():
    torch.manual_seed(0)
    cost = torch.rand(3, 6, 5)
    x_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4]).bool()
    y_mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2, [1] * 5]).bool()
    plan = ipot(cost, x_mask, y_mask, beta=0.5, iterations=200)
    mu = x_mask.float() / x_mask.sum(-1, keepdim=True)
    nu = y_mask.float() / y_mask.sum(-1, keepdim=True)
    assert torch.allclose(plan.sum(-1), mu, atol=1e-3)
    assert torch.allclose(plan.sum(-2), nu, atol=1e-5)
    assert plan[~(x_mask[:, :, None] & y_mask[:, None, :])].abs().max() == 0  # no mass on padding
    assert (plan >= 0).all()


def test_ipot_finds_the_permutation():
    # words are regions in another order: the optimal plan is that permutation (mass 1/n each)
    torch.manual_seed(1)
    regions = torch.randn(1, 5, 16)
    perm = torch.tensor([3, 0, 4, 1, 2])
    plan = ipot(cosine_cost(regions[:, perm], regions), beta=0.1, iterations=100)
    assert plan[0].argmax(-1).tolist() == perm.tolist()


def test_wra_loss_is_lower_for_aligned_than_shuffled_pairs():
    torch.manual_seed(2)
    regions = torch.randn(4, 5, 32)
    words = regions[:, torch.randperm(5)] + 0.05 * torch.randn(4, 5, 32)
    shuffled = regions[torch.tensor([1, 2, 3, 0])]
    for hard in (False, True):
        aligned = word_region_alignment_loss(words, regions, hard=hard)
        mismatched = word_region_alignment_loss(words, shuffled, hard=hard)
        assert aligned < 0.05 < 0.5 < mismatched


def test_wra_loss_has_gradient_through_the_cost_only():
    """The transport plan is a constant (IPOT runs without grad, on the detached cost): the
    gradient equals that of sum(T * C) with T fixed."""
    torch.manual_seed(0)
    words = torch.randn(2, 3, 8, requires_grad=True)
    regions = torch.randn(2, 4, 8, requires_grad=True)
    assert not ipot(cosine_cost(words, regions)).requires_grad
    word_region_alignment_loss(words, regions).backward()
    assert words.grad.abs().sum() > 0 and regions.grad.abs().sum() > 0
    w2, r2 = words.detach().clone().requires_grad_(), regions.detach().clone().requires_grad_()
    cost = cosine_cost(w2, r2)
    plan = ipot(cost.detach())
    (plan * cost).sum((1, 2)).mean().backward()
    assert torch.allclose(words.grad, w2.grad, atol=1e-6) and torch.allclose(regions.grad, r2.grad, atol=1e-6)


def test_relative_position_bias_is_used_and_gate_starts_at_half():
    torch.manual_seed(0)
    block = RelativeBiasCrossAttention(dim=8, heads=2, max_len=10, dropout=0.0).eval()
    assert torch.allclose(torch.sigmoid(block.gate), torch.full((8,), 0.5))
    text, image = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    before = block(text, image, None)
    with torch.no_grad():
        block.position_bias[1, 2] = 5.0
    after = block(text, image, None)
    assert not torch.allclose(before[:, 1], after[:, 1])  # query 1 attends differently
    assert torch.allclose(before[:, 0], after[:, 0])  # other queries untouched
    with pytest.raises(ValueError, match="position-bias size"):
        block(torch.randn(1, 11, 8), image, None)


def test_attention_ignores_padded_keys_and_survives_all_padding():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2).eval()
    q, k = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    padded = torch.cat([k, torch.randn(1, 2, 8) * 100], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    assert torch.allclose(attn(q, k), attn(q, padded, key_mask=mask), atol=1e-6)
    none = attn(q, padded, key_mask=torch.zeros(1, 6, dtype=torch.bool))
    assert torch.isfinite(none).all()


def test_paf_output_shape_gradient_and_image_padding_invariance():
    torch.manual_seed(0)
    paf = ProgressiveAttentionFusion(text_dim=12, image_dim=20, dim=16, heads=4, max_len=32, dropout=0.0).eval()
    text, image = torch.randn(2, 7, 12), torch.randn(2, 5, 20)
    text_mask = torch.ones(2, 7, dtype=torch.bool)
    out = paf(text, image, text_mask, torch.ones(2, 5, dtype=torch.bool))
    assert out.shape == (2, 7, 16)
    padded = torch.cat([image, torch.randn(2, 3, 20)], dim=1)
    image_mask = torch.tensor([[True] * 5 + [False] * 3] * 2)
    # PAF's position bias is indexed by key position, so padding at the end changes nothing
    assert torch.allclose(out, paf(text, padded, text_mask, image_mask), atol=1e-5)
    paf.train()
    paf(text, image, text_mask, None).sum().backward()
    assert all(p.grad is not None for n, p in paf.named_parameters() if p.requires_grad), "unused parameter"


def test_ama_weights_sum_to_one_and_sigma_gets_gradient():
    ama = AdaptiveMultiLoss(["crf", "cls", "gcl", "wra"], alpha=0.3, temperature=0.5)
    with torch.no_grad():
        ama.priority.copy_(torch.tensor([1.0, 0.0, -1.0, 2.0]))
    w = ama.weights().detach()
    assert w.sum().item() == pytest.approx(1.0)
    omega = torch.softmax(torch.tensor([1.0, 0.0, -1.0, 2.0]) / 0.5, 0)
    assert torch.allclose(w, 0.7 / 4 + 0.3 * omega)
    losses = {"crf": torch.tensor(2.0), "cls": torch.tensor(3.0), "gcl": torch.tensor(0.5), "wra": torch.tensor(0.2)}
    total = ama(losses)
    # sigma = 1 at the start: L = sum w_i * L_i / 2
    assert total.item() == pytest.approx(float((w * torch.tensor([2.0, 3.0, 0.5, 0.2])).sum() / 2))
    total.backward()
    # d/dlog(sigma_i) = w_i (1 - L_i / sigma_i^2): non-zero for every L_i != 1
    assert ama.log_sigma.grad.abs().min() > 0 and ama.priority.grad is not None


def test_ama_uncertainty_term_hand_computed_and_plain_sum_ablation():
    ama = AdaptiveMultiLoss(["a", "b"], alpha=0.0)  # uniform weights 1/2
    with torch.no_grad():
        ama.log_sigma.copy_(torch.tensor([math.log(2.0), 0.0]))
    losses = {"a": torch.tensor(4.0), "b": torch.tensor(1.0)}
    expected = 0.5 * (4.0 / (2 * 4.0) + math.log(2.0)) + 0.5 * (1.0 / 2)
    assert ama(losses).item() == pytest.approx(expected)
    plain = AdaptiveMultiLoss(["a", "b"], adaptive=False)
    assert plain(losses).item() == 5.0
    with pytest.raises(KeyError):
        plain({"a": torch.tensor(1.0)})
