"""Generation on a tiny BLIP bundle: identical crops are captioned once (one batched generate for the distinct
ones), and int8 dynamic quantisation of BLIP's text decoder is an opt-in CPU option that says it ran. Timings
and agreement figures come from benchmarks/generation_study.py, not from here."""

from __future__ import annotations

import numpy as np
import pytest

from imgdiff_rt.errors import UsageError


@pytest.fixture(scope="module")
def blip_bundle(tmp_path_factory):
    from imgdiff_rt.export.build import ExportOptions, run_export

    out = tmp_path_factory.mktemp("gen") / "blip"
    run_export(ExportOptions(tiny=True, random_init=True, segmenter=None, clip=None, captioner="blip"), out,
               progress=lambda _: None)
    return out


def test_identical_crops_are_captioned_once(blip_bundle, monkeypatch):
    from imgdiff_rt.captioners.blip import BlipCaptioner

    cap = BlipCaptioner.from_bundle(blip_bundle, "onnx", max_new_tokens=4)
    batches = []
    real = cap.generate_ids

    def spy(pixels):
        batches.append(len(pixels))
        return real(pixels)

    monkeypatch.setattr(cap, "generate_ids", spy)
    rng = np.random.default_rng(1)
    same = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    texts = cap.caption_images([same, other, same.copy(), same])
    assert batches == [2] and texts[0] == texts[2] == texts[3]
    assert texts == [cap.caption_images([x])[0] for x in (same, other, same, same)]  # as if captioned alone
    cap.close()


def test_int8_decoder_is_opt_in_and_recorded(blip_bundle):
    from imgdiff_rt.captioners.blip import BlipCaptioner

    fp32 = BlipCaptioner.from_bundle(blip_bundle, "onnx", max_new_tokens=4, device="cpu")
    int8 = BlipCaptioner.from_bundle(blip_bundle, "onnx", max_new_tokens=4, device="cpu", decoder_precision="int8")
    assert fp32.settings()["decoder_precision"] == "float32" and int8.settings()["decoder_precision"] == "int8"
    linear = [m for m in int8.decoder.modules() if type(m).__name__ == "Linear"]
    assert linear and all(m.__module__.startswith("torch.ao.nn.quantized") for m in linear)
    assert not any(m.__module__.startswith("torch.ao") for m in fp32.decoder.modules())
    crop = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert len(int8.caption_images([crop])) == 1
    with pytest.raises(UsageError, match="decoder_precision"):
        BlipCaptioner.from_bundle(blip_bundle, "onnx", decoder_precision="int4")
    with pytest.raises(UsageError, match="decoder_precision"):
        BlipCaptioner.from_bundle(blip_bundle, "onnx", device="cpu", dtype="bf16", decoder_precision="int8")
    for cap in (fp32, int8):
        cap.close()
