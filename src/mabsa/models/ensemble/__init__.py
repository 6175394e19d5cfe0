"""Ensembles of trained checkpoints of one task: mean emissions before CRF decoding for taggers,
mean probabilities for classifiers (``mabsa ensemble``)."""
