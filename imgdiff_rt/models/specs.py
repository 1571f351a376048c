"""One declarative record per exported graph: the single source of tensor names, dtypes, dims and tolerances.

The exporter, the parity checks, the runtime sessions, the Triton config generator and the tests all read
``SPECS``; nobody restates a tensor name by hand.

Dims are ints or symbols (strings):

* ``DYNAMIC_SYMBOLS`` ("batch", "height", "width") stay dynamic in ONNX and can never be bound;
* ``DERIVED_SYMBOLS`` ("num_anchors", "proto_h", "proto_w") are segmenter output sizes that follow from
  height/width, so they also stay dynamic in ONNX; bind them only to check a fixed-size layout
  (``segmenter_output_sizes`` computes them);
* every other symbol ("image_size", "embed_dim", "num_outputs", ...) comes from the model config and is
  bound with ``spec.bind(image_size=224, ...)`` before export. ``bind`` also accepts plain config ints that
  no dim uses (e.g. ``vocab_size``, ``eos_token_id``); the dummy-input makers read them from ``spec.sizes``.

TensorRT profiles are ``{input_name: (min_shape, opt_shape, max_shape)}``; their dims may use any bound
symbol plus ``max_batch`` (bound automatically), ``imgsz`` (the export image size, default 640) and
``min_imgsz``/``max_imgsz`` (min(320, imgsz) / max(1024, imgsz)).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from imgdiff_rt.errors import SpecLayoutError, UnknownSpecError, UsageError

#: The segmenter's export / optimisation size (Ultralytics' and FastSAM's default input side).
DEFAULT_IMGSZ = 640
#: Artifact precisions a bundle may hold; fp32 is the reference every other one is compared with.
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "fp16")
#: Artifact formats: ONNX files and TensorRT engines.
FORMATS: tuple[str, ...] = ("onnx", "engine")
#: CLIP's (and BLIP's) image normalisation, OpenAI CLIP's mean/std over 0..1 RGB; a bundle's saved image
#: processor overrides it when present.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

DYNAMIC_SYMBOLS: tuple[str, ...] = ("batch", "height", "width")
DERIVED_SYMBOLS: tuple[str, ...] = ("num_anchors", "proto_h", "proto_w")

#: YOLOv8-seg / FastSAM: detection strides and the prototype-mask count (fixed by the architecture).
SEGMENTER_STRIDES: tuple[int, ...] = (8, 16, 32)
SEGMENTER_NUM_MASKS = 32


@dataclass(frozen=True)
class Tolerance:
    """Parity tolerance; every criterion that is set must hold.

    ``atol``/``rtol``: elementwise ``|onnx - torch| <= atol + rtol * |torch|``.
    ``min_cosine``: per batch item, cosine(onnx, torch) of the flattened output >= min_cosine.
    """

    atol: float | None = None
    rtol: float | None = None
    min_cosine: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in (("atol", self.atol), ("rtol", self.rtol), ("min_cosine", self.min_cosine))
                if v is not None}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: explicit name, numpy dtype name and dims (ints or symbols)."""

    name: str
    dtype: str  # numpy dtype name: "float32", "int64", "float16"
    dims: tuple  # tuple[int | str, ...]
    doc: str = ""
    #: an output's own parity tolerance where its units differ from the graph's (None: the graph's)
    tolerance: Tolerance | None = None

    @property
    def rank(self) -> int:
        return len(self.dims)

    def bind(self, sizes: Mapping[str, int]) -> "TensorSpec":
        return replace(self, dims=tuple(sizes.get(d, d) if isinstance(d, str) else d for d in self.dims))

    def symbols(self) -> tuple[str, ...]:
        return tuple(d for d in self.dims if isinstance(d, str))

    def concrete_shape(self, env: Mapping[str, int]) -> tuple[int, ...]:
        """The shape with every symbol taken from ``env`` (raises SpecLayoutError if one is missing)."""
        missing = [d for d in self.dims if isinstance(d, str) and d not in env]
        if missing:
            raise SpecLayoutError(f"{self.name}: no size given for {', '.join(missing)}")
        return tuple(env[d] if isinstance(d, str) else int(d) for d in self.dims)


