"""CLIP, BLIP and LLaVA through transformers: load by id/folder, or build real-size/tiny configs with random
weights; thin wrapper modules whose forward takes and returns exactly a spec's tensors.

The model hub is unreachable in CI and in offline sessions, so the real configurations of the default
models are written here from their published ``config.json`` (see ``CLIP_VIT_B32`` and ``BLIP_BASE``):
``--random-init`` builds those exact architectures with random weights, ``--tiny`` builds small configs of
the same classes. Neither is ever presented as the real model: ``LoadedModel.weights`` says which it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imgdiff_rt.errors import UsageError, WeightsUnavailableError
from imgdiff_rt.models.specs import DEFAULT_SOURCES, ModelSpec, get_spec

DEFAULT_CLIP, DEFAULT_BLIP, DEFAULT_LLAVA = (DEFAULT_SOURCES[f] for f in ("clip", "blip", "llava"))

# Published config values of openai/clip-vit-base-patch32 (config.json on the hub), written out because
# the hub cannot be reached offline. eos_token_id=2 is the hub's legacy value: CLIP then pools the text at
# argmax(input_ids), i.e. at <|endoftext|> (49407), the largest id.
CLIP_VIT_B32 = {
    "projection_dim": 512,
    "logit_scale_init_value": 2.6592,
    "text_config": dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                        num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu",
                        layer_norm_eps=1e-5, projection_dim=512, bos_token_id=0, eos_token_id=2,
                        pad_token_id=1),
    "vision_config": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          image_size=224, patch_size=32, num_channels=3, hidden_act="quick_gelu",
                          layer_norm_eps=1e-5, projection_dim=512),
}
CLIP_TOKENS = {"bos": 49406, "eos": 49407}  # <|startoftext|>, <|endoftext|> in the real tokenizer

# Published config values of Salesforce/blip-image-captioning-base. Its vision initializer_range is 1e-10,
# harmless for pretrained weights but with random init every image embeds alike; random init uses 0.02.
BLIP_BASE = {
    "projection_dim": 512,
    "image_text_hidden_size": 256,
    "text_config": dict(vocab_size=30524, hidden_size=768, encoder_hidden_size=768, intermediate_size=3072,
                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=512,
                        hidden_act="gelu", layer_norm_eps=1e-12, bos_token_id=30522, eos_token_id=2,
                        pad_token_id=0, sep_token_id=102),
    "vision_config": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          image_size=384, patch_size=16, hidden_act="gelu", layer_norm_eps=1e-5,
                          initializer_range=1e-10),
}

# --tiny: the same classes, small enough to export and check in seconds.
_TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8)
TINY_CLIP = {
    "projection_dim": 16,
    "text_config": dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=2,
                        pad_token_id=1),
    "vision_config": dict(_TINY_VISION, hidden_act="quick_gelu"),
}
TINY_BLIP = {
    "projection_dim": 16,
    "image_text_hidden_size": 16,
    "text_config": dict(vocab_size=128, hidden_size=32, encoder_hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                        bos_token_id=126, eos_token_id=2, pad_token_id=0, sep_token_id=3,
                        # at 0.02 a 32-wide random decoder barely hears the image (every caption alike),
                        # which would make the greedy-caption parity check vacuous
                        initializer_range=0.2),
    "vision_config": dict(_TINY_VISION),
}
TINY_LLAVA = {
    "vision_config": dict(_TINY_VISION, model_type="clip_vision_model", projection_dim=32),
    "text_config": dict(model_type="llama", vocab_size=128, hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                        max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0),
    "image_token_id": 127,
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "projector_hidden_act": "gelu",
}


@dataclass
class LoadedModel:
    """A transformers model plus where it came from; ``weights`` is "pretrained", "random-init" or "tiny"."""

    family: str  # "clip" | "blip" | "llava"
    model: torch.nn.Module
    source: str  # the id or folder asked for
    weights: str
    revision: str | None = None
    local_path: str | None = None  # folder the weights were read from, when pretrained
    tokenizer: object | None = None
    tokenizer_synthetic: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def source_label(self) -> str:
        """What the manifest and progress output call this model; random weights are always said so."""
        if self.weights == "pretrained":
            return self.source
        return f"{self.weights} ({self.family} architecture{'' if self.weights == 'tiny' else ' of ' + self.source})"


# ---- loading -------------------------------------------------------------------------------------
def _pretrained(cls, family: str, source: str, flag: str):
    """``cls.from_pretrained`` that turns offline misses into WeightsUnavailableError naming the way out."""
    try:
        model = cls.from_pretrained(source)
    except (OSError, ValueError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise WeightsUnavailableError(
            f"cannot load {family} weights {source!r}"
            f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {str(e).splitlines()[0]}. "
            f"Pass a local folder with {flag} PATH, or use --random-init (real-size architecture, random "
            f"weights) or --tiny for tests"
        ) from None
    revision = getattr(model.config, "_commit_hash", None)
    local = str(Path(source).resolve()) if Path(source).is_dir() else None
    return model.eval(), revision, local


def _load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise WeightsUnavailableError(f"cannot load the tokenizer of {source!r}: {str(e).splitlines()[0]}") from None


def load_clip(source: str = DEFAULT_CLIP, random_init: bool = False, tiny: bool = False) -> LoadedModel:
    from transformers import CLIPConfig, CLIPModel

    from imgdiff_rt.torch_models.tokenizers import synthetic_clip_tokenizer

    if tiny or random_init:
        torch.manual_seed(0)
        cfg = CLIPConfig(**(TINY_CLIP if tiny else CLIP_VIT_B32))
        model = CLIPModel(cfg).eval()
        loaded = LoadedModel("clip", model, source, "tiny" if tiny else "random-init", tokenizer_synthetic=True)
        loaded.tokenizer = synthetic_clip_tokenizer(cfg.text_config.vocab_size)
        return loaded
    model, rev, local = _pretrained(CLIPModel, "CLIP", source, "--clip")
    return LoadedModel("clip", model, source, "pretrained", rev, local, tokenizer=_load_tokenizer(source))


def load_blip(source: str = DEFAULT_BLIP, random_init: bool = False, tiny: bool = False) -> LoadedModel:
    from transformers import BlipConfig, BlipForConditionalGeneration

    from imgdiff_rt.torch_models.tokenizers import synthetic_bert_tokenizer

    if tiny or random_init:
        torch.manual_seed(0)
        values = TINY_BLIP if tiny else BLIP_BASE
        values = {**values, "vision_config": {**values["vision_config"], "initializer_range": 0.02}}
        cfg = BlipConfig(**values)
        model = BlipForConditionalGeneration(cfg).eval()
        tc = cfg.text_config
        tok = synthetic_bert_tokenizer(tc.vocab_size, pad=tc.pad_token_id, sep=tc.sep_token_id,
                                       bos=tc.bos_token_id)
        return LoadedModel("blip", model, source, "tiny" if tiny else "random-init", tokenizer=tok,
                           tokenizer_synthetic=True)
    model, rev, local = _pretrained(BlipForConditionalGeneration, "BLIP", source, "--captioner blip:")
    return LoadedModel("blip", model, source, "pretrained", rev, local, tokenizer=_load_tokenizer(source))


def load_llava(source: str = DEFAULT_LLAVA, random_init: bool = False, tiny: bool = False) -> LoadedModel:
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from imgdiff_rt.torch_models.tokenizers import synthetic_bert_tokenizer

    if random_init and not tiny:
        # A 7B language model with random weights is ~28 GB of fp32 for no benefit to any test or benchmark
        # of the exported vision graph; use a real folder, or --tiny.
        raise UsageError("random_init is not offered for LLaVA (7B); use tiny or a local LLaVA folder",
                         parameter="random_init")
    if tiny:
        torch.manual_seed(0)
        cfg = LlavaConfig(**TINY_LLAVA)
        model = LlavaForConditionalGeneration(cfg).eval()
        tc = cfg.text_config
        tok = synthetic_bert_tokenizer(tc.vocab_size, pad=tc.pad_token_id, sep=tc.eos_token_id,
                                       bos=tc.bos_token_id, image=cfg.image_token_id)
        return LoadedModel("llava", model, source, "tiny", tokenizer=tok, tokenizer_synthetic=True)
    model, rev, local = _pretrained(LlavaForConditionalGeneration, "LLaVA", source, "--captioner llava:")
    return LoadedModel("llava", model, source, "pretrained", rev, local, tokenizer=_load_tokenizer(source))


#: family -> loader, and the transformers class its saved folders are read back with
LOADERS = {"clip": load_clip, "blip": load_blip, "llava": load_llava}
MODEL_CLASSES = {"clip": "CLIPModel", "blip": "BlipForConditionalGeneration",
                 "llava": "LlavaForConditionalGeneration"}


def load_family(family: str, source: str | None = None, weights: str = "pretrained") -> LoadedModel:
    """Load (``weights="pretrained"``) or build (``"random-init"``, ``"tiny"``: seeded, so identical every
    time) the model of ``family``; ``source`` defaults to the family's published model."""
    if family not in LOADERS:
        raise UsageError(f"unknown model family {family!r}; known: {', '.join(LOADERS)}")
    return LOADERS[family](source or DEFAULT_SOURCES[family], random_init=weights == "random-init",
                           tiny=weights == "tiny")


