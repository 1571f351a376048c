"""The captioning stage on tiny random-init bundles: BLIP captions + same-caption filter + sentences, LLaVA
answers, batching (one encoder call, one generate call per pair), greedy-id parity of the exported encoder
against eager PyTorch, options and errors. Captions of random weights are placeholder words ("tok12")."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from imgdiff_rt.errors import CaptionerUnavailableError, ModelError, UsageError
from imgdiff_rt.export.build import ExportOptions, run_export
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.pipeline import PairImages
from imgdiff_rt.result import Region, Result
from imgdiff_rt.captioners.blip import BlipCaptioner, ClipTextSimilarity
from imgdiff_rt.captioners.stage import build_captioner, caption_regions
from imgdiff_rt.detectors.model.crops import pad_to_square, region_crops
from imgdiff_rt.captioners.llava import LlavaCaptioner

TINY = dict(tiny=True, random_init=True, segmenter=None)


@pytest.fixture(scope="session")
def blip_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "blip"
    run_export(ExportOptions(**TINY, captioner="blip"), out, progress=lambda _: None)
    return Bundle.load(out)


@pytest.fixture(scope="session")
def llava_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cap") / "llava"
    run_export(ExportOptions(**TINY, clip=None, captioner="llava"), out, progress=lambda _: None)
    return Bundle.load(out)


@pytest.fixture(scope="module")
def blip(blip_bundle):
    cap = BlipCaptioner.from_bundle(blip_bundle, "onnx")
    yield cap
    cap.close()


@pytest.fixture(scope="module")
def llava(llava_bundle):
    cap = LlavaCaptioner.from_bundle(llava_bundle, "onnx", max_new_tokens=6)
    yield cap
    cap.close()


def _pair(n_regions: int = 2):
    """A noisy grey picture; each region is black on the left and white (or red) on the right."""
    rng = np.random.default_rng(0)
    left = rng.integers(90, 160, (120, 180, 3), dtype=np.uint8)
    right = left.copy()
    boxes = [(10, 10, 50, 40), (120, 70, 170, 110), (70, 40, 100, 80)][:n_regions]
    regions = []
    for i, (x0, y0, x1, y1) in enumerate(boxes, 1):
        left[y0:y1, x0:x1] = 0
        right[y0:y1, x0:x1] = (255, 255, 255) if i % 2 else (220, 20, 20)
        regions.append(Region(i, (x0, y0, x1, y1), 1.0, (x1 - x0) * (y1 - y0)))
    result = Result("pair", None, None, (180, 120), regions=tuple(regions))
    return result, PairImages(left=left, right_unwarped=right, right=right)


class Counting:
    """Wraps a Session and records the batch of every run() call."""

    def __init__(self, inner):
        self.inner, self.spec, self.batches = inner, inner.spec, []

    def run(self, feeds):
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.inner.run(feeds)

    def close(self):
        pass


# ---- BLIP ----------------------------------------------------------------------------------------------
def test_blip_fills_captions_descriptions_and_summary(blip):
    result, images = _pair(2)
    out = caption_regions(result, images, blip)
    assert len(out.regions) == 2, out.settings["caption_dropped"]
    for r in out.regions:
        assert r.caption_left and r.caption_right and r.caption_left != r.caption_right
        where = "top left" if r.id == 1 else "bottom right"
        assert r.description == (f"{where}: {r.caption_left} in the left image, "
                                 f"{r.caption_right} in the right image")
    assert out.description.startswith("2 differences: top left (")
    s = out.settings["captioning"]
    assert s["captioner"] == "blip" and s["weights"] == "tiny" and s["beams"] == 1
    assert "exact" in s["same_caption_filter"] and "synthetic" in s["same_caption_filter"]
    assert out.timings_ms["caption"] > 0 and out.settings["caption_dropped"] == []


def test_same_caption_regions_are_dropped(blip):
    class Fake:
        method = "fake"

        def scores(self, a, b):
            return np.array([0.9, 0.1])  # region 1 "says the same thing", region 2 does not

    result, images = _pair(2)
    out = caption_regions(result, images, _with(blip, text_similarity=Fake()))
    assert [r.id for r in out.regions] == [2]
    assert [d["id"] for d in out.settings["caption_dropped"]] == [1]
    assert out.description.startswith("1 difference: bottom right")


def test_clip_text_similarity_runs_the_graph(blip_bundle):
    from imgdiff_rt.runtime.session import open_session

    sim = ClipTextSimilarity.from_bundle(blip_bundle, "onnx", "fp32", open_session, force=True)
    assert isinstance(sim, ClipTextSimilarity)
    scores = sim.scores(["tok5 tok9", "tok1"], ["tok5 tok9", "tok77 tok3 tok2"])
    assert scores.shape == (2,) and scores[0] == pytest.approx(1.0, abs=1e-5) and -1 <= scores[1] <= 1
    auto = ClipTextSimilarity.from_bundle(blip_bundle, "onnx", "fp32", open_session)
    assert auto.method.startswith("exact")  # synthetic tokenizer: placeholder words, nothing to compare


def test_one_encoder_call_and_one_generate_call_per_pair(blip, monkeypatch):
    cap = _with(blip, encoder=Counting(blip.encoder))
    calls = []
    real_generate = cap.decoder.generate

    def spy(*a, **k):
        calls.append(k["encoder_hidden_states"].shape[0])
        return real_generate(*a, **k)

    monkeypatch.setattr(cap.decoder, "generate", spy)
    caption_regions(*_pair(3), cap)
    assert cap.encoder.batches == [6] and calls == [6]  # left + right crop of 3 regions, together


def test_token_ids_onnx_encoder_equal_eager_torch(blip, blip_bundle):
    """Greedy ids with the exported encoder == pure PyTorch BLIP generate == the torch-backend Session."""
    import torch
    from transformers import BlipForConditionalGeneration

    from imgdiff_rt.runtime.session import open_session

    result, images = _pair(3)
    pixels = blip.preprocess([c for r in result.regions for c in region_crops(images, r)])
    got = blip.generate_ids(pixels)
    model = BlipForConditionalGeneration.from_pretrained(str(blip_bundle.generation_dir("blip"))).eval()
    with torch.inference_mode():
        eager = model.generate(pixel_values=torch.from_numpy(pixels), max_new_tokens=blip.max_new_tokens,
                               do_sample=False, num_beams=1)[:, 1:].tolist()
    assert got == eager and len({tuple(r) for r in got}) > 1  # distinct captions: the check sees the image
    with open_session(blip_bundle, "blip_vision", backend="torch") as torch_encoder:
        assert _with(blip, encoder=torch_encoder).generate_ids(pixels) == got


def test_beams_option(blip, blip_bundle, monkeypatch):
    cap = _with(blip, beams=3)
    seen = {}
    real_generate = cap.decoder.generate

    def spy(*a, **k):
        seen.update(k)
        return real_generate(*a, **k)

    monkeypatch.setattr(cap.decoder, "generate", spy)
    out = caption_regions(*_pair(1), cap)
    assert seen["num_beams"] == 3 and seen["use_cache"] is True
    assert out.settings["captioning"]["beams"] == 3
    with pytest.raises(UsageError, match="beams") as caught:
        build_captioner("blip", blip_bundle.root, beams=0)
    assert caught.value.parameter == "beams"  # the CLI spells it --beams


@pytest.mark.parametrize("option,value", [("beams", 1000), ("max_new_tokens", 10**6), ("max_new_tokens", 0)])
def test_generation_sizes_are_bounded(blip_bundle, option, value):
    """A beam per KV cache, a position per token: absurd sizes are refused before any model loads."""
    with pytest.raises(UsageError, match="must be in") as caught:
        build_captioner("blip", blip_bundle.root, **{option: value})
    assert caught.value.parameter == option


def test_no_regions_means_no_model_call(blip):
    cap = _with(blip, encoder=Counting(blip.encoder))
    result, images = _pair(0)
    out = caption_regions(result, images, cap)
    assert out.description == "No differences found." and cap.encoder.batches == []


# ---- LLaVA ---------------------------------------------------------------------------------------------
def test_llava_one_answer_per_region_in_one_batch(llava):
    cap = _with(llava, encoder=Counting(llava.encoder))
    result, images = _pair(3)
    out = caption_regions(result, images, cap)
    assert len(out.regions) == 3 and all(r.description for r in out.regions)
    assert all(r.caption_left is None for r in out.regions)
    assert cap.encoder.batches == [3] and out.description.startswith("3 differences: top left (")
    assert out.settings["captioning"]["captioner"] == "llava"
    n = llava.encoder.spec.sizes["num_image_tokens"]
    assert llava.prompt_ids.count(llava.image_token_id) == n


def test_llava_token_ids_onnx_equal_torch_encoder(llava, llava_bundle):
    from imgdiff_rt.detectors.model.crops import boxed_side_by_side
    from imgdiff_rt.runtime.session import open_session

    result, images = _pair(2)
    fill = llava.preprocess.mean_colour
    pics = [pad_to_square(boxed_side_by_side(images, r), fill) for r in result.regions]
    pixels = llava.preprocess(pics)
    with open_session(llava_bundle, "llava_vision", backend="torch") as torch_encoder:
        assert llava.generate_ids(pixels) == _with(llava, encoder=torch_encoder).generate_ids(pixels)


# ---- options, errors ---------------------------------------------------------------------------------------
def test_bundle_without_captioner_names_the_export_flag(llava_bundle, blip_bundle):
    with pytest.raises(CaptionerUnavailableError, match="--captioner blip"):
        BlipCaptioner.from_bundle(llava_bundle)
    with pytest.raises(CaptionerUnavailableError, match="--captioner llava"):
        build_captioner("llava", blip_bundle.root)
    with pytest.raises(UsageError, match="choose one of"):
        build_captioner("gpt4", blip_bundle.root)
    with pytest.raises(UsageError, match="needs a model bundle"):
        build_captioner("blip", None)
    with pytest.raises(ModelError, match="no model bundle"):
        build_captioner("blip", blip_bundle.root / "nowhere")
    assert build_captioner("none", None) is None
    assert caption_regions(_pair(1)[0], None, None) == _pair(1)[0]


# ---- helpers -------------------------------------------------------------------------------------------
def _with(captioner, **changes):
    """A shallow copy of a loaded captioner with some attributes changed (no model reload)."""
    clone = copy.copy(captioner)
    for k, v in changes.items():
        setattr(clone, k, v)
    return clone


@pytest.mark.slow
def test_real_size_blip_parity_and_timing():
    """Real-size BLIP-base with random weights (``imgdiff-rt export --random-init --out DIR``; DIR from
    $IMGDIFF_RT_REAL_BUNDLE, default /tmp/bundle-real): ONNX-encoder ids equal eager PyTorch."""
    import os
    from pathlib import Path

    import torch
    from transformers import BlipForConditionalGeneration

    root = Path(os.environ.get("IMGDIFF_RT_REAL_BUNDLE", "/tmp/bundle-real"))
    if not (root / "manifest.json").is_file():
        pytest.skip(f"no real-size bundle at {root}")
    cap = BlipCaptioner.from_bundle(root, "onnx", max_new_tokens=6)
    result, images = _pair(1)
    pixels = cap.preprocess(list(region_crops(images, result.regions[0])))
    got = cap.generate_ids(pixels)
    model = BlipForConditionalGeneration.from_pretrained(str(Bundle.load(root).generation_dir("blip"))).eval()
    with torch.inference_mode():
        eager = model.generate(pixel_values=torch.from_numpy(pixels), max_new_tokens=6, do_sample=False,
                               num_beams=1)[:, 1:].tolist()
    assert got == eager
    out = caption_regions(result, images, cap)
    assert out.timings_ms["caption"] > 0
    cap.close()
