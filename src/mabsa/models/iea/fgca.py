"""FGCA: a synthetic Fine-Grained Cross-modal Alignment dataset for training IEA's aligner.

The paper builds FGCA "reversely" from a semantic-segmentation dataset (PASCAL-Context): the
regions and their classes are known, an LLM writes a text T' that mentions the classes, and the
span of each region's class phrase in T' is the label. Here the segmentation side is synthetic
too (no images on this machine): an "image" is a random set of 2-6 classes, each region gets the
interpretation IEA's interpreter would write for it (the embedded label interpreter's wording,
or the face template for people, plus a sentiment rating), and T' is written from templates (or
by any chat backend, ``llm=``). Some regions are left out of T' so the aligner learns "none".

One sample = (region interpretation, text, span of the region's phrase in the text or none).
Each split is drawn from its own seeded random stream: the same ``seed`` gives the same files.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mabsa.data.formats import tokenize

log = logging.getLogger(__name__)

#: The 59 PASCAL-Context classes (Mottaghi et al., 2014) used by the paper's FGCA.
PASCAL_CONTEXT_59 = (
    "aeroplane",
    "bag",
    "bed",
    "bedclothes",
    "bench",
    "bicycle",
    "bird",
    "boat",
    "book",
    "bottle",
    "building",
    "bus",
    "cabinet",
    "car",
    "cat",
    "ceiling",
    "chair",
    "cloth",
    "computer",
    "cow",
    "cup",
    "curtain",
    "dog",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "horse",
    "keyboard",
    "light",
    "motorbike",
    "mountain",
    "mouse",
    "person",
    "plate",
    "platform",
    "pottedplant",
    "road",
    "rock",
    "sheep",
    "shelves",
    "sidewalk",
    "sign",
    "sky",
    "snow",
    "sofa",
    "table",
    "track",
    "train",
    "tree",
    "truck",
    "tvmonitor",
    "wall",
    "water",
    "window",
    "wood",
)

#: How a text may name a class (first = the class's plain name); the interpretation uses a
#: different surface form when there is one, so the aligner must match meaning, not strings.
SURFACE = {
    "aeroplane": ["plane", "airplane", "jet", "aircraft"],
    "bag": ["bag", "handbag", "backpack"],
    "bed": ["bed"],
    "bedclothes": ["blanket", "sheets", "duvet"],
    "bench": ["bench"],
    "bicycle": ["bike", "bicycle"],
    "bird": ["bird", "pigeon", "seagull"],
    "boat": ["boat", "yacht", "ship"],
    "book": ["book", "novel"],
    "bottle": ["bottle", "beer bottle"],
    "building": ["building", "tower", "stadium"],
    "bus": ["bus", "school bus"],
    "cabinet": ["cabinet", "cupboard"],
    "car": ["car", "taxi", "sports car"],
    "cat": ["cat", "kitten"],
    "ceiling": ["ceiling", "roof"],
    "chair": ["chair", "armchair"],
    "cloth": ["shirt", "dress", "jersey", "jacket"],
    "computer": ["computer", "laptop"],
    "cow": ["cow", "cattle"],
    "cup": ["cup", "mug", "coffee"],
    "curtain": ["curtain", "curtains"],
    "dog": ["dog", "puppy", "pup"],
    "door": ["door", "gate"],
    "fence": ["fence"],
    "floor": ["floor", "dance floor"],
    "flower": ["flowers", "roses", "flower"],
    "food": ["food", "pizza", "burger", "cake", "BBQ"],
    "grass": ["grass", "lawn", "field"],
    "ground": ["ground", "dirt"],
    "horse": ["horse", "pony"],
    "keyboard": ["keyboard"],
    "light": ["lights", "lamp"],
    "motorbike": ["motorbike", "motorcycle"],
    "mountain": ["mountain", "mountains", "hills"],
    "mouse": ["mouse"],
    "person": ["person", "man", "woman", "guy", "girl", "kid"],
    "plate": ["plate", "dish"],
    "platform": ["platform", "stage"],
    "pottedplant": ["plant", "potted plant"],
    "road": ["road", "street", "highway"],
    "rock": ["rock", "rocks", "boulder"],
    "sheep": ["sheep", "lamb"],
    "shelves": ["shelves", "bookshelf"],
    "sidewalk": ["sidewalk", "pavement"],
    "sign": ["sign", "billboard", "poster"],
    "sky": ["sky", "sunset", "clouds"],
    "snow": ["snow"],
    "sofa": ["sofa", "couch"],
    "table": ["table", "desk"],
    "track": ["track", "railway"],
    "train": ["train", "subway"],
    "tree": ["tree", "trees", "palm tree"],
    "truck": ["truck", "lorry"],
    "tvmonitor": ["TV", "television", "screen"],
    "wall": ["wall", "mural"],
    "water": ["water", "lake", "sea", "river"],
    "window": ["window", "windows"],
    "wood": ["wood", "logs"],
}

FIRST_NAMES = (
    "Chuck",
    "Taylor",
    "Justin",
    "Kim",
    "LeBron",
    "Serena",
    "Harry",
    "Emma",
    "David",
    "Rihanna",
    "Barack",
    "Hillary",
    "Kobe",
    "Selena",
    "Niall",
    "Demi",
    "Ed",
    "Adele",
    "Kevin",
    "Maria",
    "Joe",
    "Jennifer",
    "Chris",
    "Beyonce",
    "Tom",
    "Ariana",
    "Louis",
)
LAST_NAMES = (
    "Bass",
    "Swift",
    "Bieber",
    "Kardashian",
    "James",
    "Williams",
    "Styles",
    "Stone",
    "Beckham",
    "Obama",
    "Clinton",
    "Bryant",
    "Gomez",
    "Horan",
    "Lovato",
    "Sheeran",
    "Durant",
    "Sharapova",
    "Biden",
    "Lawrence",
    "Evans",
    "Brady",
    "Grande",
    "Tomlinson",
)
ADJECTIVES = (
    "big",
    "small",
    "old",
    "new",
    "red",
    "white",
    "black",
    "blue",
    "green",
    "wooden",
    "bright",
    "dark",
    "tall",
    "tiny",
    "shiny",
)
MOODS = {"positive": ("happy", "surprise"), "neutral": ("neutral",), "negative": ("sad", "angry", "fear", "disgust")}
RACES = ("white", "black", "asian", "latino hispanic", "indian", "middle eastern")

#: Tweet-like templates; {0}, {1}, {2} are the phrases, in that order.
TEMPLATES = {
    1: (
        "RT @ user : {0} is everything # MCM",
        "Can't stop looking at this {0} !",
        "Look at the {0} today , so good",
        "Best {0} I have ever seen # blessed",
        "{0} ruined my whole day . Not happy .",
        "Nothing beats a {0} on a Sunday",
        "Why is there a {0} here ? lol",
        "Throwback to that {0} last summer",
        "Photo of the day : {0}",
        "@ user check out this {0} http : / / t . co / x",
        "This {0} though . . . # mood",
        "Ugh , that {0} again",
        "New post : {0} on display",
        "So proud of {0} right now",
        "Goodnight from {0}",
    ),
    2: (
        "Spent the morning with {0} and the {1}",
        "{0} next to a {1} , what a sight",
        "RT @ user : {0} and {1} at the game tonight",
        "The {0} and the {1} look amazing today",
        "Never thought I'd see {0} near a {1} # wow",
        "{0} loves the {1} so much",
        "Just {0} , a {1} and me . Perfect .",
        "Is that {0} on the {1} ? haha",
        "@ user {0} by the {1} , classic",
        "Caught {0} sitting on the {1}",
    ),
    3: (
        "At the park with {0} , {1} and a {2} . All set !",
        "{0} , the {1} and the {2} # weekend",
        "RT @ user : {0} with a {1} in front of the {2}",
        "Me , {0} , some {1} and a {2} . Perfect day",
        "{0} just walked past the {1} and the {2} lol",
    ),
}

ALIGNER_INSTRUCTION = "Which phrase of the post shows this region?"
RATINGS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class FgcaSample:
    id: str
    image_id: str
    cls: str
    interpretation: str  # the region's interpretation (content + sentiment rating)
    tokens: tuple[str, ...]  # the synthetic text T'
    span: tuple[int, int] | None  # the region's phrase in tokens, end exclusive; None = none
    source: str  # "template" or the chat backend id

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens"] = list(self.tokens)
        d["span"] = list(self.span) if self.span else None
        return d


def rating_sentence(rating: str | None) -> str:
    return f"Sentiment: {rating}." if rating else "Sentiment: not rated."


def _person_interpretation(rng: random.Random, rating: str) -> str:
    mood = rng.choice(MOODS[rating])
    age = rng.randint(8, 70)
    race = rng.choice(RACES)
    gender = rng.choice(("man", "woman"))
    words = [f"{age}-year-old", race, gender]
    article = "An" if words[0][0] in "8" or words[0].split("-")[0] in ("11", "18") else "A"
    return f"{article} {' '.join(words)} with a {mood} expression. {rating_sentence(rating)}"


def _object_interpretation(rng: random.Random, cls: str, phrase: str, rating: str) -> str:
    forms = [f for f in SURFACE[cls] if f.lower() != phrase.lower()] or SURFACE[cls]
    names = rng.sample(forms, min(len(forms), rng.randint(1, 2)))
    names = [_a(f"{rng.choice(ADJECTIVES)} {n}" if rng.random() < 0.5 else n) for n in names]
    what = " or ".join(names)
    return f"This region shows {what}. {rating_sentence(rating)}"


def _a(noun: str) -> str:
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


def _phrase(rng: random.Random, cls: str) -> str:
    if cls == "person" and rng.random() < 0.7:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        form = rng.random()
        return f"{first} {last}" if form < 0.6 else (f"@ {first}{last}" if form < 0.8 else f"# {first}")
    return rng.choice(SURFACE[cls])


def _fill(template: str, phrases: Sequence[str]) -> tuple[list[str], list[tuple[int, int] | None]]:
    """Tokens of the template with phrases filled in, and each phrase's token span."""
    tokens: list[str] = []
    spans: list[tuple[int, int] | None] = [None] * len(phrases)
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}") and piece[1:-1].isdigit():
            k = int(piece[1:-1])
            words = tokenize(phrases[k])
            spans[k] = (len(tokens), len(tokens) + len(words))
            tokens.extend(words)
        else:
            tokens.extend(tokenize(piece))
    return tokens, spans