@dataclass(frozen=True)
class ModelSpec:
    """One exported graph. Small and flat on purpose: no inheritance, one record per graph."""

    name: str
    family: str  # which model family's PyTorch module this graph comes from (FAMILIES)
    doc: str
    inputs: tuple  # tuple[TensorSpec, ...]
    outputs: tuple  # tuple[TensorSpec, ...]
    opset: int
    tolerance: Tolerance
    max_batch: int
    trt_profiles: Mapping  # {input name: (min_shape, opt_shape, max_shape)}, dims may be symbols
    make_dummy: Callable  # (bound spec, batch, rng, **dims) -> {input name: np.ndarray}, never all zeros
    sizes: Mapping = field(default_factory=lambda: MappingProxyType({}))  # symbols bound so far

    # -- names -------------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def tensor(self, name: str) -> TensorSpec:
        for t in (*self.inputs, *self.outputs):
            if t.name == name:
                return t
        raise UnknownSpecError(f"spec {self.name!r} has no tensor {name!r}")

    # -- binding -----------------------------------------------------------------------------------
    def bind(self, **sizes: int) -> "ModelSpec":
        """Resolve config symbols to ints; batch/height/width stay symbolic (binding them is an error)."""
        bad = [s for s in sizes if s in DYNAMIC_SYMBOLS]
        if bad:
            raise UsageError(f"{self.name}: {', '.join(bad)} are dynamic and cannot be bound")
        merged = {**self.sizes, **{k: int(v) for k, v in sizes.items()}}
        return replace(
            self,
            inputs=tuple(t.bind(merged) for t in self.inputs),
            outputs=tuple(t.bind(merged) for t in self.outputs),
            sizes=MappingProxyType(merged),
        )

    def unbound_symbols(self) -> list[str]:
        """Config symbols still unbound (dynamic and derived symbols are expected to stay symbolic)."""
        keep = set(DYNAMIC_SYMBOLS) | set(DERIVED_SYMBOLS)
        seen = [s for t in (*self.inputs, *self.outputs) for s in t.symbols() if s not in keep]
        return sorted(set(seen))

    def require_bound(self) -> "ModelSpec":
        left = self.unbound_symbols()
        if left:
            raise UsageError(f"spec {self.name!r} needs sizes for: {', '.join(left)}")
        return self

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``{tensor: {axis: symbol}}`` for every axis still symbolic (torch.onnx.export's format)."""
        axes: dict[str, dict[int, str]] = {}
        for t in (*self.inputs, *self.outputs):
            sym = {i: d for i, d in enumerate(t.dims) if isinstance(d, str)}
            if sym:
                axes[t.name] = sym
        return axes

    def profiles(self, **extra: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """TensorRT (min, opt, max) shapes per input, all ints (``imgsz`` defaults to DEFAULT_IMGSZ)."""
        env = {"imgsz": DEFAULT_IMGSZ, **self.sizes, "max_batch": self.max_batch, **extra}
        env.setdefault("min_imgsz", min(320, env["imgsz"]))
        env.setdefault("max_imgsz", max(1024, env["imgsz"]))
        out = {}
        for name, shapes in self.trt_profiles.items():
            try:
                out[name] = tuple(tuple(env[d] if isinstance(d, str) else int(d) for d in s) for s in shapes)
            except KeyError as e:
                raise UsageError(f"spec {self.name!r}: TensorRT profile for {name} needs size {e}") from None
        return out

    # -- inputs and layout checks ------------------------------------------------------------------
    def dummy_inputs(self, batch: int = 2, rng: np.random.Generator | int | None = None, **dims: int):
        """Fresh random inputs (never zeros) for ``batch`` items; ``dims`` gives height/width etc."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        return self.make_dummy(self.require_bound(), batch, rng, **dims)

    def match_shapes(self, shapes: Mapping[str, tuple], dtypes: Mapping[str, str] | None = None) -> dict:
        """Check actual {name: shape} (ints, or str/None for dynamic axes) against the spec.

        Returns the symbol values found (e.g. ``{"batch": 1, "num_anchors": 2100}``); raises
        SpecLayoutError naming every mismatch. Names missing from ``shapes`` are mismatches too.
        """
        env: dict[str, int] = dict(self.sizes)
        problems: list[str] = []
        for t in (*self.inputs, *self.outputs):
            if t.name not in shapes:
                problems.append(f"missing tensor {t.name!r}")
                continue
            actual = tuple(shapes[t.name])
            if dtypes is not None and t.name in dtypes and dtypes[t.name] != t.dtype:
                problems.append(f"{t.name}: dtype {dtypes[t.name]} != {t.dtype}")
            if len(actual) != t.rank:
                problems.append(f"{t.name}: rank {len(actual)} != {t.rank} (dims {t.dims})")
                continue
            for i, (want, got) in enumerate(zip(t.dims, actual)):
                if not isinstance(got, (int, np.integer)) or got < 0:
                    continue  # dynamic axis in the file: nothing to compare
                if isinstance(want, str):
                    if env.setdefault(want, int(got)) != got:
                        problems.append(f"{t.name}[{i}] ({want}): {got} != {env[want]}")
                elif want != got:
                    problems.append(f"{t.name}[{i}]: {got} != {want}")
        extra = sorted(set(shapes) - {t.name for t in (*self.inputs, *self.outputs)})
        if extra:
            problems.append(f"unexpected tensors {extra}")
        if problems:
            raise SpecLayoutError(f"layout does not match spec {self.name!r}: " + "; ".join(problems))
        return env


# ---- helpers -------------------------------------------------------------------------------------
def segmenter_output_sizes(height: int, width: int | None = None) -> dict[str, int]:
    """num_anchors / proto_h / proto_w of a YOLOv8-seg head for an input of height x width."""
    width = height if width is None else width
    if height % 32 or width % 32:
        raise UsageError(f"segmenter input {height}x{width}: both sides must be multiples of 32")
    anchors = sum((height // s) * (width // s) for s in SEGMENTER_STRIDES)
    return {"num_anchors": anchors, "proto_h": height // 4, "proto_w": width // 4}


def segmenter_num_outputs(num_classes: int) -> int:
    """Rows of ``preds``: 4 box coordinates + one score per class + 32 mask coefficients."""
    return 4 + num_classes + SEGMENTER_NUM_MASKS


def _dummy_images(spec: ModelSpec, batch: int, rng: np.random.Generator, height: int | None = None,
                  width: int | None = None, **_: int) -> dict[str, np.ndarray]:
    size = spec.sizes.get("imgsz", DEFAULT_IMGSZ)
    h, w = height or size, width or height or size
    return {"images": rng.uniform(0.02, 1.0, size=(batch, 3, h, w)).astype(np.float32)}


def _dummy_pixel_values(spec: ModelSpec, batch: int, rng: np.random.Generator, **_: int):
    # Values in the range a CLIP/BLIP normaliser produces ((x - mean) / std over 0..1 pixels).
    s = spec.sizes["image_size"]
    return {"pixel_values": rng.uniform(-1.8, 2.1, size=(batch, 3, s, s)).astype(np.float32)}


def _dummy_text(spec: ModelSpec, batch: int, rng: np.random.Generator, **_: int):
    """Token rows of varied length: BOS, random ids, EOS, then padding (attention_mask 0)."""
    length = spec.sizes["text_len"]
    vocab = spec.sizes["vocab_size"]
    bos, eos = spec.sizes.get("bos_token_id", vocab - 2), spec.sizes.get("eos_token_id", vocab - 1)
    pad = spec.sizes.get("pad_token_id", eos)
    ids = np.full((batch, length), pad, dtype=np.int64)
    mask = np.zeros((batch, length), dtype=np.int64)
    low = min(bos, eos)  # random ids stay below the special tokens (CLIP's legacy argmax pooling needs it)
    for b in range(batch):
        n = int(rng.integers(3, length + 1))
        ids[b, 0], ids[b, n - 1] = bos, eos
        ids[b, 1:n - 1] = rng.integers(1, max(2, low), size=n - 2)
        mask[b, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


_BATCH_IMAGE = ("batch", 3, "image_size", "image_size")


def _image_profile(opt_batch: int) -> dict:
    return {"pixel_values": ((1, 3, "image_size", "image_size"), (opt_batch, 3, "image_size", "image_size"),
                             ("max_batch", 3, "image_size", "image_size"))}


SEGMENTER = ModelSpec(
    name="segmenter",
    family="segmenter",
    doc="YOLOv8-seg / FastSAM: RGB images in 0..1 -> raw box/score/mask-coefficient predictions + mask "
        "prototypes (no NMS in the graph).",
    inputs=(TensorSpec("images", "float32", ("batch", 3, "height", "width"), "RGB, 0..1, sides % 32 == 0"),),
    outputs=(
        # Box rows are input pixels: float32 ONNX Runtime and PyTorch differ by up to 0.02 px on random
        # inputs (distribution-focal sums at 640 px), so the absolute bound is a twentieth of a pixel and a
        # cosine bound keeps the scores and mask coefficients (errors < 5e-4) strictly checked.
        TensorSpec("preds", "float32", ("batch", "num_outputs", "num_anchors"),
                   "rows: cx, cy, w, h (input pixels), num_classes scores, 32 mask coefficients",
                   tolerance=Tolerance(atol=5e-2, rtol=2e-3, min_cosine=0.99999)),
        TensorSpec("protos", "float32", ("batch", SEGMENTER_NUM_MASKS, "proto_h", "proto_w"),
                   "mask prototypes at 1/4 input resolution"),
    ),
    opset=17,
    tolerance=Tolerance(atol=2e-3, rtol=2e-3),
    max_batch=8,
    trt_profiles={"images": ((1, 3, "min_imgsz", "min_imgsz"), (1, 3, "imgsz", "imgsz"),
                             ("max_batch", 3, "max_imgsz", "max_imgsz"))},
    make_dummy=_dummy_images,
)

CLIP_IMAGE = ModelSpec(
    name="clip_image",
    family="clip",
    doc="CLIP vision tower + visual projection; image_embeds are L2-normalised (cosine = dot product).",
    inputs=(TensorSpec("pixel_values", "float32", _BATCH_IMAGE, "CLIP-normalised RGB"),),
    outputs=(TensorSpec("image_embeds", "float32", ("batch", "embed_dim"), "L2-normalised"),),
    opset=17,
    tolerance=Tolerance(atol=1e-4, min_cosine=0.99999),
    max_batch=64,
    trt_profiles=_image_profile(16),
    make_dummy=_dummy_pixel_values,
)

CLIP_TEXT = ModelSpec(
    name="clip_text",
    family="clip",
    doc="CLIP text tower + text projection; rows padded to text_len; text_embeds are L2-normalised.",
    inputs=(TensorSpec("input_ids", "int64", ("batch", "text_len")),
            TensorSpec("attention_mask", "int64", ("batch", "text_len"))),
    outputs=(TensorSpec("text_embeds", "float32", ("batch", "embed_dim"), "L2-normalised"),),
    opset=17,
    tolerance=Tolerance(atol=1e-4, min_cosine=0.99999),
    max_batch=64,
    trt_profiles={n: ((1, "text_len"), (16, "text_len"), ("max_batch", "text_len"))
                  for n in ("input_ids", "attention_mask")},
    make_dummy=_dummy_text,
)

BLIP_VISION = ModelSpec(
    name="blip_vision",
    family="blip",
    doc="BLIP vision transformer: last_hidden_state, the encoder_hidden_states the BLIP text decoder "
        "cross-attends to during generation (which stays in PyTorch).",
    inputs=(TensorSpec("pixel_values", "float32", _BATCH_IMAGE, "BLIP-normalised RGB"),),
    outputs=(TensorSpec("image_hidden_states", "float32", ("batch", "num_image_tokens", "vision_hidden")),),
    opset=17,
    tolerance=Tolerance(atol=2e-3, rtol=1e-3, min_cosine=0.9999),
    max_batch=16,
    trt_profiles=_image_profile(4),
    make_dummy=_dummy_pixel_values,
)

LLAVA_VISION = ModelSpec(
    name="llava_vision",
    family="llava",
    doc="LLaVA vision tower (features at the configured layer, CLS dropped per the select strategy) + "
        "multi_modal_projector: the image features that replace the <image> tokens in the LLM input.",
    inputs=(TensorSpec("pixel_values", "float32", _BATCH_IMAGE, "CLIP-normalised RGB"),),
    outputs=(TensorSpec("image_features", "float32", ("batch", "num_image_tokens", "text_hidden")),),
    opset=17,
    tolerance=Tolerance(atol=2e-3, rtol=1e-3, min_cosine=0.9999),
    max_batch=4,
    trt_profiles=_image_profile(1),
    make_dummy=_dummy_pixel_values,
)

SPECS: Mapping[str, ModelSpec] = MappingProxyType(
    {s.name: s for s in (SEGMENTER, CLIP_IMAGE, CLIP_TEXT, BLIP_VISION, LLAVA_VISION)}
)


#: Model families in export order; each family's module yields the specs whose ``family`` names it.
FAMILIES: tuple[str, ...] = ("segmenter", "clip", "blip", "llava")
#: Where each family's model comes from unless the user names another source (a Hugging Face id, or an
#: Ultralytics asset name for the segmenter).
DEFAULT_SOURCES: Mapping[str, str] = MappingProxyType({
    "segmenter": "FastSAM-s.pt", "clip": "openai/clip-vit-base-patch32",
    "blip": "Salesforce/blip-image-captioning-base", "llava": "llava-hf/llava-1.5-7b-hf"})
#: The families that caption (their image encoder is exported; generation stays in PyTorch).
CAPTIONER_FAMILIES: tuple[str, ...] = ("blip", "llava")


def family_specs(family: str) -> tuple[str, ...]:
    """Names of the registered graphs that come from ``family``'s module, in registry order."""
    return tuple(s.name for s in SPECS.values() if s.family == family)


def get_spec(name: str) -> ModelSpec:
    """The registered (unbound) spec called ``name``; UnknownSpecError lists the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownSpecError(f"unknown graph {name!r}; known: {', '.join(SPECS)}") from None
