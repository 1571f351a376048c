"""The hostile-input corpus, second half: model bundles (manifests of the wrong shape, paths leaving the bundle,
tampered graphs, pickles carrying code), JSON nested 100,000 deep, pipes where files are expected, and folders
imgdiff-rt did not make. Everything is built in tmp_path; every case must end in one `Error:` line (or the
documented record), run no code from the file and write nothing outside its output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.models.bundle import MANIFEST, SCHEMA

from helpers import ROOT, save, textured
from tests.contract.test_hostile_inputs import CORPUS_KINDS as IMAGE_AND_OPTION_KINDS

DEEP = "[" * 100_000 + "]" * 100_000


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bundle(tmp: Path, mutate=None, raw: bytes | None = None) -> Path:
    """A bundle folder with two (fake) graphs and a well-formed manifest, then ``mutate(manifest, root)``."""
    root = tmp / "bundle"
    (root / "onnx").mkdir(parents=True)
    entries = {}
    for spec, sizes in (("segmenter", {"imgsz": 64, "num_outputs": 37, "num_classes": 1}),
                        ("clip_image", {"image_size": 32, "embed_dim": 16})):
        data = f"not really {spec}".encode()
        (root / "onnx" / f"{spec}.fp32.onnx").write_bytes(data)
        entries[f"{spec}/onnx-fp32"] = {"spec": spec, "format": "onnx", "precision": "fp32",
                                        "file": f"onnx/{spec}.fp32.onnx", "sha256": _sha(data),
                                        "bytes": len(data), "sizes": sizes,
                                        "source": {"family": spec, "id": "x", "weights": "tiny"}}
    manifest = {"schema": SCHEMA, "entries": entries, "generation": {}, "tokenizers": {}, "torch": {}}
    if mutate is not None:
        manifest = mutate(manifest, root) or manifest
    (root / MANIFEST).write_bytes(raw if raw is not None else json.dumps(manifest).encode())
    return root


def _set(path: str, value):
    """A mutation setting manifest[a][b]... = value."""
    keys = path.split(".")

    def mutate(m, root):
        node = m
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return mutate


def _entry(field: str, value):
    return _set(f"entries.segmenter/onnx-fp32.{field}", value)


def _drop_sha(m, root):
    del m["entries"]["segmenter/onnx-fp32"]["sha256"]


def _symlink_out(m, root):
    outside = root.parent / "outside.onnx"
    outside.write_bytes(b"secret")
    link = root / "onnx" / "link.onnx"
    link.symlink_to(outside)
    m["entries"]["segmenter/onnx-fp32"]["file"] = "onnx/link.onnx"


def _tampered(m, root):
    (root / "onnx" / "segmenter.fp32.onnx").write_bytes(b"changed after export")


LEAVES = "leaves the bundle"
# (kind, how the bundle is made, what the one error line says)
MANIFEST_CORPUS = [
    ("manifest_deep_json", lambda t: _bundle(t, raw=DEEP.encode()), "nested too deeply"),
    ("manifest_is_list", lambda t: _bundle(t, raw=b"[]"), "not an object"),
    ("manifest_not_utf8", lambda t: _bundle(t, raw=b"\xff\xfe{}"), "not UTF-8"),
    ("manifest_truncated", lambda t: _bundle(t, raw=b'{"schema": "imgdiff-rt/bun'), "cannot be read"),
    ("schema_wrong", lambda t: _bundle(t, _set("schema", "other/v9")), "schema"),
    ("entries_is_list", lambda t: _bundle(t, _set("entries", [])), "'entries' is a JSON list"),
    ("entry_is_string", lambda t: _bundle(t, _set("entries.segmenter/onnx-fp32", "x")), "is not an object"),
    ("entry_without_sha256", lambda t: _bundle(t, _drop_sha), "has no 'sha256'"),
    ("entry_sha256_not_hex", lambda t: _bundle(t, _entry("sha256", "zz")), "64 hex digits"),
    ("entry_file_is_number", lambda t: _bundle(t, _entry("file", 7)), "has no 'file'"),
    ("entry_file_dotdot", lambda t: _bundle(t, _entry("file", "../../../../etc/passwd")), LEAVES),
    ("entry_file_absolute", lambda t: _bundle(t, _entry("file", "/etc/passwd")), "must be relative"),
    ("entry_file_symlink_out", lambda t: _bundle(t, _symlink_out), LEAVES),
    ("generation_path_dotdot", lambda t: _bundle(t, _set("generation.blip", {"path": "../../.."})), LEAVES),
    ("tokenizer_path_absolute", lambda t: _bundle(t, _set("tokenizers.clip", {"path": "/tmp"})), "relative"),
    ("torch_file_dotdot", lambda t: _bundle(t, _set("torch.segmenter", {"file": "../x.pt"})), LEAVES),
    ("section_is_list", lambda t: _bundle(t, _set("generation", [])), "'generation' is not an object"),
    ("section_record_is_list", lambda t: _bundle(t, _set("tokenizers.clip", [1])), "is not an object"),
]


def _one_line_error(res) -> str:
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()  # progress lines (export) may come first; the error is one line
    errors = [x for x in lines if "Error" in x]
    assert errors == lines[-1:] and lines[-1].startswith("Error: "), res.stderr
    return lines[-1]


@pytest.fixture()
def pair(tmp_path):
    return (save(tmp_path / "l.png", textured(120, 160)), save(tmp_path / "r.png", textured(120, 160, seed=3)))


@pytest.mark.parametrize("command", ["run", "export-check", "triton-repo"])
@pytest.mark.parametrize("kind,make,problem", MANIFEST_CORPUS, ids=[k for k, _, _ in MANIFEST_CORPUS])
def test_hostile_manifest(tmp_path, pair, command, kind, make, problem):
    bundle = make(tmp_path)
    repo = tmp_path / "repo"
    args = {"run": ["run", str(pair[0]), str(pair[1]), "--models", str(bundle), "--detector", "segment"],
            "export-check": ["export", "--check", str(bundle)],
            "triton-repo": ["triton-repo", "--bundle", str(bundle), "--out", str(repo)]}[command]
    before = sorted(str(p) for p in tmp_path.parent.rglob("*"))
    line = _one_line_error(CliRunner().invoke(cli, args))
    assert problem in line, line
    assert not repo.exists()
    assert sorted(str(p) for p in tmp_path.parent.rglob("*")) == before  # nothing written anywhere


def test_tampered_graph_is_refused_on_first_use_and_checked_once(tmp_path, pair, monkeypatch):
    """`run` verifies a graph's sha256 before ONNX Runtime sees it, and remembers a verified file."""
    from imgdiff_rt.models import bundle as B
    from imgdiff_rt.models import manifest_safety as S

    root = _bundle(tmp_path, _tampered)
    line = _one_line_error(CliRunner().invoke(cli, ["run", str(pair[0]), str(pair[1]), "--models", str(root),
                                                    "--detector", "segment"]))
    assert "does not match the sha256" in line and "segmenter" in line
    good = _bundle(tmp_path / "ok")
    calls = []
    real = S.sha256_file
    monkeypatch.setattr(S, "sha256_file", lambda p: calls.append(p) or real(p))
    S._verified.clear()
    bundle = B.Bundle.load(good)
    assert bundle.path("segmenter") == (good / "onnx" / "segmenter.fp32.onnx").resolve()
    S._verified.clear()  # a new process: the on-disk cache answers
    bundle.path("segmenter")
    assert len(calls) == 1
    os.utime(good / "onnx" / "segmenter.fp32.onnx", ns=(1, 1))  # touched: hashed again
    bundle.path("segmenter")
    assert len(calls) == 2


