"""IEA (Interpretation-based Explicit Alignment): a LoRA-tuned generative model reading the
Nearest-to-Match Instruction and writing ``(aspect, polarity)`` pairs.

Two generators behind one model (``model_args.generator``):

* ``"smollm2"`` (CPU path, default), ``"gemma3-270m"`` (embedded, ``mabsa models install
  gemma3-270m``) or ``"hf:<id or dir>"``: a causal LM reads the instruction as text (regions as
  ``<region k: interpretation>`` after their aligned phrase);
* ``"vlm:<id or dir>"`` (the paper's path, GPU): a Qwen-VL-class ``AutoModelForImageTextToText``
  reads the whole image, and each region's crop right after its phrase, with its interpretation.

Both are trained with the engine's loop on the NLL of the target sequence. ``finetune`` says
which weights: ``"lora"`` (default) wraps the generator with LoRA (peft), so only the adapter is
trainable and only the adapter is in ``model.safetensors``; ``"full"`` trains, and saves, every
weight of the generator (a small causal LM on a CPU: SmolLM2-135M is 540 MB in float32).
Decoding is greedy, batched, and parsed back to token spans by :mod:`mabsa.models.iea.parser`
(unparseable outputs count as no prediction and are logged).

``model_args``: ``generator``, ``aligner`` (an aligner checkpoint dir; copied into the IEA
checkpoint), ``ablation`` (``nmi`` | ``no_aligner`` | ``no_interpretation`` |
``random_regions`` | ``text_only``), ``regions`` (``auto`` | ``stand-in`` | ``perceive``),
``segmenter``, ``interpreter``, ``finetune``, ``lora`` ({r, alpha, dropout, target_modules}), ``max_length``
(prompt tokens), ``max_target_length``, ``max_new_tokens``, ``max_interpretation_words``,
``random_init`` (tests: base weights from the config, saved in the checkpoint).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mabsa.data.records import Aspect, Post
from mabsa.embedded import embedded_path
from mabsa.errors import ConfigError, MabsaError
from mabsa.models.base import MabsaModel, register
from mabsa.models.config import ModelConfig
from mabsa.models.iea.aligner import Aligner
from mabsa.models.iea.config import IEAConfig
from mabsa.models.iea.constrained import AnswerGrammar, ConstrainedDecoding
from mabsa.models.iea.instructions import (
    TASK_PROMPT,
    TASK_PROMPT_MASC,
    TASK_PROMPT_MATE,
    Instruction,
    build_instruction,
)
from mabsa.models.iea.interpretations import (
    ImageView,
    ImageViews,
    shuffled_views,
)
from mabsa.models.iea.parser import (
    POLARITY_NAMES,
    format_target,
    parse_generation,
    parse_polarity,
)
from mabsa.modules.outputs import ModelOutput
from mabsa.perception.llm import load_smollm2
from mabsa.processing.errors import InputError

log = logging.getLogger("mabsa.models.iea")

ABLATIONS = ("nmi", "no_aligner", "no_interpretation", "random_regions", "text_only")
PROCESSOR_FILE = "iea_processor.json"
GENERATOR_DIR = "generator"  # base weights of a random-init generator (tests)
ALIGNER_DIR = "aligner"
ANSWER = "\nAnswer:"
#: LoRA on the language model only (the paper tunes the LLM of the VLM).
VLM_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


class GeneratorError(MabsaError):
    pass


# -- generators ----------------------------------------------------------------------------------
def lora_wrap(model: nn.Module, lora: Mapping[str, Any], target_modules: Any) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=int(lora.get("r", 8)),
        lora_alpha=int(lora.get("alpha", 16)),
        lora_dropout=float(lora.get("dropout", 0.05)),
        target_modules=target_modules,
        bias="none",
    )
    return get_peft_model(model, cfg)


def base_state_save(peft_model: Any, directory: Path) -> None:
    """Save the base model without its LoRA layers (as ``from_pretrained`` expects)."""
    if not hasattr(peft_model, "get_base_model"):  # fully fine-tuned: no adapter
        peft_model.save_pretrained(str(directory))
        return
    base = peft_model.get_base_model()
    state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if ".lora_" not in k}
    base.save_pretrained(str(directory), state_dict=state)


def _new_token_texts(tokenizer: Any, out: Any, prompt_len: int) -> tuple[list[str], list[float]]:
    """Decoded new tokens (up to EOS) and the mean token probability of each row."""
    seqs = out.sequences[:, prompt_len:]
    scores = torch.stack(out.scores, 1).log_softmax(-1) if out.scores else None
    eos = tokenizer.eos_token_id
    texts, probs = [], []
    for i, row in enumerate(seqs.tolist()):
        n = row.index(eos) if eos in row else len(row)
        texts.append(tokenizer.decode(row[:n], skip_special_tokens=True).split("\n")[0].strip())
        if scores is not None and n:
            lp = scores[i, torch.arange(n), torch.tensor(row[:n])].mean()
            probs.append(float(lp.exp()))
        else:
            probs.append(1.0)
    return texts, probs


class CausalLMGenerator(nn.Module):
    """Text-only generator: ``instruction text + "\\nAnswer:"`` -> `` (term, polarity); ...``."""

    takes_images = False

    def __init__(self, lm: Any, tokenizer: Any):
        super().__init__()
        self.lm, self.tokenizer = lm, tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # a model whose tokenizer starts every text with BOS (Gemma) was trained with it and
        # degrades without it; SmolLM2's adds none, so its prompts are unchanged
        adds_bos = tokenizer.bos_token_id is not None and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
        self.bos = [tokenizer.bos_token_id] if adds_bos else []
        self.answer = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]  # every prompt's end

    def _room(self, max_length: int) -> int:
        """Subwords of ``max_length`` left for the instruction's text."""
        return max(1, max_length - len(self.answer) - len(self.bos))

    def fit(self, instruction: Instruction, max_length: int) -> Instruction:
        """``instruction`` less region interpretations (the last first) until its prompt fits
        ``max_length``: the terms to extract are in the post, so it is cut only after them."""
        room = self._room(max_length)
        while len(self.tokenizer(instruction.text(), add_special_tokens=False)["input_ids"]) > room:
            shorter = instruction.without_last_interpretation()
            if shorter is None:
                break
            instruction = shorter
        return instruction

    def encode(
        self, instruction: Instruction, target: str | None, max_length: int, max_target_length: int
    ) -> tuple[list[int], list[int] | None, bool]:
        """Prompt and target subwords, and whether the prompt was cut (:meth:`fit` first)."""
        tok = self.tokenizer
        room = self._room(max_length)
        body = tok(instruction.text(), add_special_tokens=False)["input_ids"]
        truncated = len(body) > room
        prompt = self.bos + body[:room] + self.answer
        tgt = None
        if target is not None:
            tgt = tok(" " + target, add_special_tokens=False)["input_ids"][:max_target_length]
            tgt = tgt + [tok.eos_token_id]
        return prompt, tgt, truncated

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        pad = self.tokenizer.pad_token_id
        B = len(features)
        P = max(len(f.prompt_ids) for f in features)
        gen_ids = torch.full((B, P), pad, dtype=torch.long)
        gen_mask = torch.zeros((B, P), dtype=torch.long)
        for i, f in enumerate(features):  # left padding for generation
            n = len(f.prompt_ids)
            gen_ids[i, P - n :] = torch.tensor(f.prompt_ids)
            gen_mask[i, P - n :] = 1
        batch: dict[str, Any] = {"gen_input_ids": gen_ids, "gen_attention_mask": gen_mask}
        if all(f.target_ids is not None for f in features):
            T = max(len(f.prompt_ids) + len(f.target_ids) for f in features)
            ids = torch.full((B, T), pad, dtype=torch.long)
            mask = torch.zeros((B, T), dtype=torch.long)
            labels = torch.full((B, T), -100, dtype=torch.long)
            for i, f in enumerate(features):
                seq = f.prompt_ids + f.target_ids
                ids[i, : len(seq)] = torch.tensor(seq)
                mask[i, : len(seq)] = 1
                labels[i, len(f.prompt_ids) : len(seq)] = torch.tensor(f.target_ids)
            batch.update(input_ids=ids, attention_mask=mask, labels=labels)
        return batch

    def loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Mean NLL of the target subwords. Logits only from the first target's predecessor on:
        the LM head (a fifth of SmolLM2's weights) over the prompt is most of its cost and none
        of the loss."""
        labels = batch["labels"]
        first_target = int((labels != -100).int().argmax(1).min())
        keep = labels.shape[1] - first_target + 1
        logits = self.lm(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
        ).logits
        # the logits at position t predict token t + 1
        return nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels[:, first_target:].flatten(), ignore_index=-100
        )

    @torch.no_grad()
    def generate(
        self, batch: Mapping[str, Any], max_new_tokens: int, grammars: Sequence[AnswerGrammar] | None = None
    ) -> tuple[list[str], list[float]]:
        ids = batch["gen_input_ids"]
        out = self.lm.generate(
            input_ids=ids,
            attention_mask=batch["gen_attention_mask"],
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
            prefix_allowed_tokens_fn=ConstrainedDecoding(grammars, self.tokenizer, ids.shape[1]) if grammars else None,
        )
        return _new_token_texts(self.tokenizer, out, ids.shape[1])

    def save_base(self, directory: Path) -> None:
        base_state_save(self.lm, directory)
        self.tokenizer.save_pretrained(str(directory))


class VisionLanguageGenerator(nn.Module):
    """Qwen-VL-class generator: chat template with image parts (whole image first, each
    region's crop after its phrase); the processor expands the image tokens."""

    takes_images = True

    def __init__(self, vlm: Any, processor: Any):
        super().__init__()
        self.lm, self.processor = vlm, processor
        self.tokenizer = processor.tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _prompt_text(self, instruction: Instruction) -> str:
        messages = [{"role": "user", "content": instruction.content_parts()}]
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def fit(self, instruction: Instruction, max_length: int) -> Instruction:
        return instruction  # image tokens cannot be cut; max_length is not applied

    def encode(
        self, instruction: Instruction, target: str | None, max_length: int, max_target_length: int
    ) -> tuple[list[int], list[int] | None, bool]:
        prompt = self.tokenizer(self._prompt_text(instruction), add_special_tokens=False)["input_ids"]
        tgt = None
        if target is not None:
            tgt = self.tokenizer(target, add_special_tokens=False)["input_ids"][:max_target_length]
            tgt = tgt + [self.tokenizer.eos_token_id]
        return prompt, tgt, False  # image tokens cannot be cut; max_length is not applied

    def _inputs(self, texts: list[str], images: list[list[Any]], side: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True, "padding_side": side}
        if any(images):
            kwargs["images"] = [im for im in images]
        return dict(self.processor(**kwargs))

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        prompts = [self._prompt_text(f.instruction) for f in features]
        images = [f.instruction.images() for f in features]
        batch: dict[str, Any] = {"gen": self._inputs(prompts, images, "left")}
        if all(f.target_text is not None for f in features):
            eos = self.tokenizer.eos_token or ""
            full = [p + t + eos for p, t in zip(prompts, (f.target_text for f in features))]
            enc = self._inputs(full, images, "right")
            labels = enc["input_ids"].clone()
            labels[enc["attention_mask"] == 0] = -100
            for i, _feature in enumerate(features):  # mask the prompt: its length with images expanded
                n_prompt = int(self._inputs([prompts[i]], [images[i]], "right")["input_ids"].shape[1])
                labels[i, :n_prompt] = -100
            batch["train"] = enc
            batch["labels"] = labels
        return batch

    def loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.lm(**batch["train"], labels=batch["labels"]).loss

    @torch.no_grad()
    def generate(
        self, batch: Mapping[str, Any], max_new_tokens: int, grammars: Sequence[AnswerGrammar] | None = None
    ) -> tuple[list[str], list[float]]:
        inputs = batch["gen"]
        width = inputs["input_ids"].shape[1]
        out = self.lm.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
            prefix_allowed_tokens_fn=ConstrainedDecoding(grammars, self.tokenizer, width) if grammars else None,
        )
        return _new_token_texts(self.tokenizer, out, width)

    def save_base(self, directory: Path) -> None:
        base_state_save(self.lm, directory)
        self.processor.save_pretrained(str(directory))


#: Embedded generators that are plain checkpoints (``embedded_path(name).parent``).
EMBEDDED_GENERATORS = ("gemma3-270m",)
#: which generator weights train: a LoRA adapter, or all of them
FINETUNE = ("lora", "full")


def build_generator(args: IEAConfig | Mapping[str, Any], base_dir: str | Path | None = None) -> nn.Module:
    """The LoRA-wrapped generator of ``config.generator``; ``base_dir`` overrides where the base
    weights come from (a random-init generator saved in a checkpoint)."""
    config = IEAConfig.of(args)
    spec = config.generator.strip()
    spec = "smollm2" if spec == "smollm2-135m-instruct" else spec  # one name from here on (restore too)
    lora = config.lora
    if config.finetune not in FINETUNE:
        raise ConfigError(f"model_args.finetune: expected one of {FINETUNE}, got {config.finetune!r}")

    def trainable(model: nn.Module, target_modules: Any) -> nn.Module:
        return lora_wrap(model, lora, target_modules) if config.finetune == "lora" else model

    random_init = config.random_init and base_dir is None
    if spec == "smollm2" and base_dir is None:
        chat = load_smollm2()
        return CausalLMGenerator(trainable(chat.model, lora["target_modules"]), chat.tokenizer)
    kind, _, source = spec.partition(":")
    if spec in EMBEDDED_GENERATORS:  # an embedded plain checkpoint: loaded like any HF directory
        kind, source = "hf", str(embedded_path(spec).parent)
    if kind not in ("hf", "vlm", "smollm2") or (kind != "smollm2" and not source):
        raise GeneratorError(
            f"generator {spec!r}: use 'smollm2', 'gemma3-270m', 'hf:<id or dir>' or "
            "'vlm:<id or dir>' (a Qwen-VL-class image-text-to-text model)"
        )
    source = str(base_dir) if base_dir is not None else source
    from transformers import AutoConfig

    try:
        if kind == "vlm":
            from transformers import AutoModelForImageTextToText, AutoProcessor

            processor = AutoProcessor.from_pretrained(source)
            model = (
                AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(source))
                if random_init
                else AutoModelForImageTextToText.from_pretrained(source)
            )
            target = lora.get("target_modules_vlm", VLM_TARGET)
            return VisionLanguageGenerator(trainable(model, target), processor)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        model = (
            AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
            if random_init
            else AutoModelForCausalLM.from_pretrained(source)
        )
    except (OSError, ValueError) as e:
        raise GeneratorError(f"generator {spec!r}: cannot load {source!r} offline: {e}") from None
    return CausalLMGenerator(trainable(model, lora["target_modules"]), tokenizer)


