"""Checkpoints written before the output heads became modules of their own
(``emissions.*`` / ``crf.*`` / ``classifier.*``, CLAMP's ``text_emissions.*`` / ``text_crf.*``)
still load, alone and as a pipeline stage, and predict exactly as before."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from mabsa.data import load_dataset
from mabsa.models import get_model_class
from mabsa.models.pipeline.model import compose_pipeline
from mabsa.models.saving import load_model, save_model
from model_support import TINY_ENCODER

ENCODER = {"encoder": "minilm", **TINY_ENCODER}
OLD_NAMES = {  # the names the heads' weights had: new -> old
    "head.emissions.": "emissions.",
    "head.crf.": "crf.",
    "head.classifier.": "classifier.",
    "text_head.emissions.": "text_emissions.",
    "text_head.crf.": "text_crf.",
}


def write_with_old_names(directory, stage: str = "") -> None:
    """Rewrite a checkpoint's weights under the pre-heads names (within ``stage``'s prefix)."""
    path = directory / "model.safetensors"
    state = load_file(str(path))
    renamed = {}
    for key, value in state.items():
        local = key[len(stage) :] if key.startswith(stage) else None
        old = next((o for n, o in OLD_NAMES.items() if local is not None and local.startswith(n)), None)
        new_prefix = next((n for n in OLD_NAMES if local is not None and local.startswith(n)), "")
        renamed[stage + old + local[len(new_prefix) :] if old else key] = value
    assert renamed.keys() != state.keys()  # something was renamed
    save_file(renamed, str(path), metadata={"format": "pt"})


def outputs(model, posts):
    model.eval()
    batch = model.processor.collate(model.processor.encode(posts))
    return model.decode(batch)


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "dev")[:6]


@pytest.mark.parametrize(
    "name,task,args",
    [
        ("text-crf", "jmasa", ENCODER),
        ("text-cls", "masc", ENCODER),
        ("fite", "masc", ENCODER),
        ("clamp", "mate", {**ENCODER, "heads": 4, "align_dim": 16, "visual_max_length": 24}),
        ("lrsa", "mate", {**ENCODER, "heads": 4, "visual_max_length": 24}),
    ],
)
def test_a_checkpoint_with_the_old_head_names_loads_and_predicts_the_same(name, task, args, posts, tmp_path):
    torch.manual_seed(0)
    model = get_model_class(name).create(args, task)
    with torch.no_grad():  # random heads would make every prediction the same empty list
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = outputs(model, posts)
    save_model(model, tmp_path / "m")
    write_with_old_names(tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    assert outputs(loaded, posts) == before


def test_a_pipeline_whose_stages_have_the_old_names_loads(posts, tmp_path):
    torch.manual_seed(0)
    save_model(get_model_class("text-crf").create(ENCODER, "mate"), tmp_path / "terms")
    save_model(get_model_class("text-cls").create(ENCODER, "masc"), tmp_path / "polarity")
    pipe, _ = load_model(compose_pipeline(tmp_path / "terms", tmp_path / "polarity", tmp_path / "p"))
    before = outputs(pipe, posts)
    write_with_old_names(tmp_path / "p", stage="terms.")
    write_with_old_names(tmp_path / "p", stage="polarity.")
    loaded, _ = load_model(tmp_path / "p")
    assert outputs(loaded, posts) == before
