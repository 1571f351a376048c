"""``config.pbtxt`` text for every model of the repository, generated from the specs (never hand-written).

Graph models (``SPECS``): names from the bundle's file (``Bundle.tensor_names``: spec names, except for a
registered foreign segmenter), dtypes and dims from the bound spec with the batch axis taken out
(``max_batch_size`` = the spec's ``max_batch``), other symbols as -1, dynamic batching with a queue delay.
Glue models (``glue.GLUE``): full shapes, ``max_batch_size: 0``, Python backend, KIND_CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from imgdiff_rt.errors import UsageError
from imgdiff_rt.models.specs import ModelSpec, TensorSpec
from imgdiff_rt.runtime.backends.triton_backend import TRITON_DTYPES, WIRE_DTYPES  # noqa: F401  (named here too)
from imgdiff_rt.stages import ensemble_models
from imgdiff_rt.triton.glue import GLUE, GlueParams

PLATFORMS = ("onnxruntime", "tensorrt", "python")
#: Triton data type -> numpy dtype name
NUMPY_DTYPES = {v: k for k, v in TRITON_DTYPES.items()}
DEFAULT_QUEUE_DELAY_US = 2000


@dataclass(frozen=True)
class Options:
    platform: str = "onnxruntime"
    gpu: bool = True  # instance groups of the graph models (python platform / glue: always CPU)
    instances: int = 1
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise UsageError(f"platform {self.platform!r}: use one of {', '.join(PLATFORMS)}")


class Enum(str):
    """A bare word in pbtxt (TYPE_FP32, KIND_GPU), not a quoted string."""


def render(fields: Mapping, indent: int = 0) -> str:
    """A small protobuf text-format writer: dict -> ``key: value`` / ``key { ... }``; a list of dicts ->
    ``key [ {...}, {...} ]``; a list of scalars -> ``key: [ a, b ]``; a tuple of dicts -> repeated blocks
    (map fields such as ``parameters`` and ``input_map``)."""
    pad = "  " * indent
    lines = []
    for key, value in fields.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key} {{\n{render(value, indent + 1)}{pad}}}")
        elif isinstance(value, tuple):
            lines += [f"{pad}{key} {{\n{render(v, indent + 1)}{pad}}}" for v in value]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            items = [f"{pad}  {{\n{render(v, indent + 2)}{pad}  }}" for v in value]
            lines.append(f"{pad}{key} [\n" + ",\n".join(items) + f"\n{pad}]")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "".join(line + "\n" for line in lines)


def _scalar(v) -> str:
    if isinstance(v, Enum):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dims(dims: tuple) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in dims]


def tensor_rows(tensors: tuple[TensorSpec, ...], drop_batch: bool, names: Mapping[str, str] | None = None) -> list:
    rows = []
    for t in tensors:
        dims = t.dims[1:] if drop_batch else t.dims
        rows.append({"name": (names or {}).get(t.name, t.name), "data_type": Enum(TRITON_DTYPES[t.dtype]),
                     "dims": _dims(tuple(dims))})
    return rows


def _parameters(values: Mapping[str, str]) -> tuple:
    return tuple({"key": k, "value": {"string_value": str(v)}} for k, v in sorted(values.items()))


def graph_max_batch(spec: ModelSpec, opts: Options, params: GlueParams) -> int:
    """clip_image takes every crop of a pair in one request (2 x max_candidates) except on TensorRT, whose
    engine profile stops at ``spec.max_batch`` (the glue then caps the candidates instead)."""
    if spec.name == "clip_image" and opts.platform != "tensorrt":
        return max(spec.max_batch, 2 * params.max_candidates)
    return spec.max_batch


def graph_config(spec: ModelSpec, opts: Options, params: GlueParams, names: Mapping[str, str] | None = None) -> str:
    """A graph of the bundle (segmenter, clip_image, ...) served by ONNX Runtime, TensorRT or Python+ORT."""
    if spec.inputs[0].dims[0] != "batch":
        raise UsageError(f"spec {spec.name!r}: the first axis is not the batch axis")
    head: dict = {"name": spec.name}
    if opts.platform == "onnxruntime":
        head.update(platform="onnxruntime_onnx", default_model_filename="model.onnx")
    elif opts.platform == "tensorrt":
        head.update(platform="tensorrt_plan", default_model_filename="model.plan")
    else:
        head.update(backend="python")
    gpu = opts.gpu and opts.platform != "python"
    body = {
        **head,
        "max_batch_size": graph_max_batch(spec, opts, params),
        "input": tensor_rows(spec.inputs, True, names),
        "output": tensor_rows(spec.outputs, True, names),
        "dynamic_batching": {"max_queue_delay_microseconds": opts.queue_delay_us},
        "instance_group": [{"kind": Enum("KIND_GPU" if gpu else "KIND_CPU"), "count": opts.instances}],
    }
    if opts.platform == "python":
        body["parameters"] = _parameters({"spec": spec.name, "model_file": "model.onnx"})
    return render(body)


def glue_config(name: str, params: GlueParams, extra: Mapping[str, str] | None = None, instances: int = 1) -> str:
    inputs, outputs = GLUE[name]
    body = {"name": name, "backend": "python", "max_batch_size": 0,
            "input": tensor_rows(inputs, False), "output": tensor_rows(outputs, False),
            "instance_group": [{"kind": Enum("KIND_CPU"), "count": instances}],
            "parameters": _parameters({**params.as_strings(), **(extra or {})})}
    return render(body)


def pipeline_config(values: Mapping[str, str], instances: int = 1) -> str:
    """``imgdiff_pipeline``: one pair per request (max_batch_size 0); the ``options`` input may be left out."""
    inputs, outputs = GLUE["imgdiff_pipeline"]
    rows = tensor_rows(inputs, False)
    rows[-1]["optional"] = True
    body = {"name": "imgdiff_pipeline", "backend": "python", "max_batch_size": 0,
            "input": rows, "output": tensor_rows(outputs, False),
            "instance_group": [{"kind": Enum("KIND_CPU"), "count": instances}],
            "parameters": _parameters(values)}
    return render(body)


def _step(model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> dict:
    return {"model_name": model, "model_version": -1,
            "input_map": tuple({"key": k, "value": v} for k, v in inputs.items()),
            "output_map": tuple({"key": k, "value": v} for k, v in outputs.items())}


def ensemble_config(specs: Mapping[str, ModelSpec], names: Mapping[str, Mapping[str, str]]) -> str:
    """``imgdiff_detect``: one step per model that executes a model-detector stage (``stages.ensemble_models``:
    preprocess -> segmenter -> proposals -> clip_image -> filter). Glue tensors keep their names; ``names``
    maps each graph's spec tensor names to the names in its file (and so in its config)."""
    steps = []
    for model in ensemble_models():
        if model in GLUE:
            inputs, outputs = GLUE[model]
            steps.append(_step(model, {t.name: t.name for t in inputs}, {t.name: t.name for t in outputs}))
            continue
        spec, in_file = specs[model], names.get(model, {})
        steps.append(_step(model, {in_file.get(t.name, t.name): t.name for t in spec.inputs},
                           {in_file.get(t.name, t.name): t.name for t in spec.outputs}))
    first, last = GLUE[ensemble_models()[0]][0], GLUE[ensemble_models()[-1]][1]
    body = {"name": "imgdiff_detect", "platform": "ensemble", "max_batch_size": 0,
            "input": tensor_rows(first, False), "output": tensor_rows(last, False),
            "ensemble_scheduling": {"step": steps}}
    return render(body)
