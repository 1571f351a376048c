"""Options shared by the commands that run the pipeline (run, eval), and the Pipeline they build."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from imgdiff_rt.config.build import pipeline_from_config
from imgdiff_rt.config.options import BY_NAME, OPTIONS, SERVED_OPTIONS, Option
from imgdiff_rt.config.tree import PipelineConfig
from imgdiff_rt.errors import UsageError
from imgdiff_rt.extras import require_options
from imgdiff_rt.models.bundle import default_bundle_dir
from imgdiff_rt.weights_report import choose_detector, weights_notice


def _click_option(option: Option) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One declared option as ``click.option`` arguments: the library's declaration, spelt for Click."""
    decls = (option.cli_flag,) if option.flag is None or option.flag == option.name.replace("_", "-") \
        else (option.cli_flag, option.name)
    kwargs: dict[str, Any] = {"help": option.help}
    if option.kind == "flag":
        kwargs["is_flag"] = True
    elif option.kind == "boxes":
        kwargs["multiple"] = True
    else:
        kwargs["default"] = option.default
        kwargs["type"] = {"choice": click.Choice(option.choices) if option.choices else None, "int": int,
                          "float": float, "text": None, "path": click.Path(path_type=Path),
                          "file": click.Path(path_type=Path, dir_okay=False)}[option.kind]
        if kwargs["type"] is None:
            del kwargs["type"]
    if option.metavar:
        kwargs["metavar"] = option.metavar
    if option.show_default:
        kwargs["show_default"] = True
    if option.flag_value is not None:
        kwargs.update(is_flag=False, flag_value=option.flag_value)
    return decls, kwargs


#: The options of every command that runs the pipeline (run, eval, web), as ``click.option`` arguments: derived
#: from the library's declarations (``config.options.OPTIONS``), never restated.
PIPELINE_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = tuple(_click_option(o) for o in OPTIONS)


def pipeline_option_names() -> list[str]:
    """The ``build_pipeline`` parameter each table row sets (what Click names the option)."""
    return [click.Option(decls).name for decls, _ in PIPELINE_OPTIONS]


def detector_options(f: Callable) -> Callable:
    """Add every PIPELINE_OPTIONS row to a command; the command receives ``pipeline`` (built from them) instead,
    and the one-line fallback notice (or None) in ``click.get_current_context().meta[NOTICE_KEY]``."""
    for decls, kwargs in reversed(PIPELINE_OPTIONS):
        f = click.option(*decls, **kwargs)(f)
    names = pipeline_option_names()

    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        values = {k: kwargs.pop(k) for k in names}
        require_options(kwargs, models_run=False)  # the command's own options (--engine ray, --parquet)
        kwargs["pipeline"] = pipeline = build_pipeline(**values)
        fallback = fallback_notice(values["detector"], values["models"]) if values["backend"] != "triton" else None
        notices = (fallback, weights_notice(pipeline.weights()))
        click.get_current_context().meta[NOTICE_KEY] = "\n".join(n for n in notices if n) or None
        return f(**kwargs)

    return wrapper


#: where `detector_options` leaves the fallback notice for the command (CLI state, not the library's)
NOTICE_KEY = "imgdiff_rt.fallback_notice"


def fallback_notice(detector: str | None, models: Path | None) -> str | None:
    """The stderr line for a run that fell back to the pixel detector because no --detector was given and the
    bundle is absent, lacks a graph or has an untrained CLIP (None otherwise)."""
    return choose_detector(detector, models if models is not None else default_bundle_dir()).notice


def build_pipeline(**values: Any) -> Any:
    """The Pipeline the options describe (``fallback_notice`` says when it fell back to the pixel detector);
    with ``backend`` triton, the served pipeline that sends each pair to the server."""
    config = PipelineConfig.from_values(values)
    if config.placement.backend == "triton":
        return _served_pipeline(config)
    return pipeline_from_config(config, progress=_stderr_line)


def _stderr_line(message: str) -> None:
    click.echo(message, err=True)


def _served_pipeline(config: PipelineConfig):
    """--backend triton: every pair is one request to the server's imgdiff_pipeline, which runs this Pipeline
    on its own bundle; the options a request cannot set are the server's and are refused when given."""
    from imgdiff_rt.triton.served import ServedPipeline

    require_options({"backend": "triton"}, models_run=True)
    own = ("models", "url", "protocol", "ignore", "backend")
    fixed = [n for n in config.changed() if n not in SERVED_OPTIONS and n not in own]
    if fixed:
        flags = ", ".join(BY_NAME[n].cli_flag for n in fixed)
        raise UsageError(f"--backend triton: {flags} the server fixes (in `imgdiff-rt triton-repo`); a request sets "
                         f"only {', '.join(BY_NAME[n].cli_flag for n in SERVED_OPTIONS)}")
    options = {n: config.values[n] for n in SERVED_OPTIONS}
    place = config.placement
    return ServedPipeline(options, place.url, place.protocol, config.ignore, config.limits.max_pixels)


def _option_defaults() -> dict[str, Any]:
    """Each option's default as a command receives it."""
    return {o.name: (() if o.kind == "boxes" else o.default) for o in OPTIONS}
