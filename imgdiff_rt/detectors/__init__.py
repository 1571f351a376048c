"""The domain: how changed regions are found.

``registration`` puts the right image in the left one's frame; ``pixel`` finds changes in the pixels
(difference, light compensation, thresholds, objects); ``model`` runs Img-Diff's segment + CLIP filter on a
bundle's graphs; ``ignore`` drops what the user said never counts. The pipeline composes them; nothing here
imports the pipeline, serving or the edges.
"""
