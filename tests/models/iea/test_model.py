"""The IEA generator: LoRA steps on tiny random-init models (Llama for the CPU path, Qwen2-VL for
the paper's path), the engine's train / checkpoint / load / predict, adapter-only weights."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from iea_support import tiny_llama_dir, tiny_qwen2_vl
from mabsa.data import load_dataset
from mabsa.data.records import Polarity, Post
from mabsa.engine import checkpoint as ckpt
from mabsa.engine import trainer
from mabsa.engine.config import load_run_config
from mabsa.errors import ConfigError, MabsaError
from mabsa.models.iea.config import DEFAULT_LORA
from mabsa.models.iea.instructions import build_instruction
from mabsa.models.iea.interpretations import ImageView, RegionUnit
from mabsa.models.iea.model import (
    CausalLMGenerator,
    IEAFeature,
    IEAProcessor,
    VisionLanguageGenerator,
    build_generator,
    lora_wrap,
)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama"))


def tiny_sets(llama_dir, *extra):
    return [
        f"model_args.generator=hf:{llama_dir}",
        "model_args.random_init=true",
        "model_args.max_new_tokens=6",
        "train.max_train_posts=16",
        "train.max_eval_posts=6",
        "train.batch_size=8",
        "train.eval_batch_size=8",
        "train.epochs=1",
        "train.lr=0.01",
        *extra,
    ]


class FakeAligner:
    """Aligns every region to the post's first capitalised word (enough to place units)."""

    def __init__(self):
        self.calls = 0

    def align(self, pairs):
        self.calls += 1
        out = []
        for tokens, _ in pairs:
            k = next((i for i, t in enumerate(tokens) if t[:1].isupper() and t != "RT"), None)
            out.append(None if k is None else (k, k + 1))
        return out


