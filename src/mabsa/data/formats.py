"""Readers and writers for every MABSA file format in circulation.

=============  =======================================================  =======  ======
format         what it is                                               read     write
=============  =======================================================  =======  ======
``jsonl``      mabsa's canonical format: one ``Post.to_dict()`` a line  yes      yes
``jmasa-json`` VLP-MABSA / AoM release: a JSON array of posts           yes      yes
``tsv``        TomBERT: one row per (post, aspect), ``$T$`` marks it    yes      yes
``txt``        TomBERT variant: 4 lines per aspect                      yes      yes
``conll``      CMMT: ``IMGID:<id>`` line, then ``token TAG [extra]``    yes      yes
=============  =======================================================  =======  ======

Every reader raises :class:`~mabsa.errors.DataFormatError` naming the file and line of the
first problem; none skips a bad record. Rows of one post in the per-aspect formats (TSV, TXT)
are merged into one :class:`Post`; see :func:`_merge_aspect_rows`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mabsa.data.records import TSV_LABELS, Aspect, Polarity, Post
from mabsa.errors import DataFormatError

TARGET = "$T$"
_TSV_HEADER = "index\t#1 Label\t#2 ImageID\t#3 String\t#3 String"
_CONLL_TAG = re.compile(r"^(O|[BI](?:-(POS|NEU|NEG))?)$")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split raw post text the way the Twitter-2015/2017 releases are tokenised.

    Words (``\\w+``, so ``Deal_Town`` stays whole) and numbers with inner ``.``/``,`` are
    tokens; every other non-space character is a token of its own (``@``, ``#``, ``'``).
    """
    return _TOKEN.findall(text)


