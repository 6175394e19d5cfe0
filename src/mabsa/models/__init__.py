"""Models: a registry of named assemblies (``mabsa.models.register``) and their typed configs.

``mabsa train --model NAME`` builds ``get_model_class(NAME)`` from its config class
(``models/<method>/config.py``), the JSON ``mabsa/configs/NAME.json``, ``--config`` and ``--set``.
One folder per method; importing its model module registers it.
"""

from mabsa.models.base import (
    MabsaModel,
    UnknownModelError,
    available_models,
    get_model_class,
    register,
)
from mabsa.models.clamp import model as _clamp  # noqa: F401  (clamp)
from mabsa.models.ensemble import model as _ensemble  # noqa: F401  (ensemble)
from mabsa.models.fite import model as _fite  # noqa: F401  (fite)
from mabsa.models.iea import model as _iea  # noqa: F401  (iea)
from mabsa.models.lrsa import model as _lrsa  # noqa: F401  (lrsa)
from mabsa.models.pipeline import model as _pipeline  # noqa: F401  (pipeline, fite-pipeline)
from mabsa.models.text import model as _text  # noqa: F401  (text-crf, text-cls)

__all__ = [
    "MabsaModel",
    "UnknownModelError",
    "available_models",
    "get_model_class",
    "register",
]
