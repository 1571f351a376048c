"""The Triton repository generator without a server: the committed triton_models/ is exactly what the generator
writes, every config parses as Triton's ModelConfig and matches the specs, and the Dockerfile's key parts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imgdiff_rt.models.specs import SPECS
from imgdiff_rt.triton.config import NUMPY_DTYPES, Options, render
from imgdiff_rt.triton.glue import GLUE
from imgdiff_rt.triton.repository import write_repository

from helpers import ROOT

COMMITTED = ROOT / "triton_models"


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_committed_repository_is_what_the_generator_writes(tmp_path):
    write_repository(tmp_path / "repo", None, weights=False)
    fresh, committed = _files(tmp_path / "repo"), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "regenerate: imgdiff-rt triton-repo --no-weights --out triton_models/"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} differs; regenerate with imgdiff-rt triton-repo --no-weights"


def _parse(path: Path):
    text_format = pytest.importorskip("google.protobuf.text_format")
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    return text_format.Parse(path.read_text(), pb.ModelConfig())


@pytest.mark.parametrize("platform", ["onnxruntime", "tensorrt", "python"])
def test_configs_parse_and_follow_the_specs(tmp_path, platform):
    write_repository(tmp_path / "repo", None, platform=platform, weights=False)
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from imgdiff_rt.triton.repository import default_specs

    for name, spec in default_specs().items():
        cfg = _parse(tmp_path / "repo" / name / "config.pbtxt")
        assert cfg.name == name and cfg.max_batch_size >= spec.max_batch
        assert [t.name for t in cfg.input] == spec.input_names
        assert [t.name for t in cfg.output] == spec.output_names
        for t, row in zip((*spec.inputs, *spec.outputs), (*cfg.input, *cfg.output)):
            assert NUMPY_DTYPES[pb.DataType.Name(row.data_type)] == t.dtype
            assert list(row.dims) == [d if isinstance(d, int) else -1 for d in t.dims[1:]]
        assert cfg.dynamic_batching.max_queue_delay_microseconds > 0
        kind = pb.ModelInstanceGroup.Kind.Name(cfg.instance_group[0].kind)
        assert kind == ("KIND_CPU" if platform == "python" else "KIND_GPU")
        assert (cfg.backend == "python") == (platform == "python")
    for name, (inputs, outputs) in GLUE.items():
        if name == "imgdiff_caption":
            continue
        cfg = _parse(tmp_path / "repo" / name / "config.pbtxt")
        assert cfg.max_batch_size == 0 and cfg.backend == "python"
        assert [t.name for t in cfg.input] == [t.name for t in inputs]
        assert (tmp_path / "repo" / name / "1" / "model.py").is_file()
    ens = _parse(tmp_path / "repo" / "imgdiff_detect" / "config.pbtxt")
    steps = [s.model_name for s in ens.ensemble_scheduling.step]
    assert steps == ["preprocess", "segmenter", "proposals", "clip_image", "filter"]
    # every tensor an ensemble step consumes is produced by an earlier step or is an ensemble input
    have = {t.name for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        assert set(step.input_map.values()) <= have, step.model_name
        have |= set(step.output_map.values())
    assert {t.name for t in ens.output} <= have


def test_every_registered_graph_has_a_default_config():
    from imgdiff_rt.triton.repository import GRAPHS, default_specs

    assert set(GRAPHS) == set(SPECS)
    assert set(default_specs()) <= set(SPECS)


def test_render_quotes_and_enums():
    from imgdiff_rt.triton.config import Enum

    text = render({"name": 'a"b', "kind": Enum("KIND_CPU"), "dims": [1, -1], "flag": True,
                   "m": ({"key": "k", "value": "v"},)})
    assert 'name: "a\\"b"' in text and "kind: KIND_CPU" in text and "dims: [ 1, -1 ]" in text
    assert "flag: true" in text and 'm {\n  key: "k"' in text


def test_unknown_platform_is_a_usage_error():
    from imgdiff_rt.errors import UsageError

    with pytest.raises(UsageError):
        Options(platform="tensorflow")


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    rows = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_dockerfile_key_instructions():
    rows = _instructions((ROOT / "Dockerfile").read_text())
    words = [w for w, _ in rows]
    assert all(w in {"ARG", "FROM", "ENV", "WORKDIR", "COPY", "RUN", "USER", "EXPOSE", "HEALTHCHECK",
                     "ENTRYPOINT", "CMD", "LABEL"} for w in words), words
    base = dict(rows)["FROM"]
    args = {r.split("=")[0]: r.split("=", 1)[1] for w, r in rows if w == "ARG" and "=" in r}
    assert base.startswith("nvcr.io/nvidia/tritonserver:") and args["TRITON_TAG"].endswith("-py3")
    assert any(w == "RUN" and "[" in r and "gpu" in r and "pip install" in r for w, r in rows)
    users = [r for w, r in rows if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert any(w == "HEALTHCHECK" and "imgdiff_rt.triton.health" in r for w, r in rows)  # sees dead stubs
    entry = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert "imgdiff_rt.triton.engines" in entry and re.search(r"^exec tritonserver ", entry, re.M)
    assert (ROOT / "docker" / "entrypoint.sh").stat().st_mode & 0o111


def test_engine_builder_finds_missing_engines(tmp_path):
    from imgdiff_rt.triton.engines import missing_engines

    (tmp_path / "segmenter" / "1").mkdir(parents=True)
    (tmp_path / "segmenter" / "spec.json").write_text("{}")
    (tmp_path / "segmenter" / "model.onnx").write_bytes(b"x")
    assert [p.name for p in missing_engines(tmp_path)] == ["segmenter"]
    (tmp_path / "segmenter" / "1" / "model.plan").write_bytes(b"x")
    assert missing_engines(tmp_path) == []


def test_serve_advice_never_overwrites_the_committed_repository():
    """`serve --repo triton_models` (configs only): the advice writes to the default folder, never `--out` over
    an existing one (triton-repo replaces its target whole)."""
    from imgdiff_rt.errors import UsageError
    from imgdiff_rt.triton.repo_check import check_servable, default_repo_dir

    with pytest.raises(UsageError) as e:
        check_servable(ROOT / "triton_models")
    assert "--out" not in str(e.value) and str(default_repo_dir()) in str(e.value)


def test_serve_help_names_where_the_side_environment_goes():
    from imgdiff_rt.cli.triton_cmd import serve

    env_dir = next(p for p in serve.params if p.name == "env_dir")
    assert "$IMGDIFF_RT_HOME/triton-env-*" in env_dir.help
