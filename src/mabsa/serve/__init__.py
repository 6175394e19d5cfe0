"""``mabsa serve``: an HTTP service and web page over a trained checkpoint.

>>> from mabsa.serve import ServeConfig, create_app
>>> app = create_app(ServeConfig(checkpoints={"default": "checkpoints/text-crf_twitter2015_jmasa"}))

See ``docs/serve.md`` for the endpoints, limits and error codes.
"""

from mabsa.serve.app import ServeConfig, create_app
from mabsa.serve.evidence import EvidenceConfig
from mabsa.serve.limits import Limits
from mabsa.serve.predictor import EnginePredictor, PredictItem, ServePredictor

__all__ = ["EnginePredictor", "EvidenceConfig", "Limits", "PredictItem", "ServeConfig", "ServePredictor", "create_app"]