# -- text decoding -------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, None, "file not found") from None
    except OSError as e:
        raise DataFormatError(path, None, f"cannot read file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    return text.replace("\r\n", "\n")


def _image_stem(image: str | None) -> str | None:
    if not image:
        return None
    name = Path(image).name
    return name.rsplit(".", 1)[0] if "." in name else name


class _IdMaker:
    """Post ids: the image id without extension; ``#2``, ``#3`` for later posts on one image."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, image: str | None, fallback: int) -> str:
        base = _image_stem(image) or str(fallback)
        n = self.seen.get(base, 0) + 1
        self.seen[base] = n
        return base if n == 1 else f"{base}#{n}"


def _post(path: Path, line: int, **fields: Any) -> Post:
    try:
        return Post(**fields)
    except ValueError as e:
        raise DataFormatError(path, line, str(e)) from None


def _polarity(path: Path, line: int, value: Any) -> Polarity:
    try:
        return Polarity.parse(value)
    except ValueError as e:
        raise DataFormatError(path, line, str(e)) from None


# -- JSONL (canonical) -------------------------------------------------------------------
def iter_jsonl(path: Path, number_missing_ids: bool = False) -> Iterator[Post]:
    """Stream posts from canonical JSONL, one line at a time (bounded memory). With
    ``number_missing_ids`` (posts to predict), a post without ``id`` gets its line number."""
    try:
        handle = open(path, "rb")
    except OSError as e:
        raise DataFormatError(path, None, f"cannot read file: {e.strerror or e}") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise DataFormatError(path, lineno, "not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(path, lineno, f"invalid JSON: {e.msg}") from None
            yield _post_from_jsonl(path, lineno, d, number_missing_ids)


def _post_from_jsonl(path: Path, lineno: int, d: Any, number_missing_ids: bool = False) -> Post:
    if not isinstance(d, dict):
        raise DataFormatError(path, lineno, "expected a JSON object per line")
    if d.get("text") is not None and not isinstance(d["text"], str):
        raise DataFormatError(path, lineno, "'text' must be a string")
    tokens = d.get("tokens")
    if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)):
        raise DataFormatError(path, lineno, "'tokens' must be a list of strings")
    if tokens is None and d.get("text") is not None:
        d = {**d, "tokens": tokenize(d["text"])}
    if d.get("tokens") is None:
        raise DataFormatError(path, lineno, "missing field 'text' (or 'tokens')")
    if "id" not in d:
        if not number_missing_ids:
            raise DataFormatError(path, lineno, "missing field 'id'")
        d = {**d, "id": str(lineno)}
    for i, a in enumerate(d.get("aspects") or ()):
        if not isinstance(a, dict) or "start" not in a or "end" not in a:
            raise DataFormatError(path, lineno, f"aspect {i}: needs 'start' and 'end'")
        if a.get("polarity") is not None:
            _polarity(path, lineno, a["polarity"])
    try:
        return Post.from_dict(d)
    except (ValueError, TypeError, KeyError) as e:
        raise DataFormatError(path, lineno, str(e)) from None


def write_jsonl(posts: Iterable[Post], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in posts:
            f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")


# -- JMASA JSON --------------------------------------------------------------------------
def _json_array_items(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """Yield (line, item) for each element of a top-level JSON array."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def fail(pos: int, msg: str) -> DataFormatError:
        return DataFormatError(path, text.count("\n", 0, pos) + 1, msg)

    pos = _skip(ws, text, 0)
    if not text.startswith("[", pos):
        raise fail(pos, "invalid JSON: expected a JSON array of posts")
    pos = _skip(ws, text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise fail(e.pos, f"invalid JSON: {e.msg}") from None
        yield text.count("\n", 0, pos) + 1, item
        pos = _skip(ws, text, end)
        if text.startswith(",", pos):
            pos = _skip(ws, text, pos + 1)
        elif text.startswith("]", pos):
            return
        else:
            raise fail(pos, "invalid JSON: expected ',' or ']' between posts")


def read_jmasa_json(path: Path) -> list[Post]:
    text = _read_text(path)
    make_id = _IdMaker()
    posts = []
    for index, (line, rec) in enumerate(_json_array_items(path, text)):
        if not isinstance(rec, dict) or not isinstance(rec.get("words"), list):
            raise DataFormatError(path, line, f"post {index}: expected an object with a 'words' list")
        words = [str(w) for w in rec["words"]]
        aspects = []
        for j, a in enumerate(rec.get("aspects") or ()):
            if not isinstance(a, dict) or "from" not in a or "to" not in a:
                raise DataFormatError(path, line, f"post {index}, aspect {j}: needs 'from' and 'to'")
            start, end = a["from"], a["to"]
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(words)):
                raise DataFormatError(
                    path,
                    line,
                    f"post {index}, aspect {j}: span out of range: from={start!r} to={end!r} for {len(words)} words",
                )
            term = a.get("term")
            if term is not None and list(term) != words[start:end]:
                raise DataFormatError(
                    path,
                    line,
                    f"post {index}, aspect {j}: term {term!r} does not match words[{start}:{end}] "
                    f"= {words[start:end]!r}",
                )
            pol = _polarity(path, line, a["polarity"]) if a.get("polarity") is not None else None
            aspects.append(Aspect(start, end, " ".join(words[start:end]), pol))
        image = rec.get("image_id")
        posts.append(
            _post(path, line, id=make_id(image, index), tokens=tuple(words), image=image, aspects=tuple(aspects))
        )
    return posts


def write_jmasa_json(posts: Iterable[Post], path: Path) -> None:
    records = []
    for p in posts:
        records.append(
            {
                "words": list(p.tokens),
                "image_id": p.image,
                "aspects": [
                    {
                        "from": a.start,
                        "to": a.end,
                        "polarity": a.polarity.value if a.polarity else None,
                        "term": list(p.tokens[a.start : a.end]),
                    }
                    for a in p.aspects
                ],
            }
        )
    with open(path, "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False)


# -- TomBERT TSV / TXT ----------------------------------------------------------------------
def _aspect_row(path: Path, line: int, marked_text: str, target: str) -> tuple[tuple[str, ...], int, int]:
    """Tokens of the post with the target put back, and the target's span."""
    toks = marked_text.split()
    where = [i for i, t in enumerate(toks) if t == TARGET]
    if not where:
        if TARGET in marked_text:
            raise DataFormatError(path, line, f"{TARGET} must stand as a token of its own: {marked_text!r}")
        raise DataFormatError(path, line, f"{TARGET} missing from the text: {marked_text!r}")
    if len(where) > 1:
        raise DataFormatError(path, line, f"{TARGET} appears {len(where)} times in the text")
    target_toks = target.split()
    if not target_toks:
        raise DataFormatError(path, line, "empty aspect term")
    i = where[0]
    return tuple(toks[:i] + target_toks + toks[i + 1 :]), i, i + len(target_toks)


def _merge_aspect_rows(path: Path, rows: Iterable[tuple[int, str, tuple[str, ...], int, int, Polarity]]) -> list[Post]:
    """Merge per-aspect rows into posts.

    Rows with the same (image id, text) belong to one post, wherever they stand in the file.
    A row whose span the post already has starts a second post with that text and image: the
    releases hold genuinely repeated tweets (Twitter-2017 train has one), and this keeps each
    copy with its own aspects, as the JSON release does.
    """
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[int, list[Aspect]]]] = {}
    order: list[tuple[tuple[str, tuple[str, ...]], int]] = []
    for line, image, tokens, start, end, pol in rows:
        key = (image, tokens)
        copies = groups.setdefault(key, [])
        aspect = Aspect(start, end, " ".join(tokens[start:end]), pol)
        for _, aspects in copies:
            if all(a.span != aspect.span for a in aspects):
                aspects.append(aspect)
                break
        else:
            copies.append((line, [aspect]))
            order.append((key, len(copies) - 1))
    make_id = _IdMaker()
    posts = []
    for n, (key, copy) in enumerate(order):
        line, aspects = groups[key][copy]
        image, tokens = key
        posts.append(
            _post(
                path,
                line,
                id=make_id(image, n),
                tokens=tokens,
                image=image or None,
                aspects=tuple(sorted(aspects, key=lambda a: a.start)),
            )
        )
    return posts


