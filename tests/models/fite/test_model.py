"""FITE: face-to-aspect text, the gate, the two-branch model on tiny random encoders, the
JMASA pipeline and `mabsa predict` on a real photo."""

import json
from dataclasses import replace

import pytest
import torch

from mabsa.data import load_dataset
from mabsa.data.records import Aspect, Face, Polarity, Post
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.inference import predict_posts
from mabsa.models import get_model_class
from mabsa.models.fite.model import GatedFusion
from mabsa.models.saving import save_model
from mabsa.perception.face_text import (
    RULE_MOST_CONFIDENT,
    RULE_ONLY_FACE,
    RULE_SIMILARITY,
    FaceTextBuilder,
    choose_face,
    rewrite,
)
from mabsa.processing.image_text import describe_face
from model_support import train_steps

TINY = {
    "encoder": "minilm",
    "random_init": True,
    "encoder_overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37},
}

KATE = Face(
    box=(0, 0, 50, 50),
    age=35.2,
    gender="woman",
    race="white",
    emotion="happy",
    emotion_scores={"happy": 0.9, "neutral": 0.1},
    confidence=0.9,
    race_scores={"white": 0.8, "asian": 0.2},
)
CHILD = Face(
    box=(60, 0, 30, 30),
    age=7.6,
    gender="man",
    race="asian",
    emotion="angry",
    emotion_scores={"angry": 0.95, "sad": 0.05},
    confidence=0.95,
    race_scores={"asian": 0.3, "white": 0.7},
)


def tiny(task="masc", model="fite", **args):
    torch.manual_seed(0)
    return get_model_class(model).create({**TINY, **args}, task)


@pytest.fixture(scope="module")
def posts():
    return load_dataset("twitter2015", "train")[:10]


# -- face description for an aspect ------------------------------------------------------------
def test_template_full_and_partial_attributes():
    assert describe_face(KATE) == "A 35-year-old white woman with a happy expression."
    # race under 0.4 is dropped; "a [Emotion]" is the paper's template word for word
    assert describe_face(CHILD) == "An 8-year-old man with a angry expression."
    one = rewrite([KATE], choose_face([KATE], "Kate Middleton"), "Kate Middleton")
    assert one == "There is 1 person in the image. Kate Middleton with a happy expression."
    unsure = replace(KATE, emotion_scores={"happy": 0.35, "sad": 0.33})
    assert rewrite([unsure], choose_face([unsure], "Kate"), "Kate") == "There is 1 person in the image. Kate."
    bare = Face(emotion="sad")  # no scores: counts as sure; no age/race/gender
    assert (
        rewrite([bare], choose_face([bare], "Kate"), "Kate")
        == "There is 1 person in the image. Kate with a sad expression."
    )
    assert rewrite([], choose_face([], "Kate"), "Kate") == "There are 0 people in the image."
    assert FaceTextBuilder().build(None, "Kate") == (None, choose_face([], "Kate"))


class FakeSimilarity:
    id = "fake"

    def __init__(self, scores):
        self._scores, self.calls = scores, []

    def scores(self, image, texts):
        self.calls.append((image, list(texts)))
        return self._scores


def test_multi_face_choice_with_a_similarity_backend():
    fake = FakeSimilarity([0.61, 0.39])
    choice = choose_face([KATE, CHILD], "Kate Middleton", image="img", backend=fake)
    assert (choice.index, choice.rule, choice.scores) == (0, RULE_SIMILARITY, (0.61, 0.39))
    image, texts = fake.calls[0]
    assert image == "img" and texts == [
        f"Kate Middleton, {describe_face(KATE)}",
        f"Kate Middleton, {describe_face(CHILD)}",
    ]
    # the backend decides, not the confidence: the child's expression is the more confident one
    assert choose_face([KATE, CHILD], "the kids", image="img", backend=FakeSimilarity([0.2, 0.8])).index == 1
    assert (
        rewrite([KATE, CHILD], choice, "Kate Middleton")
        == "There are 2 people in the image. Kate Middleton with a happy expression."
    )


