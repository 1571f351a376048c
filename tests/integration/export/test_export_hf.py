"""Every registered spec: tiny model -> ONNX -> parity against PyTorch; captioners: greedy ids equal; a parity
miss or a wrong encoder is a typed error. The Hugging Face loaders: the tiny models are labelled and
reproducible, their synthetic tokenizers put their special tokens at the config's ids, missing weights offline
and LLaVA's random init are refused with the way out, and the real-size configs are the published ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgdiff_rt.errors import ParityError, UsageError, WeightsUnavailableError
from imgdiff_rt.torch_models import hf as hf_models
from imgdiff_rt.export.captioner_export import caption_parity, greedy_ids
from imgdiff_rt.export.checks import caption_parity_of, check_parity
from imgdiff_rt.export.onnx_export import export_onnx
from imgdiff_rt.models.onnx_file import onnx_layout, read_metadata

from helpers import PARITY_CASES, tiny_hf


@pytest.mark.parametrize("name", sorted(PARITY_CASES))
def test_export_and_parity(name, tmp_path):
    spec, module, check_dims = PARITY_CASES[name]()
    path = export_onnx(module, spec, tmp_path / f"{name}.onnx", source="tiny test")
    shapes, dtypes = onnx_layout(path)
    assert list(shapes) == spec.input_names + spec.output_names
    for t in (*spec.inputs, *spec.outputs):
        assert dtypes[t.name] == t.dtype
        assert shapes[t.name][0] == "batch"
    meta = read_metadata(path)
    assert meta["spec"] == name and meta["source"] == "tiny test" and meta["version"]
    import onnx

    assert onnx.load(str(path)).opset_import[0].version >= 17
    report = check_parity(path, module, spec, batch=3, dims=check_dims)  # export used batch 2
    assert report["ok"] and set(report["outputs"]) == set(spec.output_names)


def test_parity_miss_is_a_typed_error_listing_each_output(tmp_path):
    spec, module, _ = tiny_hf("clip", "clip_image")
    path = export_onnx(module, spec, tmp_path / "clip.onnx", source="tiny")
    torch.manual_seed(1)
    other = hf_models.ClipImageGraph(_other_clip()).eval()
    with pytest.raises(ParityError, match="image_embeds.*max_abs") as info:
        check_parity(path, other, spec)
    assert info.value.report["image_embeds"]["ok"] is False


def _other_clip():
    from transformers import CLIPConfig, CLIPModel

    return CLIPModel(CLIPConfig(**hf_models.TINY_CLIP))  # different random weights (seed 1)


@pytest.mark.parametrize("family, spec_name", [("blip", "blip_vision"), ("llava", "llava_vision")])
def test_caption_parity_with_exported_encoder(family, spec_name, tmp_path):
    loader = {"blip": hf_models.load_blip, "llava": hf_models.load_llava}[family]
    loaded = loader(tiny=True)
    spec, module = hf_models.graphs_for(loaded)[0]
    path = export_onnx(module, spec, tmp_path / "enc.onnx", source="tiny")
    result = caption_parity_of(loaded, spec, path, max_new_tokens=8)
    assert result["exact"] and result["token_agreement"] == 1.0
    assert result["distinct_captions"] == 2, "tiny captioners must hear the image, or parity proves nothing"
    ids = greedy_ids(loaded, spec.dummy_inputs(2, rng=0)["pixel_values"], 8)
    assert len(ids) == 2 and all(len(row) >= 1 for row in ids)


def test_caption_parity_fails_on_a_wrong_encoder():
    loaded = hf_models.load_blip(tiny=True)
    spec = hf_models.graphs_for(loaded)[0][0]
    rng = np.random.default_rng(0)
    noise = lambda x: rng.standard_normal((len(x), 17, 32)).astype(np.float32) * 5  # noqa: E731
    with pytest.raises(ParityError, match="greedy captions"):
        caption_parity(loaded, spec, noise, max_new_tokens=8)


def test_synthetic_tokenizers_put_specials_at_config_ids():
    blip = hf_models.load_blip(tiny=True)
    tc = blip.model.config.text_config
    tok = blip.tokenizer
    assert blip.tokenizer_synthetic
    assert (tok.pad_token_id, tok.sep_token_id, tok.bos_token_id) == (tc.pad_token_id, tc.sep_token_id,
                                                                      tc.bos_token_id)
    assert len(tok) == tc.vocab_size
    clip = hf_models.load_clip(tiny=True)
    ids = clip.tokenizer("a b").input_ids
    vocab = clip.model.config.text_config.vocab_size
    assert (ids[0], ids[-1]) == (vocab - 2, vocab - 1)  # <|startoftext|>, <|endoftext|> as in real CLIP


def test_random_weights_are_labelled_and_reproducible():
    a, b = hf_models.load_clip(tiny=True), hf_models.load_clip(tiny=True)
    assert a.weights == "tiny" and "tiny" in a.source_label and a.source_label != hf_models.DEFAULT_CLIP
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_missing_weights_offline_name_the_way_out(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="--random-init"):
        hf_models.load_clip(str(tmp_path / "no-such-model"))
    with pytest.raises(WeightsUnavailableError, match="--captioner blip:"):
        hf_models.load_blip("nobody/no-such-blip-model")


def test_llava_random_init_is_refused_with_a_reason():
    with pytest.raises(UsageError, match="random_init is not offered for LLaVA.*use tiny") as caught:
        hf_models.load_llava(random_init=True)
    assert caught.value.parameter == "random_init"  # the export command spells it --random-init


def test_real_size_configs_are_the_published_ones():
    from transformers import BlipConfig, CLIPConfig

    clip = CLIPConfig(**hf_models.CLIP_VIT_B32)
    assert (clip.vision_config.patch_size, clip.vision_config.image_size, clip.projection_dim) == (32, 224, 512)
    assert (clip.text_config.vocab_size, clip.text_config.max_position_embeddings) == (49408, 77)
    blip = BlipConfig(**hf_models.BLIP_BASE)
    assert (blip.vision_config.image_size, blip.vision_config.patch_size) == (384, 16)
    assert blip.vision_config.initializer_range == 1e-10  # the hub value; random init overrides it to 0.02
    assert (blip.text_config.vocab_size, blip.text_config.bos_token_id, blip.text_config.sep_token_id) == (
        30524, 30522, 102)


@pytest.mark.slow
def test_real_size_random_init_clip_and_blip_export_with_parity(tmp_path):
    for loaded in (hf_models.load_clip(random_init=True), hf_models.load_blip(random_init=True)):
        if loaded.family == "blip":
            assert loaded.model.config.vision_config.initializer_range == 0.02
        for spec, module in hf_models.graphs_for(loaded):
            path = export_onnx(module, spec, tmp_path / f"{spec.name}.onnx", source=loaded.source_label)
            assert check_parity(path, module, spec, batch=2)["ok"]
