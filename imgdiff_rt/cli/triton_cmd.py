"""`imgdiff-rt triton-repo` (write a Triton model repository) and `imgdiff-rt serve` (a local tritonserver)."""

from __future__ import annotations

import signal
import threading

import click

from imgdiff_rt.limits import check_count, check_number

MAX_INSTANCES = 64  # model instances per graph: more only queue on the same cores or GPU


@click.command("triton-repo", context_settings={"max_content_width": 100})
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False), default=None,
              help="Model bundle to serve (from `imgdiff-rt export`). Without it: the default models' layout.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Repository folder, replaced as a whole [default: $IMGDIFF_RT_HOME/triton-repo, else "
                   "~/.cache/imgdiff-rt/triton-repo; never the committed triton_models/ unless named].")
@click.option("--platform", type=click.Choice(["onnxruntime", "tensorrt", "python"]), default="onnxruntime",
              show_default=True, help="How the graphs are served: Triton's ONNX Runtime or TensorRT backend, or "
                                      "ONNX Runtime inside Python-backend models (servers with only that backend).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="Which ONNX graphs of the bundle (int8: CPU ONNX Runtime).")
@click.option("--device", type=click.Choice(["gpu", "cpu"]), default=None,
              help="Instance kind of the graph models [default: gpu, cpu for --platform python].")
@click.option("--instances", type=int, default=1, show_default=True, help="Instances per graph model.")
@click.option("--no-weights", is_flag=True, help="Configs and model.py files only (what git holds).")
def triton_repo(bundle_dir, out_dir, platform, precision, device, instances, no_weights) -> None:
    """Write a Triton model repository: one config.pbtxt per model generated from the export specs, the
    graphs in <model>/1/, the Python glue models, the imgdiff_detect ensemble and the imgdiff_caption model.

    \b
    Examples:
      imgdiff-rt triton-repo --bundle ~/.cache/imgdiff-rt/models      # to ~/.cache/imgdiff-rt/triton-repo
      imgdiff-rt triton-repo --bundle /tmp/bundle --platform python --out /tmp/repo   # CPU, no Docker
      imgdiff-rt triton-repo --no-weights --out triton_models/                      # the committed copy
    """
    from imgdiff_rt.triton.repository import write_repository

    from imgdiff_rt.triton.repo_check import default_repo_dir

    check_count("instances", instances, 1, MAX_INSTANCES)
    out_dir = out_dir or default_repo_dir()
    gpu = None if device is None else device == "gpu"
    written = write_repository(out_dir, bundle_dir, platform=platform, precision=precision,
                               weights=not no_weights, gpu=gpu, instances=instances)
    for model, files in written.items():
        click.echo(f"{model}: {', '.join(files) or 'config only'}")
    click.echo(f"wrote {len(written)} models to {out_dir}", err=True)


@click.command("serve", context_settings={"max_content_width": 100})
@click.option("--repo", type=click.Path(file_okay=False), default=None,
              help="Model repository with weights, from `imgdiff-rt triton-repo --platform python` [default: "
                   "where triton-repo writes by default, $IMGDIFF_RT_HOME/triton-repo].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind HTTP, gRPC and metrics to.")
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option("--metrics-port", type=int, default=8002, show_default=True)
@click.option("--env-dir", type=click.Path(file_okay=False), default=None,
              help="Where the server's side environment lives [default: $IMGDIFF_RT_TRITON_ENV, else "
                   "$IMGDIFF_RT_HOME/triton-env-*, else ~/.cache/imgdiff-rt/triton-env-*].")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for readiness.")
def serve(repo, host, http_port, grpc_port, metrics_port, env_dir, timeout) -> None:
    """Start a local Triton server (the nvidia-pytriton wheel's tritonserver and Python backend; no Docker),
    wait until every model is ready, print the URLs, reload any model whose Python stub dies (and restart a
    server that exits), and stop cleanly on Ctrl-C or SIGTERM.

    \b
    Example:
      imgdiff-rt triton-repo --bundle /tmp/bundle --platform python --out /tmp/repo
      imgdiff-rt serve --repo /tmp/repo --http-port 8000
      imgdiff-rt run left.png right.png --models /tmp/bundle --detector segment --backend triton --url 127.0.0.1:8000
    """
    from imgdiff_rt.triton.server import SUPERVISE_EVERY_S, LocalServer, ensure_server_env

    for name, port in (("http_port", http_port), ("grpc_port", grpc_port), ("metrics_port", metrics_port)):
        check_count(name, port, 1, 65535)  # before the (first-use) environment build
    check_number("timeout", timeout, 0, 86400, lo_open=True)
    repo = _servable_repo(repo)
    env = ensure_server_env(env_dir, log=lambda m: click.echo(m, err=True))
    server = LocalServer(repo, env, host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo(f"starting tritonserver on {repo} (log: {server.repo.parent}/.tritonserver-{http_port}.log)",
                   err=True)
        server.start(timeout)
        click.echo(f"ready: HTTP {server.http_url}  gRPC {server.grpc_url}  metrics {server.metrics_url}")
        # Supervision: a dead server is restarted, a model whose Python stub died is reloaded (health.py).
        while not stop.wait(SUPERVISE_EVERY_S):
            server.supervise(log=lambda m: click.echo(m, err=True), timeout=timeout)
        click.echo("stopping", err=True)
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _servable_repo(repo: str | None):
    """The repository to serve (one line and exit 2 when it is missing or has no weights), and the one stderr
    line when its graphs were exported with random or tiny weights."""
    from imgdiff_rt.triton.repo_check import check_servable, default_repo_dir, served_weights
    from imgdiff_rt.weights_report import weights_notice

    repo = check_servable(repo or default_repo_dir())
    served = {g: {"weights": kind} for g, kind in served_weights(repo).items() if kind in ("random-init", "tiny")}
    notice = weights_notice({"graphs": served})
    if notice:
        click.echo(notice, err=True)
    return repo
