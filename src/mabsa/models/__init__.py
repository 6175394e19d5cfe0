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
from mabsa.models import text_baselines  # noqa: F401  (registers text-crf, text-cls)
from mabsa.models import fite, fite_pipeline  # noqa: F401  (registers fite, fite-pipeline)
from mabsa.models import clamp  # noqa: F401  (registers clamp)
from mabsa.models import iea  # noqa: F401  (registers iea)
from mabsa.models import lrsa  # noqa: F401  (registers lrsa)

__all__ = [
    "MabsaModel", "UnknownModelError", "available_models", "get_model_class", "register",
]
