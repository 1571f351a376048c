"""The ``triton`` Session backend: tritonclient over HTTP or gRPC, with timeouts, retries and typed errors.

* ``TritonClient(url, protocol)``: ``infer(model, {name: array}, outputs)`` with a per-request timeout,
  retries with exponential backoff when the connection fails (never for an error the server answered),
  ``TritonUnavailableError`` when the server cannot be reached, ``TritonModelNotReadyError`` when the
  model is not loaded, ``TritonRequestError`` for an error response.
* ``TritonSession``: a ``runtime.session.Session`` whose graph runs on the server (registered as backend
  ``triton``: ``open_session(bundle, "clip_image", backend="triton", url=..., protocol=...)``), so
  ``Pipeline(..., backend="triton")`` and ``run --backend triton`` use the same glue code as ``onnx``.

The served models' own helpers (the ``imgdiff_detect`` ensemble, ``imgdiff_caption``) are in ``triton.client``.
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np

from imgdiff_rt.errors import (TritonModelNotReadyError, TritonRejectedError, TritonRequestError, TritonUnavailableError,
                      UsageError)
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.runtime.session_base import Session, entry_input_shapes, register_backend

PROTOCOLS = ("http", "grpc")
#: what tritonclient's exception status says for a request the model refused as the client's mistake
CLIENT_ERRORS = ("400", "StatusCode.INVALID_ARGUMENT")
DEFAULT_URL = "127.0.0.1:8000"
#: numpy dtype name -> Triton data type (model configs), and Triton data type -> the name on the wire
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32",
                 "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL", "bytes": "TYPE_STRING"}
WIRE_DTYPES = {"TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_INT64": "INT64", "TYPE_INT32": "INT32",
               "TYPE_UINT8": "UINT8", "TYPE_BOOL": "BOOL", "TYPE_STRING": "BYTES"}


def default_url() -> str:
    """``$IMGDIFF_RT_TRITON_URL`` (HOST:PORT), else 127.0.0.1:8000."""
    return os.environ.get("IMGDIFF_RT_TRITON_URL") or DEFAULT_URL


def default_protocol() -> str | None:
    """``$IMGDIFF_RT_TRITON_PROTOCOL``; None: inferred from the URL or by probing the port."""
    return os.environ.get("IMGDIFF_RT_TRITON_PROTOCOL") or None


def resolve_endpoint(url: str | None, protocol: str | None, probe_timeout: float = 3.0) -> tuple[str, str]:
    """(HOST:PORT, protocol) for ``url``: the scheme decides (``grpc://``, ``http://``), else ``protocol``,
    else ``$IMGDIFF_RT_TRITON_PROTOCOL``, else what the port answers (``probe_protocol``)."""
    url = url or default_url()
    scheme, sep, rest = url.partition("://")
    if sep:
        if scheme not in PROTOCOLS:
            raise UsageError(f"url {url!r}: the scheme must be http:// or grpc://", parameter="url")
        if protocol is not None and protocol != scheme:
            raise UsageError(f"url {url!r} says {scheme} but protocol is {protocol!r}", parameter="protocol")
        return rest.rstrip("/"), scheme
    protocol = protocol or default_protocol()
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise UsageError(f"protocol {protocol!r}: use http or grpc", parameter="protocol")
        return url, protocol
    return url, probe_protocol(url, probe_timeout)


def probe_protocol(hostport: str, timeout: float = 3.0) -> str:
    """"http" when the port answers an HTTP/1.1 request as HTTP does, "grpc" when it answers with HTTP/2
    frames (what a gRPC port sends); TritonUnavailableError when nothing listens there."""
    import socket

    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"url {hostport!r}: expected HOST:PORT, grpc://HOST:PORT or http://HOST:PORT",
                         parameter="url")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.sendall(f"GET /v2/health/live HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode())
            first = sock.recv(8)
    except socket.timeout:
        return "http"  # silent port: the default protocol, whose client gives the one-line error
    except OSError as e:
        raise TritonUnavailableError(f"Triton at {hostport} cannot be reached: {e.strerror or e}; is the server "
                                     "running (imgdiff-rt serve)?") from None
    return "http" if not first or first.startswith(b"HTTP/") else "grpc"


def wire_dtype(dtype: np.dtype | str) -> str:
    name = "bytes" if np.dtype(dtype) == np.object_ else np.dtype(dtype).name
    return WIRE_DTYPES[TRITON_DTYPES[name]]


class TritonClient:
    def __init__(self, url: str | None = None, protocol: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5):
        url, protocol = resolve_endpoint(url, protocol)
        self.url, self.protocol, self.timeout = url, protocol, float(timeout)
        self.retries, self.backoff = int(retries), float(backoff)
        try:
            if protocol == "http":
                import tritonclient.http as mod

                self._client = mod.InferenceServerClient(url, connection_timeout=self.timeout,
                                                         network_timeout=self.timeout)
            else:
                import tritonclient.grpc as mod

                self._client = mod.InferenceServerClient(url)
        except ImportError:
            raise UsageError("the triton backend needs tritonclient: pip install 'imgdiff-rt[triton]'") from None
        except Exception as e:
            raise TritonUnavailableError(f"Triton at {url} ({protocol}): {e}") from None
        self._mod = mod
        self._ready: set[str] = set()

    # -- connection handling -----------------------------------------------------------------------------
    def _call(self, what: str, fn, *args, **kwargs):
        """``fn`` with retries on connection failures; server-side errors are raised at once."""
        from tritonclient.utils import InferenceServerException

        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except InferenceServerException as e:
                if not _is_connection_error(e) or attempt == self.retries:
                    if _is_connection_error(e):
                        raise TritonUnavailableError(f"Triton at {self.url} ({self.protocol}) cannot be reached "
                                                     f"for {what}: {_short(e)}") from None
                    if str(getattr(e, "status", lambda: "")() or "") in CLIENT_ERRORS:
                        raise TritonRejectedError(f"Triton at {self.url} refused {what}: {_short(e)}") from None
                    raise TritonRequestError(f"Triton at {self.url} ({self.protocol}) answered {what} with an "
                                             f"error: {_short(e)}") from None
            except (OSError, ConnectionError, TimeoutError) as e:
                if attempt == self.retries:
                    raise TritonUnavailableError(f"Triton at {self.url} ({self.protocol}) cannot be reached for "
                                                 f"{what}: {e}; is the server running (imgdiff-rt serve)?") from None
            except Exception as e:  # a transport that does not speak this protocol (an HTTP client on the gRPC
                # port gets HTTP/2 frames and a parser error): never a traceback, and retrying cannot help
                other = "grpc" if self.protocol == "http" else "http"
                raise TritonUnavailableError(
                    f"Triton at {self.url} does not answer {self.protocol} for {what} ({type(e).__name__}: "
                    f"{_short(e)}); is it the {other} port? Use {other}://{self.url} or leave the protocol "
                    "unset to detect it") from None
            time.sleep(delay)
            delay *= 2

    def check_model(self, model: str) -> None:
        if model in self._ready:
            return
        live = self._call("server health", self._client.is_server_live)
        if not live:
            raise TritonUnavailableError(f"Triton at {self.url} is not live")
        if not self._call(f"model {model}", self._client.is_model_ready, model):
            raise TritonModelNotReadyError(f"model {model!r} is not ready on Triton at {self.url} (not in the "
                                           "repository, or it failed to load: see the server log)")
        self._ready.add(model)

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        self.check_model(model)
        items = []
        for name, value in inputs.items():
            arr = np.ascontiguousarray(value)
            item = self._mod.InferInput(name, list(arr.shape), wire_dtype(arr.dtype))
            item.set_data_from_numpy(arr)
            items.append(item)
        wanted = [self._mod.InferRequestedOutput(n) for n in outputs]
        kwargs = {"client_timeout": self.timeout} if self.protocol == "grpc" else {}
        result = self._call(f"{model} inference", self._client.infer, model, items, outputs=wanted, **kwargs)
        return {n: result.as_numpy(n) for n in outputs}

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(e: Exception) -> str:
    return str(getattr(e, "message", lambda: None)() or e).splitlines()[0][:500]


def _is_connection_error(e: Exception) -> bool:
    text = str(e).lower()
    status = str(getattr(e, "status", lambda: "")() or "")
    return any(k in text for k in ("connection refused", "failed to connect", "unavailable", "connection reset",
                                   "broken pipe", "timed out", "deadline exceeded", "connection error")) \
        or status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


# ---- the Session backend ---------------------------------------------------------------------------------
class TritonSession(Session):
    backend = "triton"

    def __init__(self, bundle: Bundle, spec_name: str, precision: str = "fp32", url: str | None = None,
                 protocol: str | None = None, timeout: float = 60.0, retries: int = 3, model_name: str | None = None,
                 client: TritonClient | None = None, **_: object):
        super().__init__(bundle.spec(spec_name, "onnx", precision),
                         entry_input_shapes(bundle, spec_name, "onnx", precision))
        self.names = bundle.tensor_names(spec_name, "onnx", precision)  # spec name -> name in file and config
        self.model = model_name or spec_name
        self._own = client is None
        self.client = client or TritonClient(url, protocol, timeout, retries)
        self.client.check_model(self.model)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.client.infer(self.model, {self.names[k]: v for k, v in feeds.items()},
                                [self.names[n] for n in self.spec.output_names])
        return {n: out[self.names[n]] for n in self.spec.output_names}

    def _close(self) -> None:
        if self._own:
            self.client.close()


@register_backend("triton")
def open_triton(bundle: Bundle, spec_name: str, precision: str = "fp32", **opts) -> TritonSession:
    return TritonSession(bundle, spec_name, precision, **opts)
