"""Measuring the detector: scores against labelled change masks (``evaluate``) and synthetic pairs with known
changes (``synth``, ``synth_puzzle``)."""
