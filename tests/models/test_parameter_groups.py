"""Learning rates per parameter group: encoder vs heads, no decay on biases and norms, and
layer-wise learning-rate decay (hand-computed rates for a 3-layer encoder)."""

import pytest
import torch

from mabsa.models import get_model_class

TINY = {
    "random_init": True,
    "encoder_overrides": {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 37},
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return get_model_class("text-crf").create(TINY, "jmasa")


def rates(model, *args):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in model.parameter_groups(*args) for p in g["params"]}


def test_without_decay_encoder_at_lr_heads_at_head_lr(model):
    groups = model.parameter_groups(1e-4, 1e-3, 0.01)
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-3, 0.01), (1e-3, 0.0), (1e-4, 0.01), (1e-4, 0.0)]
    r = rates(model, 1e-4, 1e-3, 0.01)
    assert r["head.crf.transitions"] == (1e-3, 0.01) and r["head.emissions.bias"] == (1e-3, 0.0)
    assert r["text_encoder.model.encoder.layer.0.attention.self.query.weight"] == (1e-4, 0.01)


def test_layer_decay_halves_the_rate_per_layer_down_from_the_top(model):
    r = rates(model, 1e-4, 1e-3, 0.01, 0.5)
    layer = "text_encoder.model.encoder.layer.{}.attention.self.query.weight"
    # 3 layers: top = 4; layer k sits at depth k + 1 -> lr * 0.5 ** (3 - k); embeddings at 0.5 ** 4
    assert [r[layer.format(k)][0] for k in range(3)] == [1e-4 / 8, 1e-4 / 4, 1e-4 / 2]
    assert r["text_encoder.model.embeddings.word_embeddings.weight"] == (1e-4 / 16, 0.01)
    assert r["text_encoder.model.embeddings.LayerNorm.bias"] == (1e-4 / 16, 0.0)
    assert r["head.crf.transitions"] == (1e-3, 0.01)  # heads keep head_lr
    assert len(r) == sum(p.requires_grad for p in model.parameters())  # every parameter, once
