"""Stage builders: (stage, backend) -> a ``Workload`` whose callable does that stage once, through the
runtime's own interfaces (``open_session`` for single graphs, ``ModelDetector`` for detection,
``BlipCaptioner`` for captions, ``Pipeline.from_bundle`` for the whole run). Nothing here re-implements the
pipeline: the benchmark times the code users run.

A backend that cannot run here raises ``StageSkipped`` with the reason; the suite records it and goes on.
"""

from __future__ import annotations

import numpy as np

from imgdiff_rt.errors import ImgDiffError
from imgdiff_rt.models.specs import DEFAULT_IMGSZ
from imgdiff_rt.bench import real_pairs
from imgdiff_rt.bench.context import REFERENCE, BackendChoice, Context, StageSkipped, forget_left, require_precision
from imgdiff_rt.bench.harness import Workload

STAGES = ("segment", "clip", "caption", "detect", "pipeline", "detect-real", "pipeline-real")
#: stages whose call is every pair of the real pair sets, at the segmenter's own size (bench/real_pairs.py)
REAL_STAGES = ("detect-real", "pipeline-real")
#: stages that process whole pairs per call; --batch does not apply to them
PAIR_STAGES = ("detect", "pipeline", *REAL_STAGES)
STAGE_DOC = {
    "segment": "segmenter graph alone, batch of letterboxed images",
    "clip": "CLIP image graph alone, batch of crops",
    "caption": "BLIP captions of a batch of crops: encoder + greedy PyTorch generation",
    "detect": "one pair: segment both images + proposals + CLIP crop filter (ModelDetector.detect; torch: every "
              "candidate through CLIP, as published; others: the default pixel gate)",
    "pipeline": "one pair, whole run: load + detect + describe + BLIP captions of max_proposals regions "
                "(Pipeline.process; CLIP threshold 1.0 so every backend does the same work)",
    "detect-real": "every real pair (example, synth, LEVIR-CD, CLEVR-Change semantic): segment both images with the "
                   "bundle's segmenter + CLIP filter; torch: Img-Diff as published (PyTorch eager CLIP on every "
                   "candidate), others: the product's defaults",
    "pipeline-real": "every real pair, whole run with BLIP captions at the default thresholds; torch: Img-Diff as "
                     "published (eager CLIP on every candidate, eager BLIP one crop at a time; loading, alignment and "
                     "describing shared), others: the product's defaults (`run --detector segment --captioner blip`)",
}


def backend_unavailable(name: str) -> str | None:
    """Why a backend cannot run on this machine at all (None when it may): checked before any model loads."""
    if name == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "TensorRT is not installed (the `tensorrt` extra needs an NVIDIA GPU machine)"
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU on this machine"
    if name == "triton":
        from imgdiff_rt.errors import ImgDiffError
        from imgdiff_rt.runtime.session import get_backend

        try:
            get_backend("triton")
        except ImgDiffError as e:
            return f"the `triton` Session backend cannot load: {e}"
    return None


def crops_from(image: np.ndarray, count: int, side: int = 128, seed: int = 0) -> list[np.ndarray]:
    """``count`` square crops at fixed pseudo-random places (the same for every backend)."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    side = min(side, h, w)
    out = []
    for _ in range(count):
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out.append(np.ascontiguousarray(image[y:y + side, x:x + side]))
    return out


def _guard(fn):
    """Turn a runtime's typed error (missing graph, missing weights, backend not importable) into a skip."""
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StageSkipped:
            raise
        except (ImgDiffError, ImportError) as e:
            raise StageSkipped(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}") from e
    return wrapper


def _session(ctx: Context, choice: BackendChoice, spec_name: str):
    from imgdiff_rt.runtime.session import open_session

    require_precision(ctx, choice, spec_name)
    return ctx.cached(("session", choice.name, spec_name), lambda: open_session(
        ctx.bundle, spec_name, choice.backend, choice.precision, **ctx.opts()))


@_guard
def build_workload(ctx: Context, stage: str, choice: BackendChoice, batch: int = 1,
                   imgsz: int = DEFAULT_IMGSZ) -> Workload:
    reason = backend_unavailable(choice.name)
    if reason:
        raise StageSkipped(reason)
    builder = {"segment": _segment, "clip": _clip, "caption": _caption, "detect": _detect, "pipeline": _pipeline,
               "detect-real": real_pairs.detect_real, "pipeline-real": real_pairs.pipeline_real}[stage]
    return builder(ctx, choice, batch, imgsz)


def _segment(ctx: Context, choice: BackendChoice, batch: int, imgsz: int) -> Workload:
    session = _session(ctx, choice, "segmenter")
    feeds = session.spec.dummy_inputs(batch, rng=0, height=imgsz, width=imgsz)
    return Workload(choice.name, lambda: session.run(feeds), items=batch, unit="image",
                    info={"weights": ctx.bundle.weights_label("segmenter"), "input": f"{batch}x3x{imgsz}x{imgsz}"})


