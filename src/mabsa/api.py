"""Python API: ``mabsa.load(DIR)`` returns a :class:`~mabsa.engine.predictor.Predictor`.

>>> import mabsa
>>> predictor = mabsa.load("checkpoints/text-crf_twitter2015_jmasa")
>>> predictor.predict("RT @ user : Chuck Bass is everything # MCM").aspects
(Aspect(start=4, end=6, term='Chuck Bass', polarity=<Polarity.POS: 'POS'>, score=0.93, ...), ...)
"""

from __future__ import annotations

from pathlib import Path

from mabsa.engine.predictor import Prediction, Predictor, TruncationWarning


def load(directory: str | Path, task: str | None = None, batch_size: int = 64) -> Predictor:
    """Load a checkpoint written by ``mabsa train``. With ``task``, a checkpoint trained for
    another task is refused with a clear error."""
    return Predictor.from_checkpoint(directory, task=task, batch_size=batch_size)


__all__ = ["Prediction", "Predictor", "TruncationWarning", "load"]
