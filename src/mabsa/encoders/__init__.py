"""Encoders: text and vision backends (embedded default + any Hugging Face model)."""