# -- processor -----------------------------------------------------------------------------------
@dataclass
class IEAFeature:
    input_ids: list[int]  # prompt + target (its length orders batches)
    prompt_ids: list[int]
    target_ids: list[int] | None
    post_index: int
    n_words: int
    instruction: Instruction
    target_text: str | None = None
    post: Post | None = None
    aspect_index: int | None = None
    truncated: bool = False

    @property
    def labels(self) -> list[int] | None:
        return self.target_ids


class IEAProcessor:
    """Posts -> Nearest-to-Match Instructions -> generator inputs (duck-types the engine's
    :class:`~mabsa.processing.processor.Processor`: ``encode``, ``collate``, ``task``, ``labels``)."""

    image_text: tuple[str, ...] = ()  # images are perceived here (regions), not by the Predictor
    reads_image_texts = False  # so the Predictor passes the image path on instead of captioning it

    def __init__(
        self,
        generator: Any,
        task: str,
        views: ImageViews,
        aligner: Any = None,
        ablation: str = "nmi",
        max_length: int = IEAConfig.max_length,
        max_target_length: int = IEAConfig.max_target_length,
        max_interpretation_words: int = IEAConfig.max_interpretation_words,
        seed: int = IEAConfig.seed,
    ):
        if ablation not in ABLATIONS:
            raise MabsaError(f"ablation={ablation!r}: use one of {', '.join(ABLATIONS)}")
        self.generator, self.task, self.views, self.aligner = generator, task, views, aligner
        self.ablation, self.max_length, self.max_target_length = ablation, int(max_length), int(max_target_length)
        self.max_interpretation_words, self.seed = int(max_interpretation_words), int(seed)
        self.scheme = None

    @property
    def labels(self) -> tuple[str, ...]:
        return ("aspect",) if self.task == "mate" else tuple(POLARITY_NAMES.values())

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "ablation": self.ablation,
            "max_length": self.max_length,
            "max_target_length": self.max_target_length,
            "max_interpretation_words": self.max_interpretation_words,
            "seed": self.seed,
            "views": self.views.to_dict(),
        }

    def save_pretrained(self, directory: str | Path) -> None:
        (Path(directory) / PROCESSOR_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def _short(self, view: ImageView) -> ImageView:
        n = self.max_interpretation_words
        units = tuple(replace(u, content=" ".join(u.content.split()[:n])) for u in view.regions)
        desc = " ".join(view.description.split()[:n]) if view.description else view.description
        return replace(view, regions=units, description=desc)

    def views_for(self, posts: Sequence[Post]) -> list[ImageView]:
        with_images = bool(getattr(self.generator, "takes_images", False))
        views = [self._short(self.views(p, with_images)) for p in posts]
        if self.ablation == "random_regions":
            views = shuffled_views(views, self.seed)
        return views

    def alignments(self, posts: Sequence[Post], views: Sequence[ImageView]) -> list[list[Any]]:
        if self.aligner is None or self.ablation in ("no_aligner", "text_only"):
            return [[None] * len(v.regions) for v in views]
        pairs = [(p.tokens, u.interpretation) for p, v in zip(posts, views) for u in v.regions]
        flat = iter(self.aligner.align(pairs))
        return [[next(flat) for _ in v.regions] for v in views]

    def visible(self, post: Post) -> Post:
        """What the generator may read of ``post`` (leakage rule: never a per-aspect text). An
        extractor sees no aspects; MASC keeps the given aspects' spans and terms, not their
        polarity."""
        if self.task != "masc":
            return post.extraction_input()
        given = (replace(a, rationale=None, polarity=None, score=None) for a in post.aspects)
        return replace(post.with_aspects(given), aspect_face_description=None)

    @property
    def _mode(self) -> str:
        return "nmi" if self.ablation == "random_regions" else self.ablation

    def _prompt(self, post: Post, aspect: int | None) -> str:
        """The task line: extraction, or (MASC) the polarity of the given aspect ``aspect``."""
        if self.task == "masc":
            assert aspect is not None  # masc features are one per given aspect
            return TASK_PROMPT_MASC.format(term=post.aspects[aspect].term)
        return TASK_PROMPT if self.task == "jmasa" else TASK_PROMPT_MATE

    def encode(self, posts: Sequence[Post], with_labels: bool = True) -> list[IEAFeature]:
        for i, post in enumerate(posts):
            if not post.tokens:
                raise InputError(f"post {post.id!r} (#{i}) has no tokens: empty text")
        visible = [self.visible(p) for p in posts]
        views = self.views_for(visible)
        spans = self.alignments(visible, views)
        features = []
        for i, (post, seen, view, span) in enumerate(zip(posts, visible, views, spans)):
            # extraction: one instruction per post; MASC: one per given aspect
            for j in range(len(post.aspects)) if self.task == "masc" else [None]:
                instruction = self.generator.fit(
                    build_instruction(seen.tokens, view, span, self._mode, self._prompt(seen, j)), self.max_length
                )
                target = None
                if with_labels:
                    target = (
                        POLARITY_NAMES[post.aspects[j].polarity]  # type: ignore[index]  # labelled: gold polarity
                        if j is not None
                        else format_target(post.aspects, self.task == "jmasa")
                    )
                prompt, tgt, truncated = self.generator.encode(
                    instruction, target, self.max_length, self.max_target_length
                )
                features.append(
                    IEAFeature(
                        prompt + (tgt or []), prompt, tgt, i, len(post.tokens), instruction, target, seen, j, truncated
                    )
                )
        return features

    def collate(self, features: Sequence[IEAFeature]) -> dict[str, Any]:
        batch = self.generator.collate(features)
        batch["features"] = list(features)
        return batch


# -- the model -----------------------------------------------------------------------------------
@register("iea")
class IEA(MabsaModel):
    tasks = ("jmasa", "mate", "masc")
    config_class = IEAConfig

    def __init__(self, config: IEAConfig, task: str, processor: IEAProcessor, generator: nn.Module):
        super().__init__(config, task, processor, None)
        self.generator: Any = generator
        self.max_new_tokens = config.max_new_tokens
        self.constrained = config.constrained
        self.aligner_source = config.aligner
        self.generation_log = {"posts": 0, "unparseable": 0, "unmatched_terms": 0, "cut_by_budget": 0}

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def _build(cls, config: IEAConfig, task: str, generator: nn.Module, aligner: Any) -> IEA:
        ablation = config.ablation
        if ablation in ("nmi", "no_interpretation", "random_regions") and aligner is None:
            raise MabsaError(
                f"IEA ablation {ablation!r} needs an aligner: set model_args.aligner to an aligner "
                "checkpoint (see docs/methods/iea.md), or use ablation=no_aligner"
            )
        views = ImageViews(
            config.regions,
            config.segmenter,
            config.interpreter,
            config.perception_cache,
            config.max_regions,
            config.image_root,
        )
        processor = IEAProcessor(
            generator,
            task,
            views,
            aligner,
            ablation,
            config.max_length,
            config.max_target_length,
            config.max_interpretation_words,
            config.seed,
        )
        return cls(config, task, processor, generator)

    @classmethod
    def create(cls, args: Mapping[str, Any] | ModelConfig, task: str) -> IEA:
        cls.check_task(task)
        config = IEAConfig.of(args)
        aligner = None
        if config.aligner and config.ablation not in ("no_aligner", "text_only"):
            aligner = Aligner.from_checkpoint(config.aligner)
        return cls._build(config, task, build_generator(config), aligner)

    @classmethod
    def restore(cls, args: Mapping[str, Any] | ModelConfig, task: str, directory: str | Path) -> IEA:
        cls.check_task(task)
        config = IEAConfig.of(args)
        directory = Path(directory)
        base = directory / GENERATOR_DIR if (directory / GENERATOR_DIR / "config.json").is_file() else None
        aligner = (
            Aligner.from_checkpoint(directory / ALIGNER_DIR)
            if (directory / ALIGNER_DIR / "config.json").is_file()
            else None
        )
        return cls._build(config, task, build_generator(config, base), aligner)

    def save_components(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.processor.save_pretrained(directory)
        if self.config.random_init:
            self.generator.save_base(directory / GENERATOR_DIR)
        if self.processor.aligner is not None and self.aligner_source:
            self.processor.aligner.save(directory / ALIGNER_DIR, self.aligner_source)

    # -- weights: the trainable ones (the adapter, or the whole generator) -----------------------
    def trainable_keys(self) -> set[str]:
        return {n for n, p in self.named_parameters() if p.requires_grad}

    def state_dict(self, *args: Any, **kwargs: Any):
        full = super().state_dict(*args, **kwargs)
        keep = self.trainable_keys()
        prefix = kwargs.get("prefix", "")
        return OrderedDict((k, v) for k, v in full.items() if k[len(prefix) :] in keep)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        keep = self.trainable_keys()
        missing = sorted(keep - set(state_dict))
        unexpected = sorted(set(state_dict) - keep)
        super().load_state_dict({k: v for k, v in state_dict.items() if k in keep}, strict=False, assign=assign)
        if strict and (missing or unexpected):
            raise RuntimeError(f"trained weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return nn.modules.module._IncompatibleKeys(missing, unexpected)

    def parameter_groups(self, lr: float, head_lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
        """All trainable parameters (the LoRA adapter, or the whole generator) in one group at
        ``lr``: a generator is tuned at one rate."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "weight_decay": weight_decay}]

    # -- training / decoding -------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        return ModelOutput(loss=self.generator.loss(batch) if "labels" in batch else None)

    @torch.no_grad()
    def generate_texts(self, batch: Mapping[str, Any]) -> tuple[list[str], list[float]]:
        """Greedy answers; with ``constrained`` (the default) only answers the parser reads, over
        each post's own words (:mod:`mabsa.models.iea.constrained`)."""
        grammars = [AnswerGrammar(f.post.tokens, self.task) for f in batch["features"]] if self.constrained else None
        return self.generator.generate(batch, self.max_new_tokens, grammars)

    def prediction_counts(self) -> dict[str, int]:
        return dict(self.generation_log)

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        texts, probs = self.generate_texts(batch)
        if self.task == "masc":
            return [[self._given_aspect_polarity(f, t, p)] for f, t, p in zip(batch["features"], texts, probs)]
        out = []
        for feature, text, prob in zip(batch["features"], texts, probs):
            parsed = parse_generation(text, feature.post.tokens, self.task == "jmasa", score=min(1.0, max(0.0, prob)))
            self.generation_log["posts"] += 1
            self.generation_log["unmatched_terms"] += len(parsed.unmatched)
            if parsed.unparseable and self.constrained:
                # the start of a valid answer: max_new_tokens ran out before its first pair closed
                self.generation_log["cut_by_budget"] += 1
                log.info("IEA: post %s: answer cut by max_new_tokens before its first pair: %r", feature.post.id, text)
            elif parsed.unparseable:
                self.generation_log["unparseable"] += 1
                log.warning("IEA: unparseable generation for post %s (no prediction): %r", feature.post.id, text[:200])
            elif parsed.unmatched:
                log.info("IEA: post %s: generated terms not in the post: %s", feature.post.id, list(parsed.unmatched))
            out.append(list(parsed.aspects))
        return out

    def _given_aspect_polarity(self, feature: IEAFeature, text: str, prob: float) -> Aspect:
        """MASC: the given aspect with the polarity word of the answer (none readable: no
        polarity, which scores as wrong)."""
        assert feature.post is not None and feature.aspect_index is not None  # masc features carry both
        given = feature.post.aspects[feature.aspect_index]
        polarity = parse_polarity(text)
        self.generation_log["posts"] += 1
        if polarity is None:
            self.generation_log["unparseable"] += 1
            log.warning(
                "IEA: unparseable polarity for post %s, aspect %r (no prediction): %r",
                feature.post.id,
                given.term,
                text[:200],
            )
        return replace(given, polarity=polarity, score=min(1.0, max(0.0, prob)))
