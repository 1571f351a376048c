"""What imgdiff-rt says about a difference without a captioner: the colour names (``colours``), the kind of
change seen from both sides (``kinds``), the sentences and the pair's summary (``describe``), and the warnings a
result carries when its answer is unsure (``caveats``)."""
