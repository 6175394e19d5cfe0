"""Models: a registry of named assemblies (``mabsa.models.register``) and their configs.

``mabsa train --model NAME`` builds ``get_model_class(NAME)`` with the JSON config
``mabsa/configs/NAME.json`` (overridable by ``--config`` and ``--set``).
"""

from mabsa.models.base import (
    MabsaModel,
    UnknownModelError,
    available_models,
    get_model_class,
    register,
)
from mabsa.models.clamp import model as _clamp  # noqa: F401  (clamp)
from mabsa.models.fite import model as _fite  # noqa: F401  (fite; fite-pipeline below)
from mabsa.models.fite import pipeline as _fite_pipeline  # noqa: F401
from mabsa.models.iea import model as _iea  # noqa: F401  (iea)
from mabsa.models.lrsa import model as _lrsa  # noqa: F401  (lrsa)

# One folder per method; importing its model module registers it.
from mabsa.models.text import model as _text  # noqa: F401  (text-crf, text-cls)

__all__ = [
    "MabsaModel",
    "UnknownModelError",
    "available_models",
    "get_model_class",
    "register",
]
