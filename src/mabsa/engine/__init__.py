"""Training, evaluation and prediction for every mabsa model."""
