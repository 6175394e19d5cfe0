"""LRSA: LLM rationales injected into a small LM with dual image<->text cross-attention (``--model lrsa``); its rationale generator."""
