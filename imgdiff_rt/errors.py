"""The library's exception family.

Library code raises these; only the CLI turns them into a one-line ``Error: ...`` and an exit code. Messages
name the library's parameters (``clip_threshold``), never CLI flags; ``parameter`` says which one, so an edge
can name its own spelling of it (the CLI writes ``--clip-threshold``).
"""

from __future__ import annotations


class ImgDiffError(Exception):
    """Root of every error imgdiff-rt raises on purpose."""

    exit_code = 1

    def __init__(self, *args: object, parameter: str | None = None):
        super().__init__(*args)
        self.parameter = parameter  # the library parameter the message is about, when there is one


class UsageError(ImgDiffError):
    """A setting or argument that cannot be honoured (bad threshold spec, unknown detector, ...)."""

    exit_code = 2


class InputError(ImgDiffError):
    """An input file that cannot be used: missing, unreadable, not an image, too large, ..."""

    exit_code = 2


class ImageReadError(InputError):
    """A file that exists but does not decode to a usable image."""


class ImageTooLargeError(InputError):
    """An image whose pixel count exceeds the cap (decompression-bomb guard)."""


class PairsFileError(InputError):
    """A batch file (JSONL) or pairs folder that cannot be read."""


class TruthError(InputError):
    """Ground truth (truth.json or a change mask) that cannot be read."""


class SettingsMismatchError(UsageError):
    """A batch output folder made with other settings; ``folder`` and ``difference`` let an edge name its own
    flags for redoing or forcing."""

    def __init__(self, folder: object, difference: str):
        super().__init__(f"{folder} holds pairs made with other settings ({difference}); use the same settings, "
                         "or redo (recompute every pair), or force (keep the finished pairs and go on with the "
                         "new settings)")
        self.folder, self.difference = folder, difference


class OutputError(ImgDiffError):
    """An output location that cannot be written."""

    exit_code = 2


class DiskFullError(OutputError):
    """An output that did not fit (no space left, quota exceeded): the machine's state, not bad input, so it
    exits like a failure of the run (1), not like a usage error (2). The message names the file."""

    exit_code = 1


class ModelError(ImgDiffError):
    """A model, bundle or backend that cannot be loaded or run."""

    exit_code = 1


class UnknownSpecError(UsageError):
    """A graph name that is not in the export spec registry."""


class SpecLayoutError(ModelError):
    """Tensor names, dtypes or shapes that do not match a graph's spec (e.g. a foreign ONNX file)."""


class ParityError(ModelError):
    """An exported graph whose outputs miss the spec's tolerance against PyTorch.

    ``report`` maps each output name to its measured figures (max_abs, max_rel, min_cosine, ok).
    """

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report or {}


class WeightsUnavailableError(ModelError):
    """Model weights that are neither local nor downloadable (offline); the message names the flag to use."""

    exit_code = 2


class TensorRTUnavailableError(ModelError):
    """TensorRT (the ``tensorrt`` Python package) or a CUDA GPU is not present where an engine is needed."""


class EngineBuildError(ModelError):
    """TensorRT could not parse the ONNX graph or build an engine; the message lists every parser error."""


class EngineIncompatibleError(ModelError):
    """A serialized TensorRT engine built for another GPU (compute capability) or TensorRT version."""


class QuantizationError(ModelError):
    """An ONNX graph that cannot be quantised (bad input graph, no calibration data, ...)."""


class CaptionerUnavailableError(ModelError):
    """A captioner asked for that the bundle does not hold (no encoder graph or generation folder); the message
    names the ``imgdiff-rt export --captioner`` flag that adds it."""

    exit_code = 2


class ServerEnvError(ModelError):
    """The local Triton server's side environment (nvidia-pytriton, numpy<2, OpenCV 4) cannot be built."""


class ServerStartError(ModelError):
    """A local ``tritonserver`` that exits or never becomes ready; the message carries its log's tail."""


class TritonUnavailableError(ModelError):
    """A Triton server that cannot be reached (down, wrong URL, connection dropped after every retry)."""


class TritonModelNotReadyError(ModelError):
    """A model the Triton server does not have loaded and ready."""


class TritonRequestError(ModelError):
    """A request the Triton server answered with an error (bad input, failed model execution)."""


class TritonRejectedError(TritonRequestError, InputError):
    """A request a served imgdiff-rt model refused as the client's mistake (HTTP 400 / INVALID_ARGUMENT): a bad
    image or option; the message is the model's reason."""

    exit_code = 2


class BundleNotFoundError(ModelError):
    """No model bundle where one was named or expected (a usage problem: the message says how to make one)."""

    exit_code = 2