def test_multi_face_fallback_rule_is_deterministic():
    # no backend: the most confident expression (the child, 0.95)
    c = choose_face([KATE, CHILD], "Kate")
    assert (c.index, c.rule) == (1, RULE_MOST_CONFIDENT)
    # equal confidence: the larger box; then the earlier face
    same = replace(CHILD, confidence=0.9)
    assert choose_face([same, KATE], "Kate").index == 1
    assert choose_face([KATE, replace(KATE, emotion="sad")], "Kate").index == 0
    # no confidence field: the top emotion probability
    assert choose_face([replace(KATE, confidence=None), replace(CHILD, confidence=None)], "x").index == 1
    assert choose_face([KATE], "Kate").rule == RULE_ONLY_FACE


def test_builder_falls_back_loudly_when_the_image_is_not_a_file():
    fake = FakeSimilarity([0.9, 0.1])
    builder = FaceTextBuilder(fake)
    with pytest.warns(UserWarning, match="most-confident-face rule"):
        text, choice = builder.build([KATE, CHILD], "Kate", "1860693.jpg")
    assert choice.rule == RULE_MOST_CONFIDENT and not fake.calls
    assert text == "There are 2 people in the image. Kate with a angry expression."


# -- gate and model -----------------------------------------------------------------------------
def test_gate_equals_the_formula_on_fixed_tensors():
    gate = GatedFusion(2)
    with torch.no_grad():
        gate.w_d.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, -1.0]]))
        gate.w_c.weight.copy_(torch.tensor([[0.0, 2.0], [1.0, 1.0]]))
        gate.w_c.bias.copy_(torch.tensor([0.1, -0.2]))
    h_d = torch.tensor([[1.0, 2.0]])
    h_c = torch.tensor([[-1.0, 0.5]])
    fused, g = gate(h_d, h_c)
    # by hand: W_D h_D = [1, 0.5*1 - 2] = [1, -1.5]; W_C h_C = [1, -0.5]; + b -> [2.1, -2.2]
    g_hand = torch.tanh(torch.tensor([[2.1, -2.2]]))
    assert torch.allclose(g, g_hand)
    assert torch.allclose(fused, g_hand * h_d + (1 - g_hand) * h_c)


def test_inputs_follow_the_paper_layout(posts):
    m = tiny()
    f = m.processor.encode(posts[:1])[0]
    tok = m.processor.tokenizer
    face = tok.decode(f.branch_inputs["face"][0])
    caption = tok.decode(f.branch_inputs["caption"][0])
    a = posts[0].aspects[0]
    text = " ".join(posts[0].tokens).lower()
    assert face.startswith("[CLS] " + tok.decode(tok(text, add_special_tokens=False)["input_ids"]))
    assert f"[SEP] {a.term.lower()} [SEP] there are" in face and face.endswith("[SEP]")
    assert posts[0].caption.lower().rstrip(".") in caption and "people in the" not in caption
    assert f.face_text == posts[0].aspect_face_description.strip()
    # face_source="faces": built by our code from the face attributes, never the shipped text
    ours = tiny(face_source="faces").processor.encode(posts[:1])[0].face_text
    assert ours.startswith(("There are", "There is")) and "picture" not in ours