def _clip(ctx: Context, choice: BackendChoice, batch: int, imgsz: int) -> Workload:
    session = _session(ctx, choice, "clip_image")
    feeds = session.spec.dummy_inputs(batch, rng=0)
    size = session.spec.sizes["image_size"]
    return Workload(choice.name, lambda: session.run(feeds), items=batch, unit="crop",
                    info={"weights": ctx.bundle.weights_label("clip_image"), "input": f"{batch}x3x{size}x{size}"})


def _captioner(ctx: Context, choice: BackendChoice):
    from imgdiff_rt.captioners.blip import BlipCaptioner

    require_precision(ctx, choice, "blip_vision")
    extra = {"max_new_tokens": ctx.max_new_tokens} if ctx.max_new_tokens else {}
    extra.update({"device": ctx.caption_device} if ctx.caption_device else {})
    return ctx.cached(("captioner", choice.name), lambda: BlipCaptioner.from_bundle(
        ctx.bundle, choice.backend, choice.precision, text_similarity="exact", **extra, **ctx.opts()))


def _caption(ctx: Context, choice: BackendChoice, batch: int, imgsz: int) -> Workload:
    captioner = _captioner(ctx, choice)
    pixels = captioner.preprocess(crops_from(ctx.left, batch))
    tokens: list[int] = []

    def run():
        ids = captioner.generate_ids(pixels)
        # tokens generated (up to and including the first [SEP]): random weights rarely stop early, and an
        # int8 encoder can change where greedy decoding stops, so the work per call is recorded, not assumed
        tokens.append(sum(next((i + 1 for i, t in enumerate(row) if t == captioner.eos), len(row)) for row in ids))

    return Workload(choice.name, run, items=batch, unit="crop",
                    info={"weights": ctx.bundle.weights_label("blip_vision"), "max_new_tokens":
                          captioner.max_new_tokens, "beams": captioner.beams, "tokens_per_call": tokens})


def _segment_config(imgsz: int, equal_work: bool = False, reference: bool = False):
    from imgdiff_rt.detectors.model.detector import SegmentConfig

    # The reference is Img-Diff as published: every candidate through CLIP; the others run the product's
    # defaults, pixel gate included.
    gate = {"pixel_gate": None} if reference else {}
    if equal_work:
        # Keep-or-drop decisions differ between backends (int8 shifts cosines near the 0.85 threshold, and with
        # random weights they are arbitrary): a threshold of 1.0 keeps max_proposals regions on every backend,
        # so each captions the same number of crops and the timings compare equal work.
        return SegmentConfig(imgsz=imgsz, clip_threshold=1.0, **gate)
    return SegmentConfig(imgsz=imgsz, **gate)


def _detect(ctx: Context, choice: BackendChoice, batch: int, imgsz: int, keep_left: bool = False) -> Workload:
    from imgdiff_rt.detectors.model.detector import ModelDetector

    require_precision(ctx, choice, "segmenter")
    detector = ctx.cached(("detector", choice.name, imgsz), lambda: ModelDetector(
        ctx.bundle, choice.backend, choice.precision, _segment_config(imgsz, reference=choice.name == REFERENCE),
        **ctx.opts()))
    facts: list[dict] = []

    def run():
        if not keep_left:
            forget_left(detector)
        regions, report = detector.detect(ctx.left, ctx.right)
        facts.append({"segment_ms": report.timings_ms.get("segment"), "clip_ms": report.timings_ms.get("clip"),
                      "candidates": report.facts.get("candidates"), "regions": len(regions)})

    return Workload(choice.name, run, items=1, unit="pair",
                    info={"weights": ctx.bundle.weights_label("segmenter"), "facts": facts,
                          "left_cache": "reused" if keep_left else "cleared before every call"})


def _pipeline(ctx: Context, choice: BackendChoice, batch: int, imgsz: int) -> Workload:
    from imgdiff_rt.pipeline import Pipeline

    caption_options = {"max_new_tokens": ctx.max_new_tokens} if ctx.max_new_tokens else {}
    caption_options.update({"device": ctx.caption_device} if ctx.caption_device else {})

    def make():
        return Pipeline.from_bundle(ctx.bundle.root, backend=choice.backend, detector="segment", captioner="blip",
                                    precision=choice.precision, segment=_segment_config(imgsz, equal_work=True,
                                                                            reference=choice.name == REFERENCE),
                                    threads=ctx.threads, caption_options=caption_options,
                                    session_options=ctx.session_opts)

    pipeline = ctx.cached(("pipeline", choice.name, imgsz), make)
    left = ctx.left_path or ctx.left
    right = ctx.right_path or ctx.right
    timings: list[dict] = []

    def run():
        forget_left(getattr(pipeline, "_detector", None))
        result = pipeline.process(left, right).result
        timings.append({**dict(result.timings_ms), "regions": len(result.regions)})

    return Workload(choice.name, run, items=1, unit="pair",
                    info={"weights": {s: ctx.bundle.weights_label(s) for s in ("segmenter", "clip_image",
                                                                                  "blip_vision")},
                          "timings": timings, "left_cache": "cleared before every call",
                          "clip_threshold": "1.0 (every backend captions max_proposals regions: equal work)"})
