"""The CLI's model options (backend, threads, beams, new tokens) reach the pipeline it builds on the tiny
random-init bundle: as session options in process, and with each request under `--backend triton`."""


def test_model_options_reach_the_pipeline(tiny_runtime_bundle):
    from imgdiff_rt.cli.options import build_pipeline

    common = dict(detector="segment", captioner="none", align=False, max_regions=10, min_area=None,
                  threshold=None, metric="lab", blur_sigma=1.5, merge_gap=0.02, max_pixels=10**6,
                  models=tiny_runtime_bundle, beams=3, max_new_tokens=9)
    p = build_pipeline(**common, backend="onnx", threads=2)
    assert p._session_opts() == {"threads": 2}
    assert p.caption_options == {"beams": 3, "max_new_tokens": 9}
    # --backend triton: the options travel with each pair's request to the server's imgdiff_pipeline
    served = build_pipeline(**common, backend="triton", url="h:1", protocol="grpc")
    assert (served.url, served.protocol) == ("h:1", "grpc")
    assert served.options["beams"] == 3 and served.options["max_new_tokens"] == 9
    assert served.options["detector"] == "segment" and served.options["max_pixels"] == 10**6
