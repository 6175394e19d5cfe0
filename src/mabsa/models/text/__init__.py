"""Text baselines: a token tagger with a CRF (``text-crf``) and an aspect classifier (``text-cls``), optionally reading image-derived text."""
