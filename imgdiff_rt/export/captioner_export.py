"""Captioner checks and files: greedy ids from (exported encoder + PyTorch generation) vs pure PyTorch, and
the PyTorch-side files generation needs (decoder weights, tokenizer, processor config) saved in the bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from imgdiff_rt.errors import ParityError, UsageError
from imgdiff_rt.torch_models.hf import LoadedModel
from imgdiff_rt.torch_models.tokenizers import write_synthetic_marker
from imgdiff_rt.models.specs import CLIP_MEAN, CLIP_STD, ModelSpec

_GREEDY = dict(do_sample=False, num_beams=1)


def _llava_prompt(loaded: LoadedModel, batch: int, num_image_tokens: int, rng: np.random.Generator):
    """[bos] <image> x num_image_tokens, then a few ordinary tokens: the layout LlavaProcessor produces."""
    cfg = loaded.model.config
    tc = cfg.text_config
    special = {cfg.image_token_id, tc.bos_token_id, tc.eos_token_id, tc.pad_token_id}
    ordinary = np.array([i for i in range(min(tc.vocab_size, 1000)) if i not in special])
    tail = rng.choice(ordinary, size=(batch, 4))
    ids = np.concatenate([np.full((batch, 1), tc.bos_token_id), np.full((batch, num_image_tokens),
                                                                      cfg.image_token_id), tail], axis=1)
    return torch.from_numpy(ids.astype(np.int64))


def greedy_ids(loaded: LoadedModel, pixel_values: np.ndarray, max_new_tokens: int,
               encoder: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0) -> list[list[int]]:
    """Greedy caption token ids per image (prompt excluded).

    ``encoder=None``: pure PyTorch ``generate``. Otherwise ``encoder(pixel_values)`` (e.g. an ORT session)
    supplies the image hidden states / features and only the text side runs in PyTorch, as at run time.
    """
    model, cfg = loaded.model, loaded.model.config
    pixels = torch.from_numpy(np.ascontiguousarray(pixel_values))
    batch = pixels.shape[0]
    with torch.no_grad():
        if loaded.family == "blip":
            tc = cfg.text_config
            if encoder is None:
                out = model.generate(pixel_values=pixels, max_new_tokens=max_new_tokens, **_GREEDY)
            else:
                states = torch.from_numpy(encoder(pixel_values))
                out = model.text_decoder.generate(
                    input_ids=torch.full((batch, 1), tc.bos_token_id, dtype=torch.long),
                    eos_token_id=tc.sep_token_id, pad_token_id=tc.pad_token_id,
                    encoder_hidden_states=states,
                    encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long),
                    max_new_tokens=max_new_tokens, **_GREEDY)
            rows = out[:, 1:]  # drop the [DEC] bos prompt
        elif loaded.family == "llava":
            vc = cfg.vision_config
            tokens = (vc.image_size // vc.patch_size) ** 2 + (0 if cfg.vision_feature_select_strategy == "default"
                                                              else 1)
            ids = _llava_prompt(loaded, batch, tokens, np.random.default_rng(seed))
            mask = torch.ones_like(ids)
            pad = cfg.text_config.pad_token_id
            if encoder is None:
                out = model.generate(input_ids=ids, pixel_values=pixels, attention_mask=mask,
                                     max_new_tokens=max_new_tokens, pad_token_id=pad, **_GREEDY)
                rows = out[:, ids.shape[1]:]
            else:
                feats = torch.from_numpy(encoder(pixel_values))
                embeds = model.get_input_embeddings()(ids)
                embeds[ids == cfg.image_token_id] = feats.reshape(-1, feats.shape[-1]).to(embeds.dtype)
                rows = model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                                      pad_token_id=pad, **_GREEDY)
        else:
            raise UsageError(f"{loaded.family} is not a captioner")
    return [[int(t) for t in row] for row in rows]


def token_agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Fraction of positions (over the longer of each pair of rows) holding the same token."""
    same = total = 0
    for ra, rb in zip(a, b):
        n = max(len(ra), len(rb))
        same += sum(1 for x, y in zip(ra, rb) if x == y)
        total += n
    return same / total if total else 1.0


def caption_parity(loaded: LoadedModel, spec: ModelSpec, encoder: Callable[[np.ndarray], np.ndarray], *,
                   batch: int = 2, seed: int = 0, max_new_tokens: int = 12, require_exact: bool = True) -> dict:
    """Greedy ids with the exported encoder vs pure PyTorch; ParityError unless identical (fp32)."""
    pixels = spec.dummy_inputs(batch, rng=seed)[spec.input_names[0]]
    ref = greedy_ids(loaded, pixels, max_new_tokens, seed=seed)
    got = greedy_ids(loaded, pixels, max_new_tokens, encoder=encoder, seed=seed)
    result = {"batch": batch, "seed": seed, "max_new_tokens": max_new_tokens,
              "token_agreement": token_agreement(got, ref), "exact": got == ref,
              # how many different captions the batch gave: 1 means the check could not see the image
              "distinct_captions": len({tuple(r) for r in ref})}
    if require_exact and not result["exact"]:
        raise ParityError(f"{spec.name}: greedy captions with the exported encoder differ from PyTorch "
                          f"(token agreement {result['token_agreement']:.3f}): {got} vs {ref}",
                          {"generation": result})
    return result


def _image_processor(loaded: LoadedModel):
    """The preprocessing the exported graph expects: BLIP resizes to a square, CLIP/LLaVA resize the short
    side and centre-crop (as their published processors do); both normalise with the OpenAI CLIP mean/std."""
    s = loaded.model.config.vision_config.image_size
    common = dict(image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD), do_resize=True, do_rescale=True,
                  do_normalize=True)
    if loaded.family == "blip":
        from transformers import BlipImageProcessor

        return BlipImageProcessor(size={"height": s, "width": s}, **common)
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s}, do_center_crop=True,
                              **common)


def save_tokenizer_files(loaded: LoadedModel, folder: Path) -> None:
    """Tokenizer + image processor config (e.g. for CLIP text prompts and crops), marked when synthetic."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if loaded.tokenizer is not None:
        loaded.tokenizer.save_pretrained(str(folder))
    _image_processor(loaded).save_pretrained(str(folder))
    if loaded.tokenizer_synthetic:
        write_synthetic_marker(folder)


def save_generation_files(loaded: LoadedModel, folder: Path) -> dict:
    """What PyTorch generation needs at run time; returns the manifest's ``generation`` entry.

    Random-weight and tiny models are saved in full (``save_pretrained``: the text decoder / language model
    plus the unused-at-run-time vision weights, so ``from_pretrained(folder)`` just works). A pretrained
    LLaVA is not copied (gigabytes): the entry records the folder or hub id it loads from.
    """
    folder = Path(folder)
    entry = {"family": loaded.family, "model_class": type(loaded.model).__name__,
             "weights": loaded.weights, "tokenizer_synthetic": loaded.tokenizer_synthetic}
    if loaded.family == "llava" and loaded.weights == "pretrained":
        entry.update(load_from=loaded.local_path or loaded.source, revision=loaded.revision)
        return entry
    folder.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(str(folder))
    processor = None
    if loaded.weights == "pretrained":
        try:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(loaded.local_path or loaded.source)
        except (OSError, ValueError):
            processor = None
    if processor is not None:
        processor.save_pretrained(str(folder))
    else:
        save_tokenizer_files(loaded, folder)
    entry.update(path=folder.name, files=sorted(p.name for p in folder.iterdir()))
    return entry