def read_tsv(path: Path) -> list[Post]:
    lines = _read_text(path).split("\n")
    rows = []
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        cols = raw.split("\t")
        if lineno == 1 and cols[0].strip().lower() == "index":
            continue  # header
        if len(cols) != 5:
            raise DataFormatError(
                path,
                lineno,
                f"wrong column count: expected 5 tab-separated columns (index, label, image id, "
                f"text with {TARGET}, aspect), found {len(cols)}",
            )
        _, label, image, marked, target = cols
        if label.strip() not in TSV_LABELS:
            raise DataFormatError(path, lineno, f"bad polarity label {label!r}: expected 0 (NEG), 1 (NEU) or 2 (POS)")
        tokens, start, end = _aspect_row(path, lineno, marked, target)
        rows.append((lineno, image.strip(), tokens, start, end, TSV_LABELS[label.strip()]))
    return _merge_aspect_rows(path, rows)


def _marked(post: Post, a: Aspect) -> str:
    return " ".join(post.tokens[: a.start] + (TARGET,) + post.tokens[a.end :])


def _require_polarity(post: Post, a: Aspect, fmt: str) -> Polarity:
    if a.polarity is None:
        raise ValueError(f"post {post.id!r}: the {fmt} format needs a polarity for every aspect")
    return a.polarity


def write_tsv(posts: Iterable[Post], path: Path) -> None:
    label = {v: k for k, v in TSV_LABELS.items()}
    with open(path, "w", encoding="utf-8") as f:
        f.write(_TSV_HEADER + "\n")
        n = 0
        for p in posts:
            for a in p.aspects:
                n += 1
                pol = _require_polarity(p, a, "tsv")
                f.write(f"{n}\t{label[pol]}\t{p.image or ''}\t{_marked(p, a)}\t{a.term}\n")


_TXT_LABELS = {"-1": Polarity.NEG, "0": Polarity.NEU, "1": Polarity.POS}


