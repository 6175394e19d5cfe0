"""IEA (Interpretation-based Explicit Alignment): FGCA data, the Fine-Grained Aligner, region
interpretations, Nearest-to-Match Instructions and the output parser. The generator model is
``mabsa.models.iea.model`` (``mabsa train --model iea``)."""