def test_lora_step_reduces_loss_and_only_trains_the_adapter(llama_dir):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(llama_dir))
    gen = CausalLMGenerator(
        lora_wrap(lm, DEFAULT_LORA, DEFAULT_LORA["target_modules"]), AutoTokenizer.from_pretrained(llama_dir)
    )
    trainable = [n for n, p in gen.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frozen_before = {n: p.clone() for n, p in gen.named_parameters() if not p.requires_grad}
    tokens = "RT @ user : Chuck Bass is everything # MCM".split()
    x = build_instruction(tokens, ImageView("a man", (RegionUnit(1, "A man.", "positive"),)), [(4, 6)])
    prompt, target, _ = gen.encode(x, "(Chuck Bass, positive)", 256, 48)
    feats = [IEAFeature(prompt + target, prompt, target, 0, len(tokens), x)] * 2
    batch = gen.collate(feats)
    assert (batch["labels"][0, : len(prompt)] == -100).all()
    assert batch["labels"][0, len(prompt) : len(prompt) + len(target)].tolist() == target
    opt = torch.optim.AdamW([p for p in gen.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for _ in range(3):
        loss = gen.loss(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, frozen_before[n]) for n, p in gen.named_parameters() if not p.requires_grad)
    texts, probs = gen.generate(batch, 5)
    assert len(texts) == 2 and texts[0] == texts[1] and all(0 < p <= 1 for p in probs)
    # the loss from the target positions' logits alone is the full forward's loss, also when the
    # prompts (so the targets' positions) differ in length
    short = build_instruction(tokens[4:], None)
    p2, t2, _ = gen.encode(short, "(Chuck Bass, neutral); (MCM, positive)", 256, 48)
    mixed = gen.collate([feats[0], IEAFeature(p2 + t2, p2, t2, 1, 6, short)])
    gen.eval()  # no LoRA dropout: two forwards to compare
    full = gen.lm(input_ids=mixed["input_ids"], attention_mask=mixed["attention_mask"], labels=mixed["labels"])
    torch.testing.assert_close(gen.loss(mixed), full.loss)


def test_engine_train_checkpoint_and_predict(llama_dir, tmp_path):
    config = load_run_config("iea", sets=tiny_sets(llama_dir, "model_args.ablation=no_aligner"))
    metrics = trainer.train(config, "twitter2015", "jmasa", tmp_path / "run", progress=False)
    out = tmp_path / "run"
    assert metrics["test"]["jmasa"]["n_gold"] > 0 and "mate" in metrics["test"]
    # the trainer records what each evaluation adds to the generator's answer counts: 6 posts each
    for scores in (metrics["test"], metrics["dev"]):
        assert scores["prediction_counts"]["posts"] == 6
        assert set(scores["prediction_counts"]) == {"posts", "unparseable", "unmatched_terms", "cut_by_budget"}
    weights = load_file(str(out / ckpt.WEIGHTS_FILE))
    assert weights and all("lora_" in k for k in weights)  # the adapter only
    assert json.loads((out / "config.json").read_text())["model"] == "iea"
    model, _ = ckpt.load_model(out)
    again, _ = ckpt.load_model(out)
    posts = load_dataset("twitter2015", "test")[:4]
    feats = model.processor.encode(posts, with_labels=False)
    batch = model.processor.collate(feats)
    assert model.generate_texts(batch) == again.generate_texts(again.processor.collate(feats))
    trained = load_file(str(out / ckpt.WEIGHTS_FILE))
    restored = model.state_dict()
    assert set(restored) == set(trained) and all(torch.equal(restored[k], trained[k]) for k in trained)
    from mabsa.api import load

    pred = load(out).predict("RT @ user : Chuck Bass is everything # MCM")
    assert pred.tokens[4] == "Chuck" and all(a.end <= len(pred.tokens) for a in pred.aspects)
    # a real photo: the processor perceives it itself (regions), the predictor only passes it on
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    seen = []
    predictor = load(out)
    views = predictor.model.processor.views
    original = views.perceive
    views.perceive = lambda post, with_images=False: seen.append(post.image) or original(post, with_images)
    with_photo = predictor.predict("Eileen Collins smiles", image=str(tmp_path / "astronaut.png"))
    assert seen == [str(tmp_path / "astronaut.png")] and with_photo.tokens[:2] == ("Eileen", "Collins")


def test_full_finetuning_trains_and_saves_every_generator_weight(llama_dir, tmp_path):
    config = load_run_config(
        "iea", sets=tiny_sets(llama_dir, "model_args.ablation=no_aligner", "model_args.finetune=full")
    )
    trainer.train(config, "twitter2015", "jmasa", tmp_path / "run", progress=False)
    out = tmp_path / "run"
    weights = load_file(str(out / ckpt.WEIGHTS_FILE))
    initial = load_file(str(next((out / "generator").glob("*.safetensors"))))
    assert not any("lora_" in k for k in weights)
    assert len(weights) == len({n for n, _ in ckpt.load_model(out)[0].generator.named_parameters()})
    trained = {k.removeprefix("generator.lm."): v for k, v in weights.items()}
    changed = [k for k in initial if k in trained and not torch.equal(initial[k], trained[k])]
    assert any("layers.0.mlp" in k for k in changed)  # the base weights moved, not an adapter
    model, _ = ckpt.load_model(out)
    restored = model.state_dict()
    assert set(restored) == set(weights) and all(torch.equal(restored[k], weights[k]) for k in weights)
    with pytest.raises(ConfigError, match="model_args.finetune: expected one of"):
        build_generator({"generator": f"hf:{llama_dir}", "random_init": True, "finetune": "half"})


def test_processor_never_reads_per_aspect_texts_and_uses_the_aligner(llama_dir):
    from mabsa.models.iea.interpretations import ImageViews
    from mabsa.models.iea.model import build_generator

    gen = build_generator({"generator": f"hf:{llama_dir}", "random_init": True})
    aligner = FakeAligner()
    proc = IEAProcessor(gen, "jmasa", ImageViews("stand-in"), aligner, "nmi")
    posts = [p for p in load_dataset("twitter2015", "test") if p.faces and p.aspect_face_description][:5]
    feats = proc.encode(posts)
    assert aligner.calls == 1  # one batched call for all regions of all posts
    for f, post in zip(feats, posts):
        text = f.instruction.text()
        assert post.aspect_face_description not in text and "<region 1:" in text
        assert f.post.aspect_face_description is None and f.post.aspects == ()
        assert f.target_text.startswith("(")
    no_align = IEAProcessor(gen, "jmasa", ImageViews("stand-in"), None, "no_aligner").encode(posts)
    assert [f.instruction.text() for f in no_align] != [f.instruction.text() for f in feats]
    random_regions = IEAProcessor(gen, "jmasa", ImageViews("stand-in"), aligner, "random_regions")
    assert [f.instruction.text() for f in random_regions.encode(posts)] != [f.instruction.text() for f in feats]


def test_a_long_prompt_gives_up_interpretations_before_any_word_of_the_post(llama_dir):
    from transformers import AutoTokenizer

    gen = CausalLMGenerator(torch.nn.Identity(), AutoTokenizer.from_pretrained(llama_dir))
    tokens = "RT @ user : Chuck Bass meets Blair Waldorf at the Met gala".split()
    long = " ".join(["a smiling young man in a dark suit"] * 3)
    units = (RegionUnit(1, f"First: {long}.", "positive"), RegionUnit(2, f"Second: {long}.", "neutral"))
    x = build_instruction(tokens, ImageView("a party", units), [(4, 6), (7, 9)])

    def length(instruction):
        return len(gen.encode(instruction, None, 10**4, 48)[0])

    bare = x.without_last_interpretation().without_last_interpretation()
    assert x.without_last_interpretation().text().count("Second:") == 0 and "First:" in x.text()
    assert bare.without_last_interpretation() is None and "<region 2>" in bare.text()
    # room for the first interpretation, not for both: the second (the last) goes
    budget = length(x.without_last_interpretation())
    fitted = gen.fit(x, budget)
    assert "First:" in fitted.text() and "Second:" not in fitted.text()
    prompt, _, truncated = gen.encode(fitted, None, budget, 48)
    assert not truncated and "Met gala" in gen.tokenizer.decode(prompt)
    # room for the post alone: every interpretation goes, every word of the post stays
    assert gen.fit(x, length(bare)) == bare and not gen.encode(bare, None, length(bare), 48)[2]
    # not even the post fits: only then is its end cut, and said so
    tight = gen.fit(x, length(bare) - 3)
    assert tight == bare and gen.encode(tight, None, length(bare) - 3, 48)[2]
    assert gen.fit(x, 10**4) == x  # a prompt that fits is left as it is


def test_masc_asks_once_per_given_aspect_without_per_aspect_texts(llama_dir):
    from mabsa.models.iea.interpretations import ImageViews
    from mabsa.models.iea.model import build_generator

    gen = build_generator({"generator": f"hf:{llama_dir}", "random_init": True})
    aligner = FakeAligner()
    proc = IEAProcessor(gen, "masc", ImageViews("stand-in"), aligner, "nmi")
    posts = [p for p in load_dataset("twitter2015", "test") if p.aspect_face_description and len(p.aspects) > 1][:3]
    feats = proc.encode(posts)
    assert aligner.calls == 1  # regions aligned once per post, not once per aspect
    expected = [(i, j) for i, p in enumerate(posts) for j in range(len(p.aspects))]
    assert [(f.post_index, f.aspect_index) for f in feats] == expected
    for f in feats:
        given = posts[f.post_index].aspects[f.aspect_index]
        text = f.instruction.text()
        assert f'toward "{given.term}"' in text.splitlines()[0]
        assert f.target_text == {"POS": "positive", "NEU": "neutral", "NEG": "negative"}[given.polarity.value]
        assert posts[f.post_index].aspect_face_description not in text
        assert f.post.aspect_face_description is None
        assert all(a.rationale is None and a.polarity is None for a in f.post.aspects)
    assert proc.labels == ("positive", "neutral", "negative")


def test_masc_trains_and_fills_in_every_given_aspect(llama_dir, tmp_path):
    from mabsa.api import load
    from mabsa.engine.inference import predict_posts

    config = load_run_config(
        "iea", sets=tiny_sets(llama_dir, "model_args.ablation=no_aligner", "model_args.max_new_tokens=3")
    )
    metrics = trainer.train(config, "twitter2015", "masc", tmp_path / "run", progress=False)
    assert metrics["test"]["masc"]["n"] > 0 and 0 <= metrics["test"]["masc"]["accuracy"] <= 1
    model, _ = ckpt.load_model(tmp_path / "run")
    posts = load_dataset("twitter2015", "test")[:4]
    # Whatever the tiny model writes, each given aspect keeps its span and gets a readable
    # polarity or none (an unparseable answer is counted, never guessed).
    answers = ["positive", "Neg.", "no idea", " neutral"] * 9
    model.generate_texts = lambda batch: (answers[: len(batch["features"])], [0.5] * len(batch["features"]))
    before = model.generation_log["unparseable"]
    pred = predict_posts(model, posts).posts
    flat = [(i, a) for i, p in enumerate(pred) for a in p.aspects]
    assert [(a.start, a.end) for _, a in flat] == [(a.start, a.end) for p in posts for a in p.aspects]
    assert {a.polarity for _, a in flat} <= {Polarity.POS, Polarity.NEG, Polarity.NEU, None}
    assert model.generation_log["unparseable"] - before == sum(1 for _, a in flat if a.polarity is None) > 0
    p = load(tmp_path / "run").predict("RT @ user : Chuck Bass is everything # MCM", aspects=["Chuck Bass"])
    assert [(a.start, a.end, a.term) for a in p.aspects] == [(4, 6, "Chuck Bass")]


def test_nmi_without_an_aligner_is_a_clear_error(llama_dir, tmp_path):
    config = load_run_config("iea", sets=tiny_sets(llama_dir))
    with pytest.raises(MabsaError, match="needs an aligner"):
        trainer.train(config, "twitter2015", "jmasa", tmp_path / "x", progress=False)


def test_tiny_qwen2_vl_lora_step_generate_and_adapter_round_trip(tmp_path):
    from peft import PeftModel

    torch.manual_seed(0)
    model, processor = tiny_qwen2_vl()
    lora = {**DEFAULT_LORA, "r": 4, "dropout": 0.0}
    from mabsa.models.iea.model import VLM_TARGET

    gen = VisionLanguageGenerator(lora_wrap(model, lora, VLM_TARGET), processor)
    assert all("language_model" in n for n, p in gen.named_parameters() if p.requires_grad)
    whole = Image.new("RGB", (64, 48), "blue")
    crop = Image.new("RGB", (32, 32), "red")
    view = ImageView("a man", (RegionUnit(1, "A man.", "positive", (0, 0, 32, 32), crop),), whole)
    tokens = "Chuck Bass is everything".split()
    x = build_instruction(tokens, view, [(0, 2)])
    prompt, target, _ = gen.encode(x, "(Chuck Bass, positive)", 256, 48)
    feats = [IEAFeature(prompt + target, prompt, target, 0, 4, x, "(Chuck Bass, positive)")]
    batch = gen.collate(feats)
    assert batch["gen"]["pixel_values"].shape[0] > 0 and batch["gen"]["image_grid_thw"].shape[0] == 2
    n_target = int((batch["labels"] != -100).sum())
    assert n_target == len(processor.tokenizer("(Chuck Bass, positive)")["input_ids"]) + 1
    opt = torch.optim.AdamW([p for p in gen.parameters() if p.requires_grad], lr=0.01)
    first = gen.loss(batch)
    first.backward()
    opt.step()  # one optimisation step
    opt.zero_grad()
    with torch.no_grad():
        assert float(gen.loss(batch)) < float(first)
    texts, _ = gen.generate(batch, 4)
    gen.lm.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    base, _ = tiny_qwen2_vl()
    base.load_state_dict(
        {
            k.replace(".base_layer.", "."): v
            for k, v in gen.lm.get_base_model().state_dict().items()
            if ".lora_" not in k
        }
    )
    reloaded = VisionLanguageGenerator(PeftModel.from_pretrained(base, tmp_path / "adapter"), processor)
    assert reloaded.generate(batch, 4)[0] == texts


@pytest.fixture(scope="module")
def tiny_aligner(tmp_path_factory):
    """A random-init text-crf aligner trained 1 epoch on a small FGCA by the engine."""
    from mabsa.models.iea.fgca import make_fgca, write_fgca

    root = tmp_path_factory.mktemp("fgca")
    write_fgca(make_fgca(sizes={"train": 24, "dev": 12, "test": 12}, seed=2), root / "data")
    from click.testing import CliRunner

    from mabsa.cli.iea import iea

    out = CliRunner().invoke(
        iea,
        [
            "train-aligner",
            "--fgca",
            str(root / "data"),
            "--output",
            str(root / "aligner"),
            "--set",
            "model_args.random_init=true",
            "--set",
            'model_args.encoder_overrides={"hidden_size": 32, "num_hidden_layers": 2, '
            '"num_attention_heads": 2, "intermediate_size": 37}',
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=8",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output[out.output.index("{") :])["test"]["n"] == 12
    return root


def test_aligner_picks_the_best_span_and_memoises(tiny_aligner):
    from mabsa.engine.inference import predict_posts
    from mabsa.models.iea.aligner import Aligner, evaluate_aligner
    from mabsa.models.iea.fgca import aligner_query, read_fgca

    al = Aligner.from_checkpoint(tiny_aligner / "aligner")
    samples = read_fgca(tiny_aligner / "data", "test")
    spans = al.align([(s.tokens, s.interpretation) for s in samples])
    posts = [Post(id=str(i), tokens=s.tokens, caption=aligner_query(s.interpretation)) for i, s in enumerate(samples)]
    for pred, span in zip(predict_posts(al.model, posts).posts, spans):
        best = max(pred.aspects, key=lambda a: a.score, default=None)
        assert span == (best.span if best else None)
    n = len(al._memo)
    assert al.align([(samples[0].tokens, samples[0].interpretation)]) == spans[:1] and len(al._memo) == n
    acc = evaluate_aligner(al, samples)
    assert acc["n"] == 12 and 0 <= acc["span_accuracy"] <= 1


def test_nmi_run_copies_the_aligner_into_the_checkpoint(llama_dir, tiny_aligner, tmp_path):
    config = load_run_config(
        "iea", sets=tiny_sets(llama_dir, f"model_args.aligner={tiny_aligner / 'aligner'}", "train.max_train_posts=8")
    )
    trainer.train(config, "twitter2015", "jmasa", tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "aligner" / "model.safetensors").is_file()
    model, _ = ckpt.load_model(tmp_path / "run")
    assert model.processor.aligner is not None and model.processor.ablation == "nmi"


def test_explain_cli_prints_the_instruction(tiny_aligner):
    from click.testing import CliRunner

    from mabsa.cli.iea import iea

    post = next(p for p in load_dataset("twitter2015", "test") if p.faces)
    out = CliRunner().invoke(
        iea, ["explain", "--dataset", "twitter2015", "--post", post.id, "--aligner", str(tiny_aligner / "aligner")]
    )
    assert out.exit_code == 0, out.output
    assert "Post: " in out.output and "<region 1:" in out.output and "region 1 box=" in out.output
    text = CliRunner().invoke(iea, ["explain", "--text", "Chuck Bass is everything", "--caption", "a man in a suit"])
    assert "Image: a man in a suit" in text.output and "Post: Chuck Bass is everything" in text.output


@pytest.mark.parametrize("constrained", [True, False])
def test_constrained_decoding_makes_invalid_answers_impossible(llama_dir, constrained):
    """A random-init generator writes junk; constrained, every answer parses and names only
    spans of its post (the free run shows the junk is there to be prevented)."""
    from mabsa.engine.inference import predict_posts
    from mabsa.models import get_model_class

    torch.manual_seed(0)
    args = {
        "generator": f"hf:{llama_dir}",
        "random_init": True,
        "ablation": "no_aligner",
        "max_new_tokens": 16,
        "constrained": constrained,
    }
    model = get_model_class("iea").create(args, "jmasa").eval()
    posts = load_dataset("twitter2015", "dev")[:8]
    pred = predict_posts(model, posts).posts
    log = model.generation_log
    if constrained:
        assert log["posts"] == 8 and log["unparseable"] == 0 and log["unmatched_terms"] == 0
        assert log["cut_by_budget"] < 8  # answers still open after 16 tokens: counted apart
    else:
        assert log["unparseable"] + log["unmatched_terms"] > 0
    for post, p in zip(posts, pred):
        assert all(a.term == " ".join(post.tokens[a.start : a.end]) for a in p.aspects)
