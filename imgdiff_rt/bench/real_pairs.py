"""The real-pair cells, ``detect-real`` and ``pipeline-real``: one call = every pair of a small fixed set of real
pairs (the bundled example, deterministic ``synth`` pairs, LEVIR-CD and CLEVR-Change semantic pairs from
``../shared/data``), the candidate boxes from the bundle's segmenter (the registered pretrained one).

Columns: ``torch`` is Img-Diff as published, in PyTorch eager (every candidate box through CLIP, no pixel gate; BLIP
captioning one crop at a time, no de-duplication, no batching; the pipeline's other steps are the product's own);
``onnx`` is the product's default configuration
(what ``imgdiff-rt run --detector segment --captioner blip`` builds: ONNX Runtime fp32, default pixel gate,
alignment, de-duplicated batched captions); ``onnx-int8`` the same on the bundle's int8 graphs. Both sides run the
same segmenter on ONNX Runtime (a registered segmenter exists only as its ONNX file), so the segment stage is the
same work on both sides and bounds the ratio.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from imgdiff_rt.errors import ModelError, UsageError
from imgdiff_rt.bench import work
from imgdiff_rt.bench.harness import Workload
from imgdiff_rt.bench.context import REFERENCE, BackendChoice, Context, StageSkipped, forget_left, require_precision

#: the default pair sets, "NAME:COUNT" (COUNT pairs of set NAME; the example set has one pair)
DEFAULT_SETS = ("example", "synth:2", "levir-cd:1", "clevr-semantic:2")
SYNTH_SEED = 11  # synth pair i is synthesize(astronaut, seed=SYNTH_SEED + i): the same pairs in every run
#: the per-pair stages each call records (ms, summed over the pairs of one call)
STAGE_KEYS = ("segment", "clip", "caption")
#: which stage a graph (or the PyTorch decoder) belongs to, for the per-stage FLOPs
STAGE_OF_GRAPH = {"segmenter": "segment", "clip_image": "clip", "blip_vision": "caption", "clip_text": "caption",
                  "decoder": "caption"}
COLUMNS = {"torch": "Img-Diff reference (PyTorch eager fp32 CLIP and BLIP, the registered segmenter graph: CLIP on "
                    "every candidate, BLIP one crop at a time)",
           "default": "product default: exactly what `run --models B --detector segment --captioner blip` builds "
                      "(precision auto: per graph the fastest artifact whose export checks passed; pixel gate, "
                      "batched de-duplicated captions)",
           "onnx": "product on the fp32 graphs (ONNX Runtime fp32, pixel gate, batched de-duplicated captions)",
           "onnx-int8": "product on the int8 graphs (ONNX Runtime int8, pixel gate, batched captions)"}


@dataclass(frozen=True)
class RealPair:
    set: str
    name: str
    left: Path
    right: Path


class SetAbsent(Exception):
    """A pair set's data is not on this machine; ``str(e)`` says what is missing."""