def read_txt(path: Path) -> list[Post]:
    lines = _read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) % 4:
        raise DataFormatError(
            path,
            len(lines),
            f"wrong line count: the TXT format has 4 lines per aspect (text with {TARGET}, aspect, "
            f"label -1/0/1, image id); {len(lines)} lines leave {len(lines) % 4} over",
        )
    rows = []
    for i in range(0, len(lines), 4):
        marked, target, label, image = (s.strip() for s in lines[i : i + 4])
        if label not in _TXT_LABELS:
            raise DataFormatError(path, i + 3, f"bad polarity label {label!r}: expected -1, 0 or 1")
        tokens, start, end = _aspect_row(path, i + 1, marked, target)
        rows.append((i + 1, image, tokens, start, end, _TXT_LABELS[label]))
    return _merge_aspect_rows(path, rows)


def write_txt(posts: Iterable[Post], path: Path) -> None:
    label = {v: k for k, v in _TXT_LABELS.items()}
    with open(path, "w", encoding="utf-8") as f:
        for p in posts:
            for a in p.aspects:
                pol = _require_polarity(p, a, "txt")
                f.write(f"{_marked(p, a)}\n{a.term}\n{label[pol]}\n{p.image or ''}\n")


# -- CoNLL -------------------------------------------------------------------------------
def read_conll(path: Path) -> list[Post]:
    """Blocks separated by blank lines; ``IMGID:<id>`` first; ``token<TAB>tag[<TAB>extra...]``.

    Tags are BIO with polarity (``B-POS``) or plain BIO (``B``, for term-only data). The file
    is gold data, so an invalid tag sequence is an error here, not repaired.
    """
    text = _read_text(path)
    make_id = _IdMaker()
    posts: list[Post] = []
    block: list[tuple[int, str]] = []

    def flush() -> None:
        if block:
            posts.append(_conll_block(path, block, make_id, len(posts)))
            block.clear()

    for lineno, raw in enumerate(text.split("\n"), 1):
        if raw.strip():
            block.append((lineno, raw))
        else:
            flush()
    flush()
    return posts


def _conll_block(path: Path, block: list[tuple[int, str]], make_id: _IdMaker, index: int) -> Post:
    first_line, first = block[0]
    image = None
    if first.startswith("IMGID:"):
        image = first[len("IMGID:") :].strip()
        block = block[1:]
        if image and "." not in image:
            image += ".jpg"
    if not block:
        raise DataFormatError(path, first_line, "post has no tokens")
    tokens: list[str] = []
    aspects: list[Aspect] = []
    open_span: tuple[int, Polarity | None, int] | None = None  # (start, polarity, line)

    def close(end: int) -> None:
        nonlocal open_span
        if open_span is not None:
            s, pol, _ = open_span
            aspects.append(Aspect(s, end, " ".join(tokens[s:end]), pol))
            open_span = None

    for lineno, raw in block:
        cols = raw.split("\t") if "\t" in raw else raw.split()
        if len(cols) < 2:
            raise DataFormatError(
                path, lineno, f"wrong column count: expected 'token<TAB>tag', found {len(cols)} column(s)"
            )
        token, tag = cols[0], cols[1].strip()
        m = _CONLL_TAG.match(tag)
        if not m:
            if re.match(r"^[BI]-", tag):
                raise DataFormatError(path, lineno, f"bad polarity in tag {tag!r}: expected POS, NEU or NEG")
            raise DataFormatError(
                path, lineno, f"bad tag {tag!r}: expected O, B-POS, I-POS, B-NEU, I-NEU, B-NEG, I-NEG (or B, I)"
            )
        pol = Polarity(m.group(2)) if m.group(2) else None
        i = len(tokens)
        tokens.append(token)
        if tag == "O":
            close(i)
        elif tag.startswith("B"):
            close(i)
            open_span = (i, pol, lineno)
        else:  # I
            if open_span is None:
                raise DataFormatError(path, lineno, f"tag {tag!r} continues no aspect (I- without B-)")
            if open_span[1] != pol:
                raise DataFormatError(path, lineno, f"tag {tag!r} changes polarity inside an aspect")
    close(len(tokens))
    return _post(path, first_line, id=make_id(image, index), tokens=tuple(tokens), image=image, aspects=tuple(aspects))


