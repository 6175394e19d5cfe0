"""The contract every registered model keeps (one test, parametrised over ``available_models()``):
built from a tiny random config, it runs forward with a finite loss, backward reaches its
parameters, it decodes spans inside each post, and a save / load round trip gives the same
outputs. A new model must add its tiny config here, or this file fails."""

import json
import math

import pytest
import torch

from iea_support import tiny_llama_dir
from mabsa.data import load_dataset
from mabsa.models import available_models, get_model_class
from mabsa.models.saving import load_model, save_model
from mabsa.modules.outputs import ModelOutput
from model_support import TINY_ENCODER

ENCODER = {"encoder": "minilm", **TINY_ENCODER}
#: model -> (task, tiny model_args); ``None`` args: built from other models (see below)
TINY = {
    "text-crf": ("jmasa", ENCODER),
    "text-cls": ("masc", ENCODER),
    "clamp": ("jmasa", {**ENCODER, "heads": 4, "align_dim": 16, "ipot_iterations": 5, "visual_max_length": 24}),
    "fite": ("masc", ENCODER),
    "lrsa": ("masc", {**ENCODER, "heads": 4, "visual_max_length": 24, "rationale_max_length": 24}),
    "iea": ("jmasa", None),
    "pipeline": ("jmasa", None),
    "fite-pipeline": ("jmasa", None),
    "ensemble": ("mate", None),
}


def test_every_registered_model_has_a_tiny_config():
    assert sorted(TINY) == available_models()


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "train")[:6]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama"))


def build(name: str, llama_dir, tmp_path):
    torch.manual_seed(0)
    task, args = TINY[name]
    if name == "iea":
        args = {"generator": f"hf:{llama_dir}", "random_init": True, "ablation": "no_aligner", "max_new_tokens": 6}
    if name in ("pipeline", "fite-pipeline", "ensemble"):  # composed from trained checkpoints
        from mabsa.models.ensemble.model import compose_ensemble
        from mabsa.models.pipeline.model import compose_pipeline

        save_model(get_model_class("text-crf").create(ENCODER, "mate"), tmp_path / "terms")
        if name == "ensemble":
            save_model(get_model_class("text-crf").create(ENCODER, "mate"), tmp_path / "terms2")
            model, _ = load_model(compose_ensemble([tmp_path / "terms", tmp_path / "terms2"], tmp_path / "c"))
            return model
        save_model(get_model_class("fite").create(ENCODER, "masc"), tmp_path / "polarity")
        polarity_input = "post" if name == "fite-pipeline" else "extraction"
        model, _ = load_model(
            compose_pipeline(tmp_path / "terms", tmp_path / "polarity", tmp_path / "c", polarity_input)
        )
        if name == "fite-pipeline":  # checkpoints written before the generic pipeline
            config = json.loads((tmp_path / "c" / "config.json").read_text())
            config["model"] = "fite-pipeline"
            del config["model_args"]["polarity_input"]
            (tmp_path / "c" / "config.json").write_text(json.dumps(config))
            model, _ = load_model(tmp_path / "c")
            assert model.config.polarity_input == "post"
        return model
    return get_model_class(name).create(args, task)


def outputs(model, batch):
    """What must survive a round trip: the decoded aspects (and the loss where there is one)."""
    model.eval()
    with torch.no_grad():
        decoded = model.decode(batch)
        loss = model(batch).loss if "labels" in batch and name_trains(model) else None
    return decoded, None if loss is None else float(loss)


def name_trains(model) -> bool:
    return not model.composed


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_contract(name, posts, llama_dir, tmp_path):
    model = build(name, llama_dir, tmp_path)
    features = model.processor.encode(posts)
    batch = model.processor.collate(features)

    if name_trains(model):
        model.train()
        out = model(batch)
        assert isinstance(out, ModelOutput) and out.loss is not None
        assert math.isfinite(float(out.loss.detach()))
        out.loss.backward()
        trained = [p for p in model.parameters() if p.requires_grad]
        assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
        model.zero_grad()

    before = outputs(model, batch)
    decoded = before[0]
    assert len(decoded) == len(features)
    for feature, aspects in zip(features, decoded):
        post = posts[feature.post_index]
        assert all(0 <= a.start < a.end <= len(post.tokens) for a in aspects)
        assert all(a.term == " ".join(post.tokens[a.start : a.end]) for a in aspects)

    saved = save_model(model, tmp_path / "saved")
    again, config = load_model(saved)
    assert config["model"] == name and again.task == model.task
    assert outputs(again, again.processor.collate(again.processor.encode(posts))) == before
