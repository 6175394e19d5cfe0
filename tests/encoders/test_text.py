"""Text encoder backends: embedded names, local directories, hub ids (offline)."""

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

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}


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


@pytest.mark.slow
@pytest.mark.skipif(
    not embedded.is_installed("mpnet-base"), reason="mpnet-base not installed (mabsa models install mpnet-base)"
)
def test_embedded_mpnet_loads():
    enc = TextEncoder.from_pretrained("mpnet-base").eval()
    tok = load_tokenizer("mpnet-base")
    batch = tok(["a dog"], return_tensors="pt")
    with torch.no_grad():
        h = enc(batch["input_ids"], batch["attention_mask"])
    assert enc.hidden_size == 768 and h.shape[-1] == 768 and not enc.uses_token_type_ids


def test_a_very_long_text_gives_no_tokenizer_indexing_warning(capfd):
    # mabsa truncates and warns itself (TruncationWarning); the tokenizer must stay quiet.
    ids = load_tokenizer()("word " * 5000)["input_ids"]
    assert len(ids) > 5000
    assert "indexing errors" not in capfd.readouterr().err
