"""LLaVA answers Img-Diff's question about each region's red box on the side-by-side picture.

Encoder: the exported ``llava_vision`` graph (vision tower + projector) through a Session gives
``image_features``; they replace the ``<image>`` placeholder tokens in the embedded prompt, and the language
model generates from ``inputs_embeds`` in PyTorch (KV cache on). All regions of a pair share the prompt, so
they form one batch with no padding: one encoder call and one ``generate`` call per pair.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from imgdiff_rt.words.describe import position_words, summary_line
from imgdiff_rt.errors import ModelError
from imgdiff_rt.models.bundle import Bundle
from imgdiff_rt.captioners.prompts import QUESTION
from imgdiff_rt.result import Result
from imgdiff_rt.captioners import common as C
from imgdiff_rt.detectors.model.crops import ImagePreprocessor, boxed_side_by_side, pad_to_square
from imgdiff_rt.captioners.generation import distinct_images

# LLaVA-1.5's conversation format (what llava-hf's chat template renders for one user turn with an image).
PROMPT_TEMPLATE = "USER: <image>\n{question} ASSISTANT:"
DEFAULT_MAX_NEW_TOKENS = 64  # "a few concise sentences"


class LlavaCaptioner:
    name = "llava"

    def __init__(self, encoder: Any, model: Any, tokenizer: Any, preprocess: ImagePreprocessor, *,
                 beams: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: Any = None,
                 dtype: Any = None, max_batch: int | None = None, info: dict | None = None,
                 question: str = QUESTION):
        C.check_options(beams, max_new_tokens)
        self.encoder, self.model, self.tokenizer, self.preprocess = encoder, model, tokenizer, preprocess
        self.beams, self.max_new_tokens = int(beams), int(max_new_tokens)
        self.device, self.dtype = C.pick_device(device, dtype)
        self.max_batch, self.info, self.question = max_batch, dict(info or {}), question
        cfg = model.config
        self.image_token_id = int(cfg.image_token_id)
        tc = cfg.text_config
        self.eos = tc.eos_token_id if tc.eos_token_id is not None else tokenizer.eos_token_id
        pad = tc.pad_token_id if tc.pad_token_id is not None else tokenizer.pad_token_id
        self.pad = pad if pad is not None else self.eos
        self.prompt_ids = self._prompt_ids(int(encoder.spec.sizes["num_image_tokens"]))

    @classmethod
    def from_bundle(cls, bundle: Bundle | str | Path, backend: str = "onnx", precision: str = "fp32", *,
                    beams: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, device: str | None = None,
                    dtype: str | None = None, session_factory: Callable | None = None,
                    **session_opts: Any) -> "LlavaCaptioner":
        C.check_options(beams, max_new_tokens)
        bundle = C.load_bundle(bundle)
        folder = C.require_captioner(bundle, "llava", "llava_vision")
        open_session = session_factory or C.default_session_factory()
        dev, dt = C.pick_device(device, dtype)
        from transformers import AutoTokenizer, LlavaForConditionalGeneration

        try:
            model = LlavaForConditionalGeneration.from_pretrained(str(folder), dtype=dt).to(dev).eval()
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as e:
            first = str(e).splitlines()[0]
            raise ModelError(f"cannot load the LLaVA language model from {folder}: {first}") from None
        encoder = open_session(bundle, "llava_vision", backend=backend, precision=precision, **session_opts)
        preprocess = ImagePreprocessor.from_folder(folder, encoder.spec.sizes["image_size"])
        return cls(encoder, model, tokenizer, preprocess,
                   beams=beams, max_new_tokens=max_new_tokens, device=dev, dtype=dt,
                   max_batch=C.batch_cap(backend, encoder.spec),
                   info={"backend": backend, "precision": precision,
                         "weights": bundle.generation("llava").weights})

    def _prompt_ids(self, num_image_tokens: int) -> list[int]:
        """The tokenised prompt with its one ``<image>`` token expanded to the encoder's feature count (what
        LlavaProcessor does)."""
        ids = self.tokenizer(PROMPT_TEMPLATE.format(question=self.question))["input_ids"]
        at = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(at) != 1:
            raise ModelError(f"the LLaVA tokenizer gives {len(at)} <image> tokens (id {self.image_token_id}) "
                             "for the prompt, not 1; the bundle's tokenizer and model disagree")
        i = at[0]
        return ids[:i] + [self.image_token_id] * num_image_tokens + ids[i + 1:]

    # -- model calls ---------------------------------------------------------------------------------
    def generate_ids(self, pixel_values: np.ndarray) -> list[list[int]]:
        """Answer token ids per image (generate from inputs_embeds returns only the new tokens)."""
        import torch

        feats = C.run_encoder(self.encoder, pixel_values, self.max_batch)
        n = feats.shape[0]
        with torch.inference_mode():
            ids = torch.tensor([self.prompt_ids] * n, dtype=torch.long, device=self.device)
            embeds = self.model.get_input_embeddings()(ids)
            features = torch.from_numpy(np.require(feats, requirements=("C", "W"))).to(self.device, embeds.dtype)
            embeds[ids == self.image_token_id] = features.reshape(-1, features.shape[-1])
            out = self.model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=self.max_new_tokens, num_beams=self.beams,
                                      do_sample=False, use_cache=True, eos_token_id=self.eos,
                                      pad_token_id=self.pad)
        return out.tolist()

    def answer_images(self, images: list[np.ndarray]) -> list[str]:
        """One answer per side-by-side picture (padded to a square first, see crops.py)."""
        if not images:
            return []
        distinct, inverse = distinct_images(images)  # identical pictures are answered once
        squares = [pad_to_square(i, self.preprocess.mean_colour) for i in distinct]
        ids = self.generate_ids(self.preprocess(squares))
        answers = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return [answers[i] for i in inverse]

    # -- the stage -----------------------------------------------------------------------------------
    def caption(self, result: Result, images: Any) -> Result:
        if not result.regions:
            return result.replace(description=summary_line([], result.warnings))
        answers = self.answer_images([boxed_side_by_side(images, r) for r in result.regions])
        regions, parts = [], []
        for region, answer in zip(result.regions, answers):
            regions.append(replace(region, description=answer))
            parts.append(f"{position_words(region.bbox, result.size)} ({_first_sentence(answer)})")
        return result.replace(regions=tuple(regions), description=summary_line(parts, result.warnings))

    def settings(self) -> dict:
        return {"captioner": "llava", **self.info, "beams": self.beams, "max_new_tokens": self.max_new_tokens,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "prompt": "llava-1.5 chat: USER: <image>\\n{imgdiff QUESTION} ASSISTANT:"}

    def close(self) -> None:
        self.encoder.close()


def _first_sentence(text: str, limit: int = 60) -> str:
    first = text.split(". ")[0].strip().rstrip(".") or "?"
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."