def test_a_tokenizer_without_sep_separates_with_its_end_token(posts):
    """EmbeddingGemma has no [SEP]: the branch pair is T <eos> A <eos> X, never the word 'None'."""
    from mabsa.encoders.text import load_tokenizer
    from mabsa.models.fite.model import FiteProcessor

    tok = load_tokenizer("embeddinggemma-300m")
    assert tok.sep_token is None
    f = FiteProcessor(tok).encode(posts[:1])[0]
    face = tok.decode(f.branch_inputs["face"][0])
    a = posts[0].aspects[0]
    assert "None" not in face and f"<eos><bos>{a.term} <eos> There" in face, face


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"fusion": "concat"},
        {"branches": ["face"]},
        {"branches": ["caption"]},
        {"pooling": "cls+aspect"},
        {"pooling": "cls+aspect", "fusion": "concat"},
    ],
)
def test_forward_backward_every_variant(posts, args):
    m = tiny(dropout=0.0, **args)
    batch = m.processor.collate(m.processor.encode(posts[:8]))
    out = m(batch)
    assert out.logits.shape == (len(batch["features"]), 3)
    out.loss.backward()
    for name, enc in m.text_encoder.items():
        assert enc.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0, name
    assert (m.fusion is not None) == (args.get("fusion", "gate") == "gate" and "branches" not in args)
    if m.fusion is not None:
        assert m.fusion.w_d.weight.grad.abs().sum() > 0


def test_cls_aspect_pooling_reads_the_aspect_in_both_branches(posts):
    """pooling="cls+aspect": each branch's state is [CLS] and the mean over the aspect's subwords
    of T, which sit at the same positions in both branch inputs."""
    m = tiny(dropout=0.0, pooling="cls+aspect").eval()
    features = m.processor.encode(posts[:6])
    batch = m.processor.collate(features)
    states = m.branch_states(batch)
    tok = m.processor.tokenizer
    for b, encoder in m.text_encoder.items():
        x = batch[b]
        hidden = encoder(x["input_ids"], x["attention_mask"], x["token_type_ids"])
        for i, f in enumerate(features):
            aspect = posts[f.post_index].aspects[f.aspect_index]
            positions = batch["aspect_positions"][i][batch["aspect_mask"][i]]
            assert tok.decode(x["input_ids"][i, positions]).replace(" ", "") == aspect.term.lower().replace(" ", "")
            assert torch.allclose(states[b][i, : hidden.shape[-1]], hidden[i, 0])
            assert torch.allclose(states[b][i, hidden.shape[-1] :], hidden[i, positions].mean(0), atol=1e-6)


def test_training_steps_reduce_loss(posts):
    m = tiny(dropout=0.0)
    batch = m.processor.collate(m.processor.encode(posts[:8]))
    # 30 steps: [CLS] of a random encoder is nearly input-independent, a slow start
    losses, opt, _ = train_steps(m, batch, steps=30, lr=2e-3)
    assert losses[-1] < 0.5 * losses[0]
    # both encoders train at the encoder lr, gate and classifier at the head lr
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(m.text_encoder["caption"].model.embeddings.word_embeddings.weight)] == 2e-3
    assert lrs[id(m.fusion.w_d.weight)] == 1e-2


def test_save_then_load_gives_identical_predictions(tmp_path, posts):
    m = tiny(fusion="concat", face_source="faces")
    loaded, _ = ckpt.load_model(save_model(m, tmp_path))
    assert loaded.processor.branches == ("face", "caption") and loaded.fusion_kind == "concat"
    assert loaded.processor.face_source == "faces"
    m.eval()
    a, b = predict_posts(m, posts).posts, predict_posts(loaded, posts).posts
    assert [p.aspects for p in a] == [p.aspects for p in b]
    aspect = a[0].aspects[0]
    assert aspect.polarity is not None and aspect.rationale.source == "fite:face-description"
    batch = m.processor.collate(m.processor.encode(posts))
    assert torch.equal(m(batch).logits, loaded(batch).logits)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    """A tiny MATE model that tags every word a term, then tiny FITE (a default pipeline)."""
    from mabsa.models.pipeline.model import compose_pipeline

    root = tmp_path_factory.mktemp("pipe")
    mate = tiny("mate", "text-crf", image_text=["caption"])
    with torch.no_grad():
        mate.head.emissions.weight.zero_()
        mate.head.emissions.bias.copy_(torch.tensor([0.0, 20.0, 0.0]))
    save_model(mate, root / "mate")
    save_model(tiny(), root / "fite")
    return compose_pipeline(root / "mate", root / "fite", root / "pipeline")


