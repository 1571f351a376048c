"""The Triton Python-backend models. Each generated ``model.py`` is one import of a class here; the classes
only move tensors between Triton and the array functions of ``glue`` / ``runtime`` (tested without a server).

Output dtypes are read from the model config, never hard-coded. A failing request gets an error response
(``TritonError``) and the model keeps serving the next one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imgdiff_rt.triton import glue
from imgdiff_rt.models.specs import segmenter_output_sizes
from imgdiff_rt.triton.glue import check_values


def _pb():
    import triton_python_backend_utils as pb_utils  # only exists inside the Triton Python backend

    return pb_utils


def _request_error(pb, message: str, error: Exception):
    """A client's mistake (an undecodable or oversized image, a bad shape or option: InputError, UsageError) is
    INVALID_ARG, which Triton answers with HTTP 400 / gRPC INVALID_ARGUMENT; anything else stays an internal
    error (500)."""
    from imgdiff_rt.errors import InputError, UsageError

    code = getattr(pb.TritonError, "INVALID_ARG", None) if isinstance(error, (InputError, UsageError)) else None
    return pb.TritonError(message, code) if code is not None else pb.TritonError(message)


def check_inputs(rows: list[dict], arrays: dict[str, np.ndarray | None], batched: bool) -> None:
    """Each present input against its config row: dtype, rank and fixed dims (InputError naming them all).
    ``batched``: the config's dims leave out the batch axis."""
    from imgdiff_rt.errors import InputError
    from imgdiff_rt.triton.config import NUMPY_DTYPES

    problems = []
    for row in rows:
        a = arrays.get(row["name"])
        if a is None:
            if not row.get("optional"):
                problems.append(f"{row['name']}: missing")
            continue
        want = NUMPY_DTYPES[row["data_type"]]
        got = "bytes" if a.dtype == np.object_ else a.dtype.name
        if got != want:
            problems.append(f"{row['name']}: dtype {got}, expected {want}")
        dims = [int(d) for d in row.get("dims", [])]
        shape = a.shape[1:] if batched else a.shape
        if len(shape) != len(dims) or any(d > 0 and d != s for d, s in zip(dims, shape)):
            problems.append(f"{row['name']}: shape {tuple(a.shape)}, expected {dims}" +
                            (" after the batch axis" if batched else ""))
    if problems:
        raise InputError("; ".join(problems))


class PythonModelBase:
    """Common plumbing: config, parameters, output dtypes, input checks, per-request error responses."""

    def initialize(self, args: dict) -> None:
        pb = _pb()
        self.config = json.loads(args["model_config"])
        self.version_dir = Path(args["model_repository"]) / str(args["model_version"])
        self.parameters = {k: v["string_value"] for k, v in self.config.get("parameters", {}).items()}
        self.input_names = [t["name"] for t in self.config["input"]]
        self.out_dtypes = {t["name"]: pb.triton_string_to_numpy(t["data_type"]) for t in self.config["output"]}
        self.batched = int(self.config.get("max_batch_size", 0)) > 0
        self.setup()

    @staticmethod
    def _pb():
        return _pb()

    def setup(self) -> None:
        pass

    def compute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def read_inputs(self, request) -> dict[str, np.ndarray | None]:
        """The request's tensors, checked against the config (a wrong one is the client's error, 400)."""
        pb = _pb()
        out = {}
        for name in self.input_names:
            tensor = pb.get_input_tensor_by_name(request, name)
            out[name] = None if tensor is None else tensor.as_numpy()
        check_inputs(self.config["input"], out, self.batched)
        return out

    def _response(self, outputs: dict[str, np.ndarray]):
        pb = _pb()
        tensors = []
        for name, dtype in self.out_dtypes.items():
            value = outputs[name]
            arr = np.array(value, dtype=object) if dtype == np.object_ else np.ascontiguousarray(value, dtype)
            tensors.append(pb.Tensor(name, arr))
        return pb.InferenceResponse(output_tensors=tensors)

    def _error(self, error: Exception):
        pb = _pb()
        return pb.InferenceResponse(output_tensors=[], error=_request_error(
            pb, f"{self.config['name']}: {type(error).__name__}: {error}", error))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._response(self.compute(self.read_inputs(request))))
            except Exception as e:  # every failure becomes this request's error; the model stays up
                responses.append(self._error(e))
        return responses

    def finalize(self) -> None:
        pass


class _GlueModel(PythonModelBase):
    def setup(self) -> None:
        self.params = glue.GlueParams.from_strings(self.parameters)


class PreprocessModel(_GlueModel):
    def compute(self, x):
        return glue.preprocess_step(x["left_image"], x["right_image"], self.params)