def load_saved(family: str, folder: str, weights: str) -> LoadedModel:
    """A family's model read back from a folder written by ``save_pretrained`` (or a pretrained id/folder),
    labelled with the ``weights`` it was made from; ModelError when it cannot be read."""
    import transformers

    from imgdiff_rt.errors import ModelError

    cls = getattr(transformers, MODEL_CLASSES[family])
    transformers.utils.logging.disable_progress_bar()  # no per-load progress bars on the CLI's stderr
    try:
        model = cls.from_pretrained(folder).eval()
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the {family} model from {folder}: {e}") from None
    return LoadedModel(family, model, folder, weights)


# ---- wrapper modules: forward == the spec's tensors ------------------------------------------------
class ClipImageGraph(torch.nn.Module):
    """pixel_values -> image_embeds (visual projection of the pooled CLS token, L2-normalised)."""

    def __init__(self, clip):
        super().__init__()
        self.vision_model, self.visual_projection = clip.vision_model, clip.visual_projection

    def forward(self, pixel_values):
        pooled = self.vision_model(pixel_values=pixel_values).pooler_output
        embeds = self.visual_projection(pooled)
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


class ClipTextGraph(torch.nn.Module):
    """input_ids, attention_mask -> text_embeds (text projection of the EOS token, L2-normalised)."""

    def __init__(self, clip):
        super().__init__()
        self.text_model, self.text_projection = clip.text_model, clip.text_projection

    def forward(self, input_ids, attention_mask):
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        embeds = self.text_projection(pooled)
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


