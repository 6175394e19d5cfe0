"""Two-stage JMASA: any term extractor (mate/jmasa checkpoint or ensemble), then any polarity
classifier (masc checkpoint or ensemble) on exactly the terms found (``mabsa pipeline``)."""
