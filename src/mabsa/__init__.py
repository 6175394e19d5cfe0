"""mabsa: multimodal aspect-based sentiment analysis toolkit."""

__version__ = "0.1.0"


def load(directory, **kwargs):
    """Load a trained checkpoint as a predictor (see :func:`mabsa.api.load`)."""
    from mabsa.api import load as _load

    return _load(directory, **kwargs)
