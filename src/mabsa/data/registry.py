"""Dataset registry: names like ``twitter2015`` resolve to files; image-derived texts are joined.

Where the data lives: ``$MABSA_DATA`` if set, else the first ``shared/datasets`` found beside
the current directory or beside the source checkout (``../shared/datasets``). A registered
dataset is a directory in the layout of ``../shared/datasets/twitter2015``; any such directory
can also be named by path, and any single file in a supported format loads as-is.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from mabsa.data.formats import read_jmasa_json, read_posts
from mabsa.data.records import Face, Polarity, Post, Rationale
from mabsa.errors import DataFormatError, DatasetNotFoundError

SPLITS = ("train", "dev", "test")
DATASETS = {"twitter2015": "twitter2015", "twitter2017": "twitter2017", "t15": "twitter2015", "t17": "twitter2017"}
_RATIONALE_LABELS = {"-1": Polarity.NEG, "0": Polarity.NEU, "1": Polarity.POS}
RATIONALE_SOURCE = "miniGPT-4 (ArkMSA release)"


def data_root() -> Path:
    env = os.environ.get("MABSA_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(f"MABSA_DATA={env!r} is not a directory")
        return root
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / ".." / "shared" / "datasets", Path.cwd() / "shared" / "datasets"]
    candidates += [p / ".." / "shared" / "datasets" for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    raise DatasetNotFoundError(
        "cannot find the datasets: set MABSA_DATA to the folder that holds twitter2015/ and "
        "twitter2017/ (by default mabsa looks for ../shared/datasets)"
    )


def dataset_dir(name_or_path: str | Path) -> Path:
    """The directory of a registered dataset name, or a dataset directory given by path."""
    key = str(name_or_path)
    if key.lower() in DATASETS:
        path = data_root() / DATASETS[key.lower()]
        if not path.is_dir():
            raise DatasetNotFoundError(f"dataset {key!r}: {path} does not exist")
        return path
    path = Path(name_or_path)
    if path.is_dir() and (path / "jmasa_json").is_dir():
        return path
    raise DatasetNotFoundError(
        f"unknown dataset {key!r}: use one of {', '.join(sorted(set(DATASETS.values())))}, a "
        "directory in their layout, or a file in a supported format"
    )


def load_dataset(
    name_or_path: str | Path, split: str = "train", *, image_texts: bool = True, fmt: str | None = None
) -> list[Post]:
    """Posts of one split, with image-derived texts joined by image id.

    ``name_or_path`` is a registered name (``twitter2015``), a dataset directory, or a data
    file (then ``split`` is ignored). Missing image-derived texts are ``None``.
    """
    path = Path(name_or_path)
    if path.is_file():  # in ``fmt``, or the format its content shows
        return read_posts(path, fmt)
    root = dataset_dir(name_or_path)
    if split not in SPLITS:
        raise DatasetNotFoundError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    posts = read_jmasa_json(root / "jmasa_json" / f"{split}.json")
    return join_image_texts(posts, root, split) if image_texts else posts


# -- joining image-derived texts -------------------------------------------------------------
@lru_cache(maxsize=32)
def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataFormatError(path, e.lineno, f"invalid JSON: {e.msg}") from None


def face_from_deepface(d: dict[str, Any]) -> Face:
    """A DeepFace ``analyze`` record (the FITE release's face attributes) as a :class:`Face`."""
    region = d.get("region") or {}
    box = (int(region["x"]), int(region["y"]), int(region["w"]), int(region["h"])) if region else None
    gender = d.get("gender")
    if isinstance(gender, dict):  # newer DeepFace: {"Man": %, "Woman": %}
        scores = gender
        gender = d.get("dominant_gender") or max(scores, key=lambda k: scores[k])
    emotions = {k: float(v) / 100.0 for k, v in (d.get("emotion") or {}).items()}
    emotion = d.get("dominant_emotion")
    return Face(
        box=box,
        age=float(d["age"]) if d.get("age") is not None else None,
        gender={"man": "man", "woman": "woman"}.get(str(gender).lower()) if gender else None,
        race=d.get("dominant_race"),
        race_scores={k: float(v) / 100.0 for k, v in (d.get("race") or {}).items()},
        emotion=emotion,
        emotion_scores=emotions,
        confidence=emotions.get(emotion) if emotion else None,
    )


def _rationale_index(root: Path, split: str) -> dict[tuple[str, tuple[str, ...], int, int], Rationale]:
    entries = _json(root / "llm_rationales" / f"{split}.json") or []
    index = {}
    for e in entries:
        toks = e["text"].split()
        if "$T$" not in toks:
            continue
        i = toks.index("$T$")
        target = e["target"].split()
        tokens = tuple(toks[:i] + target + toks[i + 1 :])
        index[(str(e["ImageID"]), tokens, i, i + len(target))] = Rationale(
            description=e.get("description"), reason=e.get("reason"), source=RATIONALE_SOURCE
        )
    return index


def join_image_texts(posts: Iterable[Post], root: Path, split: str) -> list[Post]:
    captions = _json(root / "captions.json") or {}
    faces = _json(root / "face_attributes" / f"{split}.json") or {}
    face_desc = _json(root / "face_descriptions.json") or {}
    rationales = _rationale_index(root, split)
    out = []
    for p in posts:
        image = p.image or ""
        stem = image.rsplit(".", 1)[0]
        face_list = faces.get(image)
        aspects = tuple(replace(a, rationale=rationales.get((stem, p.tokens, a.start, a.end))) for a in p.aspects)
        out.append(
            Post(
                id=p.id,
                tokens=p.tokens,
                text=p.text,
                image=p.image,
                aspects=aspects,
                caption=captions.get(image),
                faces=None if face_list is None else tuple(face_from_deepface(f) for f in face_list),
                aspect_face_description=face_desc.get(image),
            )
        )
    return out


# -- statistics ---------------------------------------------------------------------------------
def stats(posts: Iterable[Post]) -> dict[str, int]:
    """Posts, aspects and aspects per polarity."""
    posts = list(posts)
    pol = Counter(a.polarity.value if a.polarity else "none" for p in posts for a in p.aspects)
    out = {"posts": len(posts), "aspects": sum(len(p.aspects) for p in posts)}
    out.update({k: pol.get(k, 0) for k in ("POS", "NEU", "NEG")})
    if pol.get("none"):
        out["no_polarity"] = pol["none"]
    return out
