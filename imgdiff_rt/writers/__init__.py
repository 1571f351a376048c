"""What a processed pair is written as: JSON and annotated PNGs (``pair``), the HTML report, Img-Diff records."""
