"""BLIP captions of the left and right crop of each region, the same-caption filter, and the sentences.

Encoder: the exported ``blip_vision`` graph through a Session (``image_hidden_states``). Decoder: BLIP's text
decoder in PyTorch, cross-attending to those states, exactly as ``BlipForConditionalGeneration.generate``
drives it ([DEC] bos prompt, [SEP] ends a caption). All crops of a pair go through one encoder call and one
``generate`` call. Regions whose two captions say the same thing are dropped (Img-Diff's filter): CLIP text
cosine >= 0.85 with the bundle's ``clip_text`` graph and CLIP tokenizer, else (no clip_text, or a synthetic
tokenizer whose placeholder words mean nothing) exact normalised-string equality; the settings say which.
"""

from __future__ import annotations

from imgdiff_rt.models import auto_precision as AP

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from imgdiff_rt.words.describe import position_words, summary_line
from imgdiff_rt.errors import UsageError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.result import Result
from imgdiff_rt.captioners import common as C
from imgdiff_rt.captioners import generation as Gen
from imgdiff_rt.detectors.model.crops import ImagePreprocessor, region_crops

SAME_CAPTION_THRESHOLD = 0.85  # Img-Diff: caption pairs at least this similar describe no difference
DEFAULT_MAX_NEW_TOKENS = 20  # BLIP's own generation default (max_length 20)


# ---- "do the two captions say the same thing?" --------------------------------------------------------
class TextSimilarity(Protocol):
    method: str

    def scores(self, a: list[str], b: list[str]) -> np.ndarray: ...


