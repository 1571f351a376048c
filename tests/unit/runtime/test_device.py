"""--device cpu|cuda[:N] and --half on the commands that run models: mapped to ONNX Runtime providers and the
PyTorch device, checked before any work."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imgdiff_rt.cli.main import cli
from imgdiff_rt.cli.options import build_pipeline
from imgdiff_rt.runtime.device import Device, parse_device

from helpers import LEFT, RIGHT

PIXEL = dict(detector="pixel", captioner="none", align="none", max_regions=10, min_area=None, threshold=None,
             metric="lab", blur_sigma=1.5, merge_gap=0.02, max_pixels=1_000_000)


@pytest.mark.parametrize("text,device,providers,torch_device", [
    ("cpu", Device("cpu"), ["CPUExecutionProvider"], "cpu"),
    ("cuda", Device("cuda", 0), [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"], "cuda:0"),
    ("CUDA:1", Device("cuda", 1), [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"], "cuda:1"),
])
def test_device_maps_to_providers_and_torch_device(text, device, providers, torch_device):
    parsed = parse_device(text)
    assert parsed == device and parsed.ort_providers == providers and parsed.torch_device == torch_device


def test_cpu_device_and_half_reach_the_pipeline():
    pipe = build_pipeline(**PIXEL, device="cpu")
    assert pipe.session_options["providers"] == ["CPUExecutionProvider"]
    assert pipe.caption_options["device"] == "cpu"
    assert build_pipeline(**PIXEL, half=True).precision == "fp16"


def _cuda_here() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("args,message", [
    (["--device", "tpu"], "use cpu, cuda or cuda:N"),
    (["--half", "--precision", "int8"], "half is precision fp16; it contradicts precision int8"),
    (["--device", "cpu", "--backend", "tensorrt"], "TensorRT engines run on a CUDA GPU"),
])
def test_device_usage_errors_are_one_line(args, message):
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), *args])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr


@pytest.mark.skipif(_cuda_here(), reason="a CUDA GPU is present: cuda is a valid device here")
def test_cuda_without_a_gpu_is_one_line_not_a_traceback():
    res = CliRunner().invoke(cli, ["run", str(LEFT), str(RIGHT), "--device", "cuda"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda:0: no CUDA GPU is visible here" in lines[0], res.stderr


@pytest.mark.parametrize("args,message", [
    (["--half"], "precision 'fp16' is built as TensorRT engines only"),  # --half is fp16: needs --format engine
    (["--half", "--precision", "int8"], "half is precision fp16; it contradicts precision int8"),
])
def test_export_half_is_the_fp16_alias(tmp_path, args, message):
    res = CliRunner().invoke(cli, ["export", "--tiny", "--random-init", "--out", str(tmp_path / "b"), *args])
    assert res.exit_code == 2
    assert message in res.stderr.strip().splitlines()[-1], res.stderr


@pytest.mark.parametrize("command,args", [
    ("export", ["--tiny", "--random-init", "--segmenter", "none", "--captioner", "none"]),
    ("bench", ["--backends", "onnx", "--stages", "clip", "--no-plots", "--no-peak", "--cli-runs", "0"]),
])
@pytest.mark.parametrize("device,message", [
    ("bogus", "--device 'bogus': use cpu, cuda or cuda:N"),
    pytest.param("cuda", "--device cuda:0: no CUDA GPU is visible here", marks=pytest.mark.skipif(
        _cuda_here(), reason="a CUDA GPU is present: cuda is a valid device here")),
])
def test_export_and_bench_refuse_a_device_in_one_line_before_any_work(tmp_path, command, args, device, message):
    out = tmp_path / "out"
    where = ["--out", str(out)] + (["--models", str(tmp_path / "no-bundle")] if command == "bench" else [])
    res = CliRunner().invoke(cli, [command, *args, *where, "--device", device])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr
    assert not out.exists()  # refused before anything was written


def test_bench_refuses_cuda_for_the_cpu_only_eager_reference():
    from imgdiff_rt.bench.suite import BenchConfig
    from imgdiff_rt.errors import UsageError

    with pytest.raises(UsageError) as refused:
        BenchConfig(models="unused", backends=("torch",), device="cuda").placement()
    assert refused.value.parameter == "device"
