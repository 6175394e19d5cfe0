"""FITE: facial expressions as text and a caption gate (MASC), and its JMASA pipeline (``--model fite``, ``fite-pipeline``)."""