def _find(tokens: Sequence[str], phrase: str) -> tuple[int, int] | None:
    words = [w.lower() for w in tokenize(phrase)]
    low = [t.lower() for t in tokens]
    for i in range(len(low) - len(words) + 1):
        if words and low[i : i + len(words)] == words:
            return (i, i + len(words))
    return None


LLM_PROMPT = (
    "Write one short tweet (under 25 words) that mentions each of these exactly as "
    "written: {phrases}. Reply with the tweet only."
)


def make_image(rng: random.Random, classes: Sequence[str], index: int, split: str, llm: Any = None) -> list[FgcaSample]:
    """One synthetic image: its regions' interpretations, one text, one sample per region."""
    n_regions = rng.randint(2, 6)
    chosen = rng.sample(list(classes), min(n_regions, len(classes)))
    if "person" in classes and "person" not in chosen and rng.random() < 0.4:
        chosen[0] = "person"  # tweets are mostly about people
    n_mentioned = rng.randint(1, min(3, len(chosen)))
    mentioned = chosen[:n_mentioned]  # the rest of the regions have no phrase (label: none)
    phrases = [_phrase(rng, c) for c in mentioned]
    image_id = f"fgca-{split}-{index:05d}"
    source = "template"
    tokens: list[str] | None = None
    spans: list[tuple[int, int] | None] = []
    if llm is not None:
        reply = llm.chat(
            [{"role": "user", "content": LLM_PROMPT.format(phrases="; ".join(f'"{p}"' for p in phrases))}],
            max_tokens=60,
        )
        cand = tokenize(reply)
        found = [_find(cand, p) for p in phrases]
        if cand and all(found) and len({s for s in found}) == len(found):
            tokens, spans, source = cand, list(found), llm.id
        else:
            log.info("FGCA %s: LLM text %r misses a phrase; using a template", image_id, reply)
    if tokens is None:
        tokens, spans = _fill(rng.choice(TEMPLATES[len(phrases)]), phrases)
    samples = []
    for k, cls in enumerate(chosen):
        rating = rng.choice(RATINGS)
        phrase = phrases[k] if k < n_mentioned else rng.choice(SURFACE[cls])
        interp = (
            _person_interpretation(rng, rating) if cls == "person" else _object_interpretation(rng, cls, phrase, rating)
        )
        samples.append(
            FgcaSample(
                f"{image_id}-r{k}", image_id, cls, interp, tuple(tokens), spans[k] if k < n_mentioned else None, source
            )
        )
    order = list(range(len(samples)))
    rng.shuffle(order)
    return [samples[i] for i in order]


