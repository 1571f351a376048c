"""Img-Diff's model detector: segment both images, pair the proposals, gate them, embed the crops with CLIP and
keep the pairs that look different (``detector.ModelDetector``); the registered real segmenter's features and
object names."""
