"""The Triton Python-backend models. Each generated ``model.py`` is one import of a class here; the classes
only move tensors between Triton and the array functions of ``glue`` / ``runtime`` (tested without a server).

Output dtypes are read from the model config, never hard-coded. A failing request gets an error response
(``TritonError``) and the model keeps serving the next one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import glue


def _pb():
    import triton_python_backend_utils as pb_utils  # only exists inside the Triton Python backend

    return pb_utils


def _request_error(pb, message: str, error: Exception):
    """A client's mistake (an undecodable or oversized image, a bad shape: InputError) is INVALID_ARG, which
    Triton answers with HTTP 400 / gRPC INVALID_ARGUMENT; anything else stays an internal error (500)."""
    from ..errors import InputError

    code = getattr(pb.TritonError, "INVALID_ARG", None) if isinstance(error, InputError) else None
    return pb.TritonError(message, code) if code is not None else pb.TritonError(message)


class _Base:
    """Common plumbing: config, parameters, output dtypes, per-request error responses."""

    def initialize(self, args: dict) -> None:
        pb = _pb()
        self.config = json.loads(args["model_config"])
        self.version_dir = Path(args["model_repository"]) / str(args["model_version"])
        self.parameters = {k: v["string_value"] for k, v in self.config.get("parameters", {}).items()}
        self.input_names = [t["name"] for t in self.config["input"]]
        self.out_dtypes = {t["name"]: pb.triton_string_to_numpy(t["data_type"]) for t in self.config["output"]}
        self.setup()

    def setup(self) -> None:
        pass

    def compute(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _response(self, outputs: dict[str, np.ndarray]):
        pb = _pb()
        tensors = []
        for name, dtype in self.out_dtypes.items():
            value = outputs[name]
            arr = np.array(value, dtype=object) if dtype == np.object_ else np.ascontiguousarray(value, dtype)
            tensors.append(pb.Tensor(name, arr))
        return pb.InferenceResponse(output_tensors=tensors)

    def execute(self, requests):
        pb = _pb()
        responses = []
        for request in requests:
            try:
                inputs = {n: pb.get_input_tensor_by_name(request, n).as_numpy() for n in self.input_names}
                responses.append(self._response(self.compute(inputs)))
            except Exception as e:  # every failure becomes this request's error; the model stays up
                responses.append(pb.InferenceResponse(output_tensors=[], error=_request_error(
                    pb, f"{self.config['name']}: {type(e).__name__}: {e}", e)))
        return responses

    def finalize(self) -> None:
        pass


class _GlueModel(_Base):
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
        return glue.filter_step(x[glue.CLIP_OUT], x["boxes"], x["box_scores"], self.params)


class OnnxGraphModel(_Base):
    """``--platform python``: one exported graph run by ONNX Runtime inside the Python backend (for servers
    with only that backend). Requests of one dynamic batch with equal shapes run as one call."""

    def setup(self) -> None:
        from ..runtime.backends.onnx_backend import ort_session

        path = self.version_dir / self.parameters.get("model_file", "model.onnx")
        self.session = ort_session(path, int(self.parameters.get("threads", "0")) or None)

    def execute(self, requests):
        pb = _pb()
        responses: list = [None] * len(requests)
        groups: dict = {}
        for i, request in enumerate(requests):
            try:
                feeds = {n: pb.get_input_tensor_by_name(request, n).as_numpy() for n in self.input_names}
                key = tuple((n, a.shape[1:], a.dtype.str) for n, a in feeds.items())
                groups.setdefault(key, []).append((i, feeds))
            except Exception as e:
                responses[i] = pb.InferenceResponse(output_tensors=[], error=pb.TritonError(str(e)))
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
                    responses[i] = pb.InferenceResponse(output_tensors=[], error=pb.TritonError(
                        f"{self.config['name']}: {type(e).__name__}: {e}"))
        return responses


class BlsSession:
    """A ``runtime.session.Session``-like encoder that calls another model of the same server (BLS)."""

    backend = "triton-bls"

    def __init__(self, spec, model_name: str):
        self.spec, self.model_name = spec, model_name

    def run(self, feeds: dict) -> dict:
        pb = _pb()
        request = pb.InferenceRequest(model_name=self.model_name, requested_output_names=self.spec.output_names,
                                      inputs=[pb.Tensor(n, np.ascontiguousarray(v)) for n, v in feeds.items()])
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{self.model_name}: {response.error().message()}")
        return {n: pb.get_output_tensor_by_name(response, n).as_numpy() for n in self.spec.output_names}

    def close(self) -> None:
        pass


class CaptionModel(_Base):
    """``imgdiff_caption``: the captioner's encoder through BLS, generation in PyTorch (an ensemble cannot
    loop). Captions the left and right crop of each given region, as ``BlipCaptioner`` does in-process."""

    def setup(self) -> None:
        from ..models.bundle import Bundle
        from ..models.specs import family_specs

        family = self.parameters.get("family", "blip")
        bundle = Bundle.load(self.version_dir / "bundle")
        (encoder_spec,) = family_specs(family)

        def factory(b, spec_name, backend=None, precision="fp32", **_):
            return BlsSession(b.spec(spec_name, "onnx", precision), spec_name)

        if family != "blip":
            raise ValueError(f"imgdiff_caption serves the BLIP captioner; {family!r} is not wired yet")
        from ..runtime.blip_captioner import BlipCaptioner

        self.encoder_spec = encoder_spec
        self.captioner = BlipCaptioner.from_bundle(bundle, "triton-bls", "fp32", session_factory=factory,
                                                   text_similarity="exact", device="cpu",
                                                   max_new_tokens=int(self.parameters.get("max_new_tokens", 20)))
        self.max_pixels = int(self.parameters.get("max_pixels", glue.DEFAULT_MAX_PIXELS))

    def compute(self, x):
        images = glue.decode_pair(x["left_image"], x["right_image"], self.max_pixels)
        return caption_regions_arrays(self.captioner, images, x["regions"])


def caption_regions_arrays(captioner, images, regions: np.ndarray) -> dict[str, np.ndarray]:
    """Token ids (-1 padded) and captions of every region's left and right crop (L0, R0, L1, R1, ...)."""
    from ..result import Region
    from ..runtime.crops import region_crops

    boxes = np.asarray(regions, np.int64).reshape(-1, 4)
    h, w = images.left.shape[:2]
    if ((boxes[:, 2:] <= boxes[:, :2]).any() or (boxes < 0).any() or (boxes[:, [0, 2]] > w).any()
            or (boxes[:, [1, 3]] > h).any()):
        raise ValueError(f"regions must be xyxy boxes inside the {w}x{h} left image")
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