def normalise_caption(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class ExactTextMatch:
    """1.0 where the normalised strings are equal, else 0.0 (used when the bundle has no clip_text graph)."""

    def __init__(self, reason: str = "asked for"):
        self.method = f"exact normalised-string equality ({reason})"

    def scores(self, a: list[str], b: list[str]) -> np.ndarray:
        return np.array([float(normalise_caption(x) == normalise_caption(y)) for x, y in zip(a, b)])

    def close(self) -> None:
        pass


class ClipTextSimilarity:
    """Cosine of CLIP text embeddings (the graph's embeds are L2-normalised, so a dot product)."""

    method = "clip_text cosine"

    def __init__(self, session: Any, tokenizer: Any):
        self.session, self.tokenizer = session, tokenizer
        self.text_len = int(session.spec.sizes["text_len"])

    @classmethod
    def from_bundle(cls, bundle: Bundle, backend: str, precision: str, session_factory: Callable,
                    force: bool = False, **session_opts: Any) -> "ClipTextSimilarity | ExactTextMatch":
        """``force``: use CLIP even with a synthetic tokenizer (tests); otherwise a synthetic tokenizer
        (tiny / random-init bundles) means exact matching: its placeholder words carry no meaning."""
        tokenizer_part, tok_dir = bundle.tokenizer("clip"), bundle.tokenizer_dir("clip")
        if "fp32" not in bundle.precisions("clip_text") or tokenizer_part is None or tok_dir is None:
            return ExactTextMatch("bundle has no clip_text graph or CLIP tokenizer")
        if tokenizer_part.synthetic and not force:
            return ExactTextMatch("the bundle's CLIP tokenizer is synthetic")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        # int8 of a text tower buys little for a few short captions; fall back to fp32 where no int8 exists
        precision = AP.resolve(bundle, "clip_text", precision, backend, session_opts)
        if precision not in bundle.precisions("clip_text"):
            precision = "fp32"
        return cls(session_factory(bundle, "clip_text", backend=backend, precision=precision, **session_opts),
                   tokenizer)

    def embed(self, texts: list[str]) -> np.ndarray:
        spec = self.session.spec
        enc = self.tokenizer([t.lower() for t in texts], padding="max_length", max_length=self.text_len,
                             truncation=True, return_tensors="np")
        ids_name, mask_name = spec.input_names  # spec order: input_ids, attention_mask
        feeds = {ids_name: enc["input_ids"].astype(np.int64),
                 mask_name: enc["attention_mask"].astype(np.int64)}
        return self.session.run(feeds)[spec.output_names[0]]

    def scores(self, a: list[str], b: list[str]) -> np.ndarray:
        e = self.embed(list(a) + list(b))  # one call for both sides
        return (e[: len(a)] * e[len(a):]).sum(axis=1)

    def close(self) -> None:
        self.session.close()


# ---- the captioner -----------------------------------------------------------------------------------
class BlipCaptioner:
    name = "blip"

    def __init__(self, encoder: Any, decoder: Any, tokenizer: Any, preprocess: ImagePreprocessor, *,
                 bos_token_id: int, eos_token_id: int, pad_token_id: int, beams: int = 1,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: Any = None, dtype: Any = None,
                 text_similarity: TextSimilarity | None = None, threshold: float = SAME_CAPTION_THRESHOLD,
                 max_batch: int | None = None, info: dict | None = None, decoder_precision: str | None = None):
        C.check_options(beams, max_new_tokens)
        self.device, self.dtype = C.pick_device(device, dtype)
        if decoder_precision not in (None, Gen.DECODER_INT8):
            raise UsageError(f"decoder_precision {decoder_precision!r}: use int8 or leave it unset",
                             parameter="decoder_precision")
        if decoder_precision == Gen.DECODER_INT8:  # off by default: see docs/benchmarks.md for its agreement
            Gen.check_int8_device(self.device, self.dtype)
            decoder = Gen.quantize_linear_int8(decoder)
        self.decoder_precision = decoder_precision or str(self.dtype).replace("torch.", "")
        self.encoder, self.decoder, self.tokenizer, self.preprocess = encoder, decoder, tokenizer, preprocess
        self.bos, self.eos, self.pad = bos_token_id, eos_token_id, pad_token_id
        self.beams, self.max_new_tokens = int(beams), int(max_new_tokens)
        self.text_similarity = text_similarity or ExactTextMatch("no text similarity given")
        self.threshold, self.max_batch, self.info = float(threshold), max_batch, dict(info or {})

    @classmethod
    def from_bundle(cls, bundle: Bundle | str | Path, backend: str = "onnx", precision: str = "fp32", *,
                    beams: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: str | None = None,
                    dtype: str | None = None, threshold: float = SAME_CAPTION_THRESHOLD,
                    text_similarity: TextSimilarity | str = "auto", session_factory: Callable | None = None,
                    decoder_precision: str | None = None, **session_opts: Any) -> "BlipCaptioner":
        """``text_similarity``: "auto" (clip_text when the bundle has it with a real tokenizer), "clip"
        (clip_text even with a synthetic tokenizer), "exact", or an object with ``.scores(a, b)``.
        ``session_factory`` defaults to ``runtime.session.open_session``."""
        C.check_options(beams, max_new_tokens)
        bundle = C.load_bundle(bundle)
        folder = C.require_captioner(bundle, "blip", "blip_vision")
        open_session = session_factory or C.default_session_factory()
        dev, dt = C.pick_device(device, dtype)
        from transformers import AutoTokenizer, BlipForConditionalGeneration

        model = BlipForConditionalGeneration.from_pretrained(str(folder), dtype=dt)
        # Only the text decoder runs in PyTorch; the vision weights are dropped (the Session encodes).
        decoder = model.text_decoder.to(dev).eval()
        tc = model.config.text_config
        del model
        encoder = open_session(bundle, "blip_vision", backend=backend, precision=precision, **session_opts)
        if text_similarity in ("auto", "clip"):
            text_similarity = ClipTextSimilarity.from_bundle(bundle, backend, precision, open_session,
                                                             force=text_similarity == "clip", **session_opts)
        elif text_similarity == "exact":
            text_similarity = ExactTextMatch()
        elif isinstance(text_similarity, str):
            raise UsageError(f"text_similarity {text_similarity!r}: use auto, clip, exact or an object")
        return cls(encoder, decoder, AutoTokenizer.from_pretrained(str(folder)),
                   ImagePreprocessor.from_folder(folder, encoder.spec.sizes["image_size"]),
                   bos_token_id=tc.bos_token_id, eos_token_id=tc.sep_token_id, pad_token_id=tc.pad_token_id,
                   beams=beams, max_new_tokens=max_new_tokens, device=dev, dtype=dt,
                   text_similarity=text_similarity, threshold=threshold,
                   max_batch=C.batch_cap(backend, encoder.spec), decoder_precision=decoder_precision,
                   info={"backend": backend, "precision": precision,
                         "weights": bundle.generation("blip").weights})

    # -- model calls ---------------------------------------------------------------------------------
    def generate_ids(self, pixel_values: np.ndarray) -> list[list[int]]:
        """Caption token ids per image ([DEC] prompt dropped; [SEP]/padding kept as generate gives them)."""
        import torch

        states = C.run_encoder(self.encoder, pixel_values, self.max_batch)
        with torch.inference_mode():
            hidden = torch.from_numpy(np.require(states, requirements=("C", "W"))).to(self.device, self.dtype)
            n = hidden.shape[0]
            out = self.decoder.generate(
                input_ids=torch.full((n, 1), self.bos, dtype=torch.long, device=self.device),
                encoder_hidden_states=hidden,
                encoder_attention_mask=torch.ones(hidden.shape[:-1], dtype=torch.long, device=self.device),
                eos_token_id=self.eos, pad_token_id=self.pad, max_new_tokens=self.max_new_tokens,
                num_beams=self.beams, do_sample=False, use_cache=True)
        return out[:, 1:].tolist()

    def caption_images(self, images: list[np.ndarray]) -> list[str]:
        """One caption per HxWx3 uint8 image: one encoder call and one generate call for all the distinct ones
        (identical crops are captioned once)."""
        if not images:
            return []
        distinct, inverse = Gen.distinct_images(images)
        ids = self.generate_ids(self.preprocess(distinct))
        texts = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return [texts[i] for i in inverse]

    # -- the stage -----------------------------------------------------------------------------------
    def caption(self, result: Result, images: Any) -> Result:
        if not result.regions:
            return result.replace(description=summary_line([], result.warnings)).with_settings(caption_dropped=[])
        crops = [c for r in result.regions for c in region_crops(images, r)]  # L0, R0, L1, R1, ...
        texts = self.caption_images(crops)
        lefts, rights = texts[0::2], texts[1::2]
        sims = self.text_similarity.scores(lefts, rights)
        kept, parts, dropped = [], [], []
        for region, left, right, sim in zip(result.regions, lefts, rights, sims):
            if float(sim) >= self.threshold:
                dropped.append({"id": region.id, "caption": left, "similarity": round(float(sim), 4)})
                continue
            where = position_words(region.bbox, result.size)
            sentence = (f"{where}: {left or 'nothing recognisable'} in the left image, "
                        f"{right or 'nothing recognisable'} in the right image")
            kept.append(replace(region, caption_left=left, caption_right=right, description=sentence))
            parts.append(f"{where} ({left or '?'} -> {right or '?'})")
        return result.replace(regions=tuple(kept), description=summary_line(parts, result.warnings)).with_settings(
            caption_dropped=dropped)

    def settings(self) -> dict:
        return {"captioner": "blip", **self.info, "beams": self.beams, "max_new_tokens": self.max_new_tokens,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "decoder_precision": self.decoder_precision,
                "same_caption_filter": f"{self.text_similarity.method} >= {self.threshold}"
                if isinstance(self.text_similarity, ClipTextSimilarity) else self.text_similarity.method}

    def close(self) -> None:
        for part in (self.encoder, self.text_similarity):
            closer = getattr(part, "close", None)
            if closer is not None:
                closer()
