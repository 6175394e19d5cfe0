"""CLAMP: text + vision encoders, Progressive Attention Fusion, contrastive + OT alignment, dual CRF heads, adaptive multi-loss (``mabsa train --model clamp``)."""