def test_triton_repo_refuses_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    line = _one_line_error(CliRunner().invoke(cli, ["triton-repo", "--no-weights", "--out", str(mine)]))
    assert "is not a Triton model repository imgdiff-rt made" in line
    assert (mine / "holiday.jpg").read_bytes() == b"precious" and len(list(mine.iterdir())) == 1
    repo = tmp_path / "repo"
    for _ in range(2):  # a repository it made is replaced as a whole
        res = CliRunner().invoke(cli, ["triton-repo", "--no-weights", "--out", str(repo)])
        assert res.exit_code == 0, res.output
    assert (repo / ".imgdiff-rt-made").is_file() and (repo / "filter" / "config.pbtxt").is_file()


def test_serve_env_dir_that_is_not_a_server_environment_is_never_deleted(tmp_path):
    from imgdiff_rt.errors import ServerEnvError
    from imgdiff_rt.triton.server import ensure_server_env

    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ServerEnvError, match="is not a server environment imgdiff-rt made"):
        ensure_server_env(mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    shutil.copytree(ROOT / "triton_models" / "preprocess", tmp_path / "repo" / "preprocess")  # a servable repo
    line = _one_line_error(CliRunner().invoke(cli, ["serve", "--repo", str(tmp_path / "repo"),
                                                    "--env-dir", str(mine)]))
    assert "is not a server environment" in line and (mine / "thesis.tex").exists()


def _evil_pickle(path: Path, marker: Path) -> Path:
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Payload()}, path)
    return path