SPLIT_SIZES = {"train": 2000, "dev": 500, "test": 500}


def make_fgca(
    classes: Sequence[str] = PASCAL_CONTEXT_59, sizes: dict[str, int] | None = None, seed: int = 13, llm: Any = None
) -> dict[str, list[FgcaSample]]:
    """``{split: samples}`` with exactly ``sizes[split]`` samples each (2000/500/500)."""
    sizes = dict(SPLIT_SIZES if sizes is None else sizes)
    out = {}
    for offset, (split, n) in enumerate(sizes.items()):
        rng = random.Random(seed * 1000 + offset)
        samples: list[FgcaSample] = []
        index = 0
        while len(samples) < n:
            samples.extend(make_image(rng, classes, index, split, llm))
            index += 1
        out[split] = samples[:n]
    return out


def aligner_query(interpretation: str) -> str:
    """The aligner's second segment: the instruction, then the region's interpretation."""
    return f"{ALIGNER_INSTRUCTION} Region: {interpretation}"


def write_fgca(data: dict[str, list[FgcaSample]], directory: str | Path) -> Path:
    """Write FGCA as a mabsa dataset directory (so ``mabsa train --task mate`` reads it):

    * ``jmasa_json/{split}.json`` - one record per sample, the phrase as its only "aspect"
      (none: no aspect), image id = sample id;
    * ``captions.json`` - sample id -> the aligner query (instruction + region interpretation),
      which the text-crf aligner reads as its second segment (``image_text: ["caption"]``);
    * ``fgca/{split}.jsonl`` - the triples themselves, for people and other tools.
    """
    root = Path(directory)
    (root / "jmasa_json").mkdir(parents=True, exist_ok=True)
    (root / "fgca").mkdir(parents=True, exist_ok=True)
    captions = {}
    for split, samples in data.items():
        records = []
        for s in samples:
            image = f"{s.id}.jpg"
            captions[image] = aligner_query(s.interpretation)
            aspects = (
                []
                if s.span is None
                else [{"from": s.span[0], "to": s.span[1], "term": list(s.tokens[s.span[0] : s.span[1]])}]
            )
            records.append({"words": list(s.tokens), "image_id": image, "aspects": aspects})
        (root / "jmasa_json" / f"{split}.json").write_text(json.dumps(records, indent=0) + "\n")
        with (root / "fgca" / f"{split}.jsonl").open("w") as f:
            for s in samples:
                f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
    (root / "captions.json").write_text(json.dumps(captions, indent=0, ensure_ascii=False) + "\n")
    return root


def read_fgca(directory: str | Path, split: str) -> list[FgcaSample]:
    out = []
    with (Path(directory) / "fgca" / f"{split}.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            out.append(
                FgcaSample(
                    d["id"],
                    d["image_id"],
                    d["cls"],
                    d["interpretation"],
                    tuple(d["tokens"]),
                    tuple(d["span"]) if d["span"] else None,
                    d["source"],
                )
            )
    return out


def stats(samples: Sequence[FgcaSample]) -> dict[str, Any]:
    images = {s.image_id for s in samples}
    return {
        "samples": len(samples),
        "classes": len({s.cls for s in samples}),
        "images": len(images),
        "regions_per_image": round(len(samples) / max(1, len(images)), 2),
        "none": sum(s.span is None for s in samples),
    }