def write_conll(posts: Iterable[Post], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in posts:
            tags = ["O"] * len(p.tokens)
            for a in sorted(p.aspects, key=lambda a: a.start):
                if any(t != "O" for t in tags[a.start : a.end]):
                    raise ValueError(f"post {p.id!r}: overlapping aspects cannot be written as CoNLL")
                suffix = f"-{a.polarity.value}" if a.polarity else ""
                tags[a.start] = "B" + suffix
                for k in range(a.start + 1, a.end):
                    tags[k] = "I" + suffix
            # CMMT files name images without ".jpg"; other extensions are kept.
            image = p.image or p.id
            f.write(f"IMGID:{image[:-4] if image.endswith('.jpg') else image}\n")
            for tok, tag in zip(p.tokens, tags):
                f.write(f"{tok}\t{tag}\n")
            f.write("\n")


# -- registry ------------------------------------------------------------------------------
READERS: dict[str, Callable[[Path], list[Post]]] = {
    "jsonl": lambda p: list(iter_jsonl(p)),
    "jmasa-json": read_jmasa_json,
    "tsv": read_tsv,
    "txt": read_txt,
    "conll": read_conll,
}
WRITERS: dict[str, Callable[[Iterable[Post], Path], None]] = {
    "jsonl": write_jsonl,
    "jmasa-json": write_jmasa_json,
    "tsv": write_tsv,
    "txt": write_txt,
    "conll": write_conll,
}
FORMATS: Sequence[str] = tuple(READERS)
_BY_SUFFIX = {".jsonl": "jsonl", ".json": "jmasa-json", ".tsv": "tsv", ".txt": "txt", ".conll": "conll"}


def guess_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise DataFormatError(
            path,
            None,
            f"cannot tell the format from the suffix {suffix!r}; give it (--from FORMAT for a file to "
            "read, --to for one to write), one of: " + ", ".join(FORMATS),
        )
    return _BY_SUFFIX[suffix]


def sniff_format(path: str | Path) -> str:
    """The format of a file to read, from its first lines where they are unmistakable, else from
    its suffix. The Twitter CoNLL release names its files ``*.txt``: a file whose first line is
    ``IMGID:...`` is CoNLL whatever its name."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            head = [line.strip() for line in itertools.islice(f, 20) if line.strip()]
    except OSError:
        head = []
    if head:
        first = head[0]
        if first.startswith("IMGID:"):
            return "conll"
        if first.startswith("{") and path.suffix.lower() != ".json":
            return "jsonl"
        if first.startswith("["):
            return "jmasa-json"
    return guess_format(path)


def _check_format(fmt: str) -> str:
    if fmt not in READERS:
        raise DataFormatError(None, None, f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return fmt


def read_posts(path: str | Path, fmt: str | None = None) -> list[Post]:
    """Posts of a file in ``fmt``, or in the format its content shows (:func:`sniff_format`)."""
    path = Path(path)
    return READERS[_check_format(fmt or sniff_format(path))](path)


def iter_posts(path: str | Path, fmt: str | None = None, *, number_missing_ids: bool = False) -> Iterator[Post]:
    """Like :func:`read_posts`, but streams JSONL line by line (``number_missing_ids``: see
    :func:`iter_jsonl`)."""
    path = Path(path)
    fmt = _check_format(fmt or sniff_format(path))
    if fmt == "jsonl":
        return iter_jsonl(path, number_missing_ids)
    return iter(READERS[fmt](path))


def write_posts(posts: Iterable[Post], path: str | Path, fmt: str | None = None) -> None:
    """Write ``posts`` to ``path`` (its folders are made); nothing is left at ``path`` if
    writing fails: the file is written beside it and renamed when complete."""
    path = Path(path)
    writer = WRITERS[_check_format(fmt or guess_format(path))]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataFormatError(path, None, f"cannot create its folder: {e.strerror or e}") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer(posts, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _skip(ws: re.Pattern[str], text: str, pos: int) -> int:
    """Position after the whitespace at ``pos`` (the pattern matches the empty string too)."""
    found = ws.match(text, pos)
    return found.end() if found else pos