class ProposalsModel(_GlueModel):
    def compute(self, x):
        return glue.proposals_step(x[glue.PREDS], x[glue.PROTOS], x["letterbox"], x["pair_rgb"], self.params)


class FilterModel(_GlueModel):
    def compute(self, x):
        return glue.filter_step(x[glue.CLIP_OUT], x["boxes"], x["box_scores"], x["sent"], self.params)


class OnnxGraphModel(PythonModelBase):
    """``--platform python``: one exported graph run by ONNX Runtime inside the Python backend (for servers
    with only that backend). Requests of one dynamic batch with equal shapes run as one call."""

    def setup(self) -> None:
        from imgdiff_rt.runtime.backends.onnx_backend import ort_session

        path = self.version_dir / self.parameters.get("model_file", "model.onnx")
        self.session = ort_session(path, int(self.parameters.get("threads", "0")) or None)

    def execute(self, requests):
        pb = _pb()
        responses: list = [None] * len(requests)
        groups: dict = {}
        for i, request in enumerate(requests):
            try:
                feeds = self.read_inputs(request)
                check_values(feeds)
                if self.parameters.get("spec") == "segmenter":  # dynamic sides, but only multiples of the stride
                    segmenter_output_sizes(*next(iter(feeds.values())).shape[2:4])
                key = tuple((n, a.shape[1:], a.dtype.str) for n, a in feeds.items())
                groups.setdefault(key, []).append((i, feeds))
            except Exception as e:
                responses[i] = self._error(e)
        names = list(self.out_dtypes)
        for members in groups.values():
            sizes = [len(next(iter(f.values()))) for _, f in members]
            try:
                feeds = {n: np.concatenate([f[n] for _, f in members]) for n in self.input_names}
                values = self.session.run(names, feeds)
                start = 0
                for (i, _), size in zip(members, sizes):
                    responses[i] = self._response({n: v[start:start + size] for n, v in zip(names, values)})
                    start += size
            except Exception as e:
                for i, _ in members:
                    responses[i] = self._error(e)
        return responses


class CaptionModel(PythonModelBase):
    """``imgdiff_caption``: the captioner's encoder through BLS, generation in PyTorch (an ensemble cannot
    loop). Captions the left and right crop of each given region, as ``BlipCaptioner`` does in-process."""

    def setup(self) -> None:
        from imgdiff_rt.models.bundle import Bundle
        from imgdiff_rt.captioners.blip import BlipCaptioner
        from imgdiff_rt.triton.bls import BACKEND

        family = self.parameters.get("family", "blip")
        if family != "blip":
            raise ValueError(f"imgdiff_caption serves the BLIP captioner; {family!r} is not wired yet")
        bundle = Bundle.load(self.version_dir / "bundle")
        self.captioner = BlipCaptioner.from_bundle(bundle, BACKEND, "fp32", text_similarity="exact", device="cpu",
                                                   max_new_tokens=int(self.parameters.get("max_new_tokens", 20)))
        self.max_pixels = int(self.parameters.get("max_pixels", glue.DEFAULT_MAX_PIXELS))

    def compute(self, x):
        images = glue.decode_pair(x["left_image"], x["right_image"], self.max_pixels)
        return caption_regions_arrays(self.captioner, images, x["regions"])


def caption_regions_arrays(captioner, images, regions: np.ndarray) -> dict[str, np.ndarray]:
    """Token ids (-1 padded) and captions of every region's left and right crop (L0, R0, L1, R1, ...)."""
    from imgdiff_rt.errors import InputError
    from imgdiff_rt.result import Region
    from imgdiff_rt.detectors.model.crops import region_crops

    boxes = np.asarray(regions, np.int64).reshape(-1, 4)
    h, w = images.left.shape[:2]
    if ((boxes[:, 2:] <= boxes[:, :2]).any() or (boxes < 0).any() or (boxes[:, [0, 2]] > w).any()
            or (boxes[:, [1, 3]] > h).any()):
        raise InputError(f"regions must be xyxy boxes inside the {w}x{h} left image (x1 > x0, y1 > y0)")
    crops = [c for i, b in enumerate(boxes)
             for c in region_crops(images, Region(id=i + 1, bbox=tuple(int(v) for v in b), score=1.0,
                                                  area=int((b[2] - b[0]) * (b[3] - b[1])), source="triton"))]
    if not crops:
        return {"caption_ids": np.zeros((0, 0), np.int64), "captions": np.zeros(0, dtype=object)}
    ids = captioner.generate_ids(captioner.preprocess(crops))
    width = max(len(r) for r in ids)
    padded = np.full((len(ids), width), -1, np.int64)
    for i, row in enumerate(ids):
        padded[i, :len(row)] = row
    texts = [t.strip() for t in captioner.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return {"caption_ids": padded, "captions": np.array([t.encode() for t in texts], dtype=object)}
