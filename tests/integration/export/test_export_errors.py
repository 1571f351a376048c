"""Export never answers silently wrong: incomplete model folders and missing weights are named at once, before
any work; TensorRT is checked first; each real tokenizer round-trips a sentence at export and --check."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.export.preflight import SAMPLE_SENTENCE


def export(*args):
    return CliRunner().invoke(cli, ["export", *[str(a) for a in args]])


def one_error_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    return lines[-1]


@pytest.fixture(scope="module")
def tiny_clip_weights_only(tmp_path_factory):
    """`CLIPModel(config).save_pretrained(dir)`: config and weights, no tokenizer, no processor."""
    from transformers import CLIPConfig, CLIPModel

    from imgdiff_rt.torch_models.hf import TINY_CLIP

    folder = tmp_path_factory.mktemp("clip-weights-only")
    CLIPModel(CLIPConfig(**TINY_CLIP)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_blip_folder(tmp_path_factory):
    """A complete local BLIP folder (tiny weights) with a real WordPiece tokenizer and its image processor."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    from imgdiff_rt.torch_models.hf import TINY_BLIP

    folder = tmp_path_factory.mktemp("blip-complete")
    cfg = BlipConfig(**{**TINY_BLIP, "vision_config": {**TINY_BLIP["vision_config"], "initializer_range": 0.02}})
    BlipForConditionalGeneration(cfg).save_pretrained(str(folder))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(SAMPLE_SENTENCE.split()))]
    vocab += [f"word{i}" for i in range(len(vocab), 126)] + ["[DEC]", "word127"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True, bos_token="[DEC]").save_pretrained(str(folder))
    BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def test_folder_without_tokenizer_and_processor_fails_naming_every_missing_file(tiny_clip_weights_only, tmp_path):
    res = export("--clip", tiny_clip_weights_only, "--segmenter", "none", "--captioner", "none",
                 "--out", tmp_path / "bundle")
    assert res.exit_code == 2
    line = one_error_line(res)
    assert "tokenizer.json or vocab.json + merges.txt" in line and "preprocessor_config.json" in line
    assert not (tmp_path / "bundle").exists()


def test_offline_default_export_lists_every_missing_weight_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.chdir(tmp_path)  # no FastSAM-s.pt here
    started = time.monotonic()
    res = export("--out", tmp_path / "bundle")
    assert time.monotonic() - started < 20
    assert res.exit_code == 2
    line = one_error_line(res)
    for name in ("segmenter checkpoint 'FastSAM-s.pt'", "clip 'openai/clip-vit-base-patch32'",
                 "blip 'Salesforce/blip-image-captioning-base'"):
        assert name in line, line


def test_unreachable_hub_is_found_in_seconds_and_said(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    started = time.monotonic()
    res = export("--segmenter", "none", "--captioner", "none", "--out", tmp_path / "bundle")
    assert time.monotonic() - started < 20 and res.exit_code == 2
    assert "the model hub cannot be reached" in one_error_line(res)


def test_engine_export_checks_tensorrt_before_any_work(tmp_path):
    from imgdiff_rt.errors import TensorRTUnavailableError
    from imgdiff_rt.runtime.tensorrt_engines import gpu_identity, import_tensorrt

    try:
        import_tensorrt(), gpu_identity()
        pytest.skip("TensorRT and a GPU are present here")
    except TensorRTUnavailableError:
        pass
    res = export("--tiny", "--random-init", "--clip", "none", "--captioner", "none", "--format", "engine",
                 "--out", tmp_path / "bundle")
    assert res.exit_code == 1
    assert "TensorRT" in one_error_line(res) or "GPU" in one_error_line(res)
    assert "segmenter:" not in res.stderr  # nothing was built first


def test_real_tokenizer_round_trips_at_export_and_check(tiny_blip_folder, tmp_path):
    bundle = tmp_path / "bundle"
    res = export("--segmenter", "none", "--clip", "none", "--captioner", f"blip:{tiny_blip_folder}",
                 "--out", bundle)
    assert res.exit_code == 0, res.output
    generation = json.loads((bundle / "manifest.json").read_text())["generation"]["blip"]
    trip = generation["tokenizer_round_trip"]
    assert trip["ok"] and trip["sentence"] == SAMPLE_SENTENCE and generation["tokenizer_synthetic"] is False
    res = export("--check", bundle, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tokenizer/blip"]["round_trip"]["ok"]
    # a tokenizer broken after export is caught by --check
    (bundle / "blip" / "tokenizer.json").unlink(missing_ok=True)
    (bundle / "blip" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    res = export("--check", bundle)
    assert res.exit_code == 1 and "tokenizer/blip" in one_error_line(res)


def test_synthetic_tokenizers_are_recorded_as_such(tiny_runtime_bundle):
    tokenizers = json.loads((tiny_runtime_bundle / "manifest.json").read_text())["tokenizers"]["clip"]
    assert tokenizers["synthetic"] is True and "skipped" in tokenizers["tokenizer_round_trip"]


def test_reexport_with_another_captioner_merges_both_into_the_bundle(tmp_path):
    bundle = tmp_path / "bundle"
    common = ["--tiny", "--random-init", "--segmenter", "none", "--clip", "none", "--out", bundle]
    assert export(*common, "--captioner", "blip").exit_code == 0
    res = export(*common, "--captioner", "llava")
    assert res.exit_code == 0, res.output
    assert "blip: kept from the previous bundle" in res.stderr
    header, rule, *rows = res.stdout.split("\nnext: ")[0].splitlines()  # the closing table, then the next command
    assert header.split() == ["graph", "format", "precision", "size", "parity", "weights"]
    assert {r.split()[0] for r in rows} == {"blip_vision", "llava_vision"} and all(r.split()[-1] == "tiny" for r in rows)
    assert f"next: imgdiff-rt run LEFT RIGHT --models {bundle} --captioner blip" in res.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {"blip_vision/onnx-fp32", "llava_vision/onnx-fp32"} <= set(manifest["entries"])
    assert set(manifest["generation"]) == {"blip", "llava"}
    assert (bundle / manifest["entries"]["blip_vision/onnx-fp32"]["file"]).is_file()
    assert (bundle / manifest["generation"]["blip"]["path"] / "config.json").is_file()


def test_json_stdout_is_only_json_even_with_library_banners(tmp_path):
    """Ultralytics prints a settings banner on first use and `Overriding model.yaml` on every build: in a fresh
    process (its handlers bound to the real stdout) none of it may reach stdout."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh-yolo-config")}
    code = "from imgdiff_rt.cli.main import cli; cli()"
    done = subprocess.run([sys.executable, "-c", code, "export", "--tiny", "--random-init", "--clip", "none",
                           "--captioner", "none", "--out", str(tmp_path / "bundle"), "--json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads(done.stdout)
    assert "segmenter/onnx-fp32" in manifest["entries"]
    assert "next: imgdiff-rt run" in done.stderr