def test_segmenter_checkpoint_with_code_is_refused_not_run(tmp_path, monkeypatch):
    marker = tmp_path / "PAYLOAD-RAN"
    evil = _evil_pickle(tmp_path / "evil.pt", marker)
    res = CliRunner().invoke(cli, ["export", "--segmenter", str(evil), "--clip", "none", "--captioner", "none",
                                   "--out", str(tmp_path / "b")])  # offline CLIP/BLIP would be refused first
    line = _one_line_error(res)
    assert "cannot be loaded safely" in line and not marker.exists()
    assert not (tmp_path / "b").exists()


def test_torch_backend_refuses_a_state_dict_with_code_in_one_line(tmp_path):
    from imgdiff_rt.errors import ModelError
    from imgdiff_rt.runtime.backends.torch_backend import _load_segmenter

    marker = tmp_path / "PAYLOAD-RAN"
    evil = _evil_pickle(tmp_path / "state_dict.pt", marker)
    with pytest.raises(ModelError) as info:
        _load_segmenter(str(evil), 1, "FastSAM-s.pt", True)
    assert "refused by the safe loader" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


# ---- JSON nested 100,000 deep and pipes where files are expected --------------------------------------------
def test_deep_json_truth_file_is_one_line(tmp_path, pair):
    (tmp_path / "truth.json").write_text(DEEP)
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"id": "a", "left": "l.png", "right": "r.png",
                                                      "truth": "truth.json"}) + "\n")
    line = _one_line_error(CliRunner().invoke(cli, ["eval", "--pairs", str(tmp_path / "pairs.jsonl")]))
    assert "nested too deeply" in line and "RecursionError" not in line


def test_deep_json_pairs_line_is_a_failed_pair(tmp_path, pair):
    (tmp_path / "pairs.jsonl").write_text(DEEP + "\n" + json.dumps({"id": "ok", "left": "l.png",
                                                                     "right": "r.png"}) + "\n")
    res = CliRunner().invoke(cli, ["run", "--pairs", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    rows = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert any("malformed pairs line" in (r.get("error") or "") for r in rows)


@pytest.mark.parametrize("command", ["run", "eval"])
def test_pairs_file_that_is_a_fifo_does_not_hang(tmp_path, command):
    os.mkfifo(tmp_path / "pairs.jsonl")
    args = ["run", "--pairs", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "o")] if command == "run" \
        else ["eval", "--pairs", str(tmp_path / "pairs.jsonl")]
    line = _one_line_error(CliRunner().invoke(cli, args))
    assert "not a regular file" in line and not (tmp_path / "o").exists()


def test_empty_models_folder_says_the_pixel_detector_ran(tmp_path, pair):
    (tmp_path / "models").mkdir()
    res = CliRunner().invoke(cli, ["run", str(pair[0]), str(pair[1]), "--models", str(tmp_path / "models")])
    assert res.exit_code == 0
    assert f"no model bundle at {tmp_path / 'models'}" in res.stderr and "pixel detector ran" in res.stderr


def test_onnx_runtime_telemetry_is_disabled(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from imgdiff_rt.runtime.backends.onnx_backend import ort_session

    calls = []
    monkeypatch.setattr(ort, "disable_telemetry_events", lambda: calls.append(1))
    with pytest.raises(Exception):
        ort_session(tmp_path / "missing.onnx")
    assert calls


def test_synthetic_tokenizers_leave_no_temporary_folder(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import tempfile

    from imgdiff_rt.torch_models import tokenizers as hf_tokenizers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    bert = hf_tokenizers.synthetic_bert_tokenizer(128, 0, 102 % 128, 30 % 128)
    clip = hf_tokenizers.synthetic_clip_tokenizer(128)
    assert bert("tok5")["input_ids"] and clip("tok5")["input_ids"]
    assert not list(tmp_path.glob("imgdiff-rt-*-tok-*"))


#: every kind of hostile input the two corpus files hold (README "Bad input" quotes this number)
CORPUS_KINDS = (IMAGE_AND_OPTION_KINDS + len(MANIFEST_CORPUS)
                + 10)  # this file's single cases: tampered graph, 2 foreign folders, 2 pickles with code,
#                        deep truth file, deep pairs line, FIFO pairs file (run, eval), empty --models folder


def test_corpus_size():
    assert CORPUS_KINDS >= 60
    print(f"\nhostile-input corpus: {CORPUS_KINDS} kinds")
