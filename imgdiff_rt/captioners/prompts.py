"""The question Img-Diff's instruction data asks about each region; the LLaVA captioner asks it and every
Img-Diff record (``writers.imgdiff_format``) carries it."""

QUESTION = (
    "Analyse the left image and the right image (separated by the black vertical bar). What is the difference "
    "between the red bounding box area in each image? Answer the question in a few concise sentences."
)
