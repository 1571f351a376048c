"""The real pretrained segmenter from ../shared, registered in a bundle, decodes scikit-image photos to the
objects they show."""

from __future__ import annotations

import pytest

from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.runtime.preprocess import letterbox_batch
from imgdiff_rt.runtime.segment_decode import decode_image
from imgdiff_rt.runtime.session import open_session


@pytest.mark.parametrize("photo,class_id,min_score", [("astronaut", 0, 0.8), ("chelsea", 15, 0.7),
                                                      ("coffee", 41, 0.7)])
def test_real_segmenter_decodes_skimage_photos(registered_segmenter_bundle, photo, class_id, min_score):
    """COCO ids: person 0, cat 15, cup 41. Measured here: person 0.93, cat 0.91, cup 0.94."""
    import skimage.data

    bundle = Bundle.load(registered_segmenter_bundle)
    image = getattr(skimage.data, photo)()
    with open_session(bundle, "segmenter", "onnx", precision="int8") as session:
        x, (lb,) = letterbox_batch([image], 320)
        out = session.run({"images": x})
    seg = decode_image(out["preds"][0], out["protos"][0], 80, lb, conf=0.25, with_masks=True)
    assert seg.classes[0] == class_id and seg.scores[0] >= min_score
    x0, y0, x1, y1 = seg.boxes[0]
    h, w = image.shape[:2]
    assert (x1 - x0) * (y1 - y0) > 0.2 * w * h  # the subject fills much of each photo
    assert seg.masks[0].sum() > 0.5 * (x1 - x0) * (y1 - y0)
