"""Building blocks of the pixel detector for real captures: dense-flow registration, photometric compensation,
object-level splitting of a change mask, run-length encoded masks, and the synthetic viewpoint/light jitter
that tests them. Each module is independent of the pipeline; ``imgdiff_rt.pixel_detector`` and
``imgdiff_rt.align`` compose them."""
