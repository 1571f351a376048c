"""Captioners that describe each region with a model (BLIP, LLaVA-family) and the generation loop they share;
``stage`` picks one by name."""