@pytest.mark.parametrize("which", ["pipeline", "masc"])
def test_predict_cli_on_a_real_photo(pipeline_dir, tmp_path, which):
    """`mabsa predict --image astronaut.png --text ...`: Perception finds her face, FITE turns it
    into the aspect's description and classifies the polarity."""
    from click.testing import CliRunner
    from PIL import Image
    from skimage import data

    from mabsa import cli
    from mabsa.cli.engine import COMMANDS

    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    directory = pipeline_dir if which == "pipeline" else save_model(tiny(), tmp_path / "fite")
    extra = [] if which == "pipeline" else ["--aspect", "Eileen Collins"]
    group = cli._Group(name="mabsa", commands={c.name: c for c in COMMANDS})
    r = CliRunner().invoke(
        group,
        [
            "predict",
            "--checkpoint",
            str(directory),
            "--image",
            str(photo),
            "--text",
            "Eileen Collins smiles before launch",
            *extra,
        ],
    )
    assert r.exit_code == 0, r.output
    pred = json.loads(r.stdout.splitlines()[0])
    aspect = pred["aspects"][0]
    assert aspect["term"] == ("Eileen" if which == "pipeline" else "Eileen Collins")
    assert aspect["polarity"] in ("POS", "NEU", "NEG")
    description = aspect["rationale"]["description"]
    assert description.startswith("There is 1 person in the image. " + aspect["term"])
    assert description.endswith("expression.")  # fer: happy, 0.99 on this photo


def tiny_clip(directory):
    """A random-init CLIP with a byte-level vocabulary (no merges), saved like a hub model."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in bytes_to_unicode().values():
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, **small
        ),
        vision_config=dict(image_size=32, patch_size=8, **small),
        projection_dim=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(config)
    model.save_pretrained(directory)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(directory)
    return model


def test_clip_similarity_backend_matches_clips_own_logits(tmp_path):
    from PIL import Image
    from skimage import data

    from mabsa.perception.face_text import build_similarity

    model = tiny_clip(tmp_path / "clip")
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    backend = build_similarity(f"hf:{tmp_path / 'clip'}")
    texts = ["Eileen, A 35-year-old white woman with a happy expression.", "Eileen, A man."]
    scores = backend.scores(str(photo), texts)
    from transformers import AutoProcessor

    inputs = AutoProcessor.from_pretrained(tmp_path / "clip")(
        text=texts, images=[Image.open(photo).convert("RGB")], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        logits = model.eval()(**inputs).logits_per_image[0] / model.logit_scale.exp()
    assert torch.allclose(torch.tensor(scores), logits, atol=1e-5) and scores[0] != scores[1]
    text, choice = FaceTextBuilder(f"hf:{tmp_path / 'clip'}").build([KATE, CHILD], "Eileen", str(photo))
    assert choice.rule == RULE_SIMILARITY and choice.index == max(range(2), key=choice.scores.__getitem__)
    assert text.startswith("There are 2 people in the image. Eileen with a ")


def test_truncation_is_reported_only_when_words_are_cut():
    m = tiny(max_length=24)
    short = Post(
        id="s", tokens=("we", "love", "Kate"), caption="a woman", aspects=(Aspect(2, 3, "Kate", Polarity.POS),)
    )
    long = Post(
        id="l",
        tokens=tuple(f"w{i}" for i in range(30)) + ("Kate",),
        aspects=(Aspect(30, 31, "Kate", Polarity.POS), Aspect(0, 1, "w0", Polarity.NEU)),
    )
    f_short, f_end, f_start = m.processor.encode([short, long])
    assert not f_short.truncated  # aspect closes the post: its empty right marker is no cut
    assert f_end.truncated and f_start.truncated
    assert all(len(ids) <= 24 for f in (f_end, f_start) for ids, _ in f.branch_inputs.values())