def parse_sets(specs: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """"NAME" or "NAME:COUNT" -> (name, count); a UsageError names the bad entry and the known sets."""
    out = []
    for spec in specs:
        name, _, count = str(spec).partition(":")
        if name not in SET_SOURCES:
            raise UsageError(f"unknown real pair set {name!r}; sets: {', '.join(SET_SOURCES)}", parameter="real_sets")
        try:
            n = int(count) if count else 1
        except ValueError:
            raise UsageError(f"real pair set {spec!r}: COUNT must be an integer", parameter="real_sets") from None
        if n < 1:
            raise UsageError(f"real pair set {spec!r}: COUNT must be at least 1", parameter="real_sets")
        out.append((name, n))
    return out


def _example(count: int, data: Path, example: tuple[Path, Path], scratch: Path) -> list[RealPair]:
    left, right = example
    if not (left.is_file() and right.is_file()):
        raise SetAbsent(f"the bundled example pair {left} / {right} is not there")
    return [RealPair("example", "example", left, right)]


def _synth(count: int, data: Path, example: tuple[Path, Path], scratch: Path) -> list[RealPair]:
    from skimage import data as samples

    from imgdiff_rt.imageio import write_png_atomic
    from imgdiff_rt.evaluation.synth import synthesize

    photo = samples.astronaut()
    pairs = []
    for i in range(count):
        made = synthesize(photo, spots=3, seed=SYNTH_SEED + i)
        folder = scratch / f"synth-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        write_png_atomic(folder / "left.png", made.left)
        write_png_atomic(folder / "right.png", made.right)
        pairs.append(RealPair("synth", f"astronaut-seed{SYNTH_SEED + i}", folder / "left.png", folder / "right.png"))
    return pairs


def _from_layout(name: str, folder: Path, id_suffix: str, count: int) -> list[RealPair]:
    """The first ``count`` pairs of a data set folder, read by the batch loader (``pairs.load_pairs``: LEVIR-CD's
    A/ + B/, CLEVR-Change's before/ + semantic/ ...); ``id_suffix`` picks one kind of a multi-kind layout."""
    from imgdiff_rt.errors import PairsFileError
    from imgdiff_rt.pairs import load_pairs

    if not folder.is_dir():
        raise SetAbsent(f"{folder} not found (the ../shared data folder sits beside the checkout)")
    try:
        items = load_pairs(folder)
    except PairsFileError as e:
        raise SetAbsent(str(e)) from None
    found = [RealPair(name, it.id[:len(it.id) - len(id_suffix)], it.left, it.right) for it in items
             if it.error is None and it.id.endswith(id_suffix)]
    if not found:
        raise SetAbsent(f"no {name} pairs in {folder}")
    return found[:count]


def _levir(count: int, data: Path, example: tuple[Path, Path], scratch: Path) -> list[RealPair]:
    return _from_layout("levir-cd", data / "levir-cd", "", count)


def _clevr(count: int, data: Path, example: tuple[Path, Path], scratch: Path) -> list[RealPair]:
    return _from_layout("clevr-semantic", data / "clevr-change", "-semantic", count)


SET_SOURCES: dict[str, Callable[..., list[RealPair]]] = {
    "example": _example, "synth": _synth, "levir-cd": _levir, "clevr-semantic": _clevr}


def gather_pairs(sets: list[tuple[str, int]], data: Path, example: tuple[Path, Path],
                 scratch: Path) -> tuple[list[RealPair], dict[str, str]]:
    """The pairs of every set that is here, and {set: why it was skipped} for the others."""
    pairs, skipped = [], {}
    for name, count in sets:
        try:
            pairs += SET_SOURCES[name](count, Path(data), example, scratch)
        except SetAbsent as e:
            skipped[name] = str(e)
    return pairs, skipped


def _pairs(ctx: Context) -> tuple[list[RealPair], dict[str, str]]:
    def make():
        scratch = tempfile.TemporaryDirectory(prefix="imgdiff-rt-bench-pairs-")
        ctx.cache[("real-pairs-scratch",)] = scratch  # removed by ctx.close() (it has .cleanup, not .close)
        example = (ctx.left_path or Path("examples/left.png"), ctx.right_path or Path("examples/right.png"))
        return gather_pairs(parse_sets(ctx.real_sets), Path(ctx.real_data), example, Path(scratch.name))

    found = ctx.cached(("real-pairs",), make)
    if not found[0]:
        raise StageSkipped("no real pair set is here: " + "; ".join(f"{k}: {v}" for k, v in found[1].items()))
    return found


def _check_column(ctx: Context, choice: BackendChoice, graphs: tuple[str, ...]) -> None:
    if choice.name not in COLUMNS:
        raise StageSkipped(f"the real-pair cells compare the Img-Diff reference (torch) with the product on "
                           f"ONNX Runtime ({', '.join(c for c in COLUMNS if c != REFERENCE)})")
    for graph in graphs:
        require_precision(ctx, choice, graph)


# ---- the two sides ----------------------------------------------------------------------------------------
def reference_detector(ctx: Context):
    """Img-Diff as published: the bundle's segmenter on ONNX Runtime (its only form), CLIP in PyTorch eager fp32
    on every candidate (no pixel gate). The product's proposal step (segment, IoU de-duplication of boxes) and
    CLIP's crop batching are shared."""
    from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig
    from imgdiff_rt.runtime.session import open_session

    detector = ModelDetector(ctx.bundle, "onnx", "fp32", SegmentConfig(pixel_gate=None), **ctx.opts())
    detector.clip.close()
    detector.clip = open_session(ctx.bundle, "clip_image", "torch", "fp32", **ctx.opts())
    registered = registered_precision(ctx.bundle)
    if registered != detector.segmenter_precision:  # the graph as registered, not a rebuild of it
        detector.segmenter.close()
        detector.segmenter = open_session(ctx.bundle, "segmenter", "onnx", registered, **ctx.opts())
        detector.segmenter_precision = registered
    return detector


def registered_precision(bundle) -> str:
    """The precision of the segmenter graph as exported or registered (not a dequantized rebuild of it)."""
    first = [e.precision for e in bundle.graph_entries("segmenter", "onnx") if not e.dequantized_from]
    return first[0] if first else bundle.precision_for("segmenter", "fp32")


def _product_detector(ctx: Context, choice: BackendChoice):
    from imgdiff_rt.detectors.model.detector import ModelDetector, SegmentConfig

    return ModelDetector(ctx.bundle, choice.backend, choice.precision, SegmentConfig(), **ctx.opts())


def _per_crop_blip():
    from imgdiff_rt.captioners.blip import BlipCaptioner

    class PerCropBlip(BlipCaptioner):
        """BLIP as a per-region loop runs it: each crop encoded and generated alone, identical crops again."""

        def caption_images(self, images):
            ids = [self.generate_ids(self.preprocess([image]))[0] for image in images]
            return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    return PerCropBlip


def _caption_options(ctx: Context) -> dict:
    return {"beams": 1, **({"max_new_tokens": ctx.max_new_tokens} if ctx.max_new_tokens else {}),
            **({"device": ctx.caption_device} if ctx.caption_device else {})}


def reference_pipeline(ctx: Context):
    """The whole run with Img-Diff's model stages as published: the reference detector and PyTorch eager BLIP one
    crop at a time. Loading, alignment (the product's default, so both sides detect on the same right image and
    keep comparable regions), describing and the same-caption filter are the product's code on both sides."""
    from imgdiff_rt.pipeline import Pipeline
    from imgdiff_rt.detectors.model.detector import SegmentConfig

    class ImgDiffReference(Pipeline):
        def open(self):
            # the sessions Pipeline.open would build, replaced by the reference's (same attributes it fills)
            if self._detector is None:
                self._detector = reference_detector(ctx)
            if not self._captioner_ready:
                self._captioner = _per_crop_blip().from_bundle(ctx.bundle, "torch", "fp32", **self.caption_options,
                                                               **self._session_opts())
                self._captioner_ready = True
            return self

    return ImgDiffReference(detector="segment", captioner="blip", models=ctx.bundle.root,
                            backend="torch", precision="fp32", segment=SegmentConfig(pixel_gate=None),
                            threads=ctx.threads, caption_options=_caption_options(ctx),
                            session_options=ctx.session_opts).open()


def _product_pipeline(ctx: Context, choice: BackendChoice):
    from imgdiff_rt.pipeline import Pipeline

    return Pipeline.from_bundle(ctx.bundle.root, backend=choice.backend, detector="segment", captioner="blip",
                                precision=choice.precision, threads=ctx.threads,
                                caption_options=_caption_options(ctx), session_options=ctx.session_opts)


def _segmenter_label(ctx: Context, detector) -> str:
    from imgdiff_rt.models.auto_precision import label

    return label(ctx.bundle, "segmenter", detector.segmenter_precision)


# ---- workloads ----------------------------------------------------------------------------------------------
def _cell_info(ctx: Context, pairs: list[RealPair], skipped: dict[str, str]) -> dict:
    return {"pairs": [f"{p.set}/{p.name}" for p in pairs], "skipped_sets": skipped,
            "segmenter": {"weights": ctx.bundle.weights_label("segmenter"), "precision": registered_precision(ctx.bundle)}}


def detect_real(ctx: Context, choice: BackendChoice, batch: int, imgsz: int) -> Workload:
    from imgdiff_rt.imageio import read_image

    _check_column(ctx, choice, ("segmenter", "clip_image"))
    pairs, skipped = _pairs(ctx)
    detector = ctx.cached(("detector-real", choice.name), lambda: reference_detector(ctx)
                          if choice.name == REFERENCE else _product_detector(ctx, choice))
    images = [(read_image(p.left), read_image(p.right)) for p in pairs]  # decoding is not the detector's time
    calls: list[list[dict]] = []

    def run():
        rows = []
        for pair, (left, right) in zip(pairs, images):
            forget_left(detector)  # every pair from scratch, as a new pair would be
            regions, report = detector.detect(left, right)
            rows.append({"pair": f"{pair.set}/{pair.name}", **{k: report.timings_ms.get(k) for k in STAGE_KEYS},
                         "candidates": report.facts.get("candidates"), "clip_boxes": report.facts.get("clip_boxes"),
                         "regions": [list(r.bbox) for r in regions]})
        calls.append(rows)

    return Workload(choice.name, run, items=len(pairs), unit="pair", count=lambda: count_call(ctx, run, None),
                    info={"label": COLUMNS[choice.name], "calls": calls, "accuracy": accuracy(ctx, choice, False),
                          "segmenter_precision": _segmenter_label(ctx, detector),
                          "cell_info": _cell_info(ctx, pairs, skipped)})


def pipeline_real(ctx: Context, choice: BackendChoice, batch: int, imgsz: int) -> Workload:
    _check_column(ctx, choice, ("segmenter", "clip_image", "blip_vision"))
    pairs, skipped = _pairs(ctx)
    pipeline = ctx.cached(("pipeline-real", choice.name), lambda: reference_pipeline(ctx)
                          if choice.name == REFERENCE else _product_pipeline(ctx, choice))
    calls: list[list[dict]] = []

    def run():
        rows = []
        for pair in pairs:
            forget_left(getattr(pipeline, "_detector", None))
            result = pipeline.process(pair.left, pair.right).result
            dropped = result.settings.get("caption_dropped") or []
            rows.append({"pair": f"{pair.set}/{pair.name}", **{k: result.timings_ms.get(k) for k in STAGE_KEYS},
                         "total": result.timings_ms.get("total"),
                         "candidates": (result.settings.get("model_detector") or {}).get("candidates"),
                         "captioned_regions": len(result.regions) + len(dropped),
                         "regions": [list(r.bbox) for r in result.regions]})
        calls.append(rows)

    captioner = getattr(pipeline, "_captioner", None)
    return Workload(choice.name, run, items=len(pairs), unit="pair",
                    count=lambda: count_call(ctx, run, captioner),
                    info={"label": COLUMNS[choice.name], "calls": calls, "accuracy": accuracy(ctx, choice, True),
                          "segmenter_precision": _segmenter_label(ctx, pipeline._detector),
                          "align": pipeline.align, "cell_info": _cell_info(ctx, pairs, skipped)})


# ---- accuracy figures beside each speed-up: the bundle's own export checks, no second comparison ------------
def accuracy(ctx: Context, choice: BackendChoice, captions: bool) -> dict:
    """{graph: the export's parity (fp32) or int8-vs-fp32 agreement figure} for the graphs this column runs."""
    from imgdiff_rt.models.export_checks import parity_cell

    from imgdiff_rt.models.auto_precision import resolve

    graphs = ("segmenter", "clip_image", "blip_vision") if captions else ("segmenter", "clip_image")
    if choice.name == REFERENCE:
        return {g: "PyTorch eager fp32: the reference" for g in graphs[1:]}
    out = {}
    for graph in graphs:
        precision = resolve(ctx.bundle, graph, choice.precision, choice.backend, ctx.opts())
        if graph == "segmenter":
            precision = ctx.bundle.precision_for(graph, precision)
            if precision == registered_precision(ctx.bundle):
                continue  # the reference's own graph: nothing to compare
        try:
            entry = ctx.bundle.entry(graph, "onnx", precision)
        except ModelError:  # a bundle without the entry has no figure; say so
            out[graph] = "not recorded"
            continue
        text = parity_cell(entry)
        generation = entry.accuracy.generation if entry.accuracy is not None else None
        agreement = generation.token_agreement if generation is not None else None
        out[graph] = text + (f", token agreement {agreement:.2f}" if agreement is not None else "")
    return out


# ---- counting the work of one call ----------------------------------------------------------------------------
class _DecoderFlops:
    """Counts the FLOPs of a captioner's PyTorch generation (torch's FlopCounterMode around ``decoder.generate``):
    the only work outside the bundle's graphs. Patches the one decoder instance for the ``with`` block."""

    def __init__(self, captioner):
        self.decoder = getattr(captioner, "decoder", None)
        self.flops = 0

    def __enter__(self):
        if self.decoder is not None:
            original = self.decoder.generate

            def counted(*args, **kwargs):
                flops, out = work.torch_flops(lambda: original(*args, **kwargs))
                self.flops += flops
                return out

            self.decoder.generate = counted
        return self

    def __exit__(self, *exc):
        if self.decoder is not None:
            del self.decoder.generate


def count_call(ctx: Context, run: Callable[[], None], captioner) -> dict:
    """One extra call with every graph call recorded and counted (on the fp32 graph, or the registered one) plus
    the generation FLOPs: {"flops", "flops_by_stage", "sessions"}."""
    recorder = work.SessionRecorder()
    with recorder.active(), _DecoderFlops(captioner) as decoder:
        run()
    counted = work.recorded_work(recorder, ctx.bundle)
    by_stage = dict.fromkeys(STAGE_KEYS, 0)
    for spec, flops in {**counted["by_spec"], "decoder": decoder.flops}.items():
        by_stage[STAGE_OF_GRAPH.get(spec, spec)] = by_stage.get(STAGE_OF_GRAPH.get(spec, spec), 0) + flops
    return {"flops": counted["flops"] + decoder.flops, "flops_by_stage": by_stage, "generation_flops": decoder.flops,
            "weight_bytes": counted["weight_bytes"], "activation_bytes": counted["activation_bytes"],
            "sessions": recorder.by_spec(), "uncounted": counted["uncounted"]}
