"""The pixel detector (``detector``) and its building blocks for real captures: dense-flow fits, photometric
compensation, thresholds, object-level splitting of a change mask, run-length encoded masks, the synthetic
viewpoint/light jitter that tests them, and the windowed and tiled paths for large pairs."""