class BlipVisionGraph(torch.nn.Module):
    """pixel_values -> image_hidden_states (vision_model last_hidden_state, what BLIP's decoder attends to)."""

    def __init__(self, blip):
        super().__init__()
        self.vision_model = blip.vision_model

    def forward(self, pixel_values):
        return self.vision_model(pixel_values=pixel_values).last_hidden_state


class LlavaVisionGraph(torch.nn.Module):
    """pixel_values -> image_features: vision tower hidden state at vision_feature_layer (CLS dropped for the
    "default" strategy) through multi_modal_projector, as LlavaModel.get_image_features computes it."""

    def __init__(self, llava):
        super().__init__()
        inner = llava.model
        self.vision_tower, self.projector = inner.vision_tower, inner.multi_modal_projector
        cfg = llava.config
        self.layer = cfg.vision_feature_layer
        self.drop_cls = cfg.vision_feature_select_strategy == "default"
        if not isinstance(self.layer, int):
            raise UsageError("LLaVA configs with several vision_feature_layer values are not supported")

    def forward(self, pixel_values):
        states = self.vision_tower(pixel_values, output_hidden_states=True).hidden_states[self.layer]
        if self.drop_cls:
            states = states[:, 1:]
        return self.projector(states)


def _vision_tokens(vcfg) -> int:
    return (vcfg.image_size // vcfg.patch_size) ** 2 + 1  # patches + CLS


def graphs_for(loaded: LoadedModel) -> list[tuple[ModelSpec, torch.nn.Module]]:
    """The (bound spec, wrapper module) pairs a loaded model exports."""
    cfg = loaded.model.config
    if loaded.family == "clip":
        tc, vc = cfg.text_config, cfg.vision_config
        bos, eos = (CLIP_TOKENS["bos"], CLIP_TOKENS["eos"]) if tc.vocab_size > CLIP_TOKENS["eos"] else \
            (tc.vocab_size - 2, tc.vocab_size - 1)
        text = get_spec("clip_text").bind(text_len=tc.max_position_embeddings, embed_dim=cfg.projection_dim,
                                          vocab_size=tc.vocab_size, bos_token_id=bos, eos_token_id=eos)
        image = get_spec("clip_image").bind(image_size=vc.image_size, embed_dim=cfg.projection_dim)
        return [(image, ClipImageGraph(loaded.model).eval()), (text, ClipTextGraph(loaded.model).eval())]
    if loaded.family == "blip":
        vc = cfg.vision_config
        spec = get_spec("blip_vision").bind(image_size=vc.image_size, num_image_tokens=_vision_tokens(vc),
                                            vision_hidden=vc.hidden_size)
        return [(spec, BlipVisionGraph(loaded.model).eval())]
    if loaded.family == "llava":
        vc = cfg.vision_config
        tokens = _vision_tokens(vc) - (1 if cfg.vision_feature_select_strategy == "default" else 0)
        spec = get_spec("llava_vision").bind(image_size=vc.image_size, num_image_tokens=tokens,
                                             text_hidden=cfg.text_config.hidden_size)
        return [(spec, LlavaVisionGraph(loaded.model).eval())]
    raise UsageError(f"unknown model family {loaded.family!r}")
