"""Synthetic tokenizers for --tiny / --random-init models (no hub access, so the real vocabularies are absent).

They have the model's vocabulary size and put the special tokens at the config's ids, so token ids and
generation behave exactly as with a real tokenizer; the words are placeholders ("tok123"). The bundle
manifest marks them ``"synthetic": true``. transformers 5.x ignores ``vocab_file=`` in the fast tokenizer
constructors, so the vocabulary is written to a folder and loaded with ``from_pretrained(folder)``.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# A marker kept in every synthetic tokenizer folder (and hence in the bundle) so nothing mistakes it for real.
SYNTHETIC_MARKER = "SYNTHETIC_TOKENIZER.txt"
_NOTE = "Synthetic tokenizer written by imgdiff-rt for random-weight models; its words are placeholders.\n"


def write_synthetic_marker(folder: Path) -> None:
    (Path(folder) / SYNTHETIC_MARKER).write_text(_NOTE, encoding="utf-8")


@contextmanager
def _folder(prefix: str) -> Iterator[Path]:
    """A scratch folder for the tokenizer's files, removed once it is loaded (it holds them in memory)."""
    with tempfile.TemporaryDirectory(prefix=f"imgdiff-rt-{prefix}-tok-") as folder:
        yield Path(folder)


def synthetic_bert_tokenizer(vocab_size: int, pad: int, sep: int, bos: int, image: int | None = None):
    """A WordPiece (BERT-style) tokenizer: [PAD]/[SEP]/[DEC] (BLIP's bos) at the given ids, filler words."""
    from transformers import BertTokenizerFast

    words = [f"tok{i}" for i in range(vocab_size)]
    specials = {pad: "[PAD]", sep: "[SEP]", bos: "[DEC]"}
    if image is not None:
        specials[image] = "<image>"
    free = [i for i in range(vocab_size) if i not in specials]
    for name, idx in zip(("[UNK]", "[CLS]", "[MASK]"), free):
        specials[idx] = name
    for idx, name in specials.items():
        words[idx] = name
    extra = ["[DEC]"] + (["<image>"] if image is not None else [])
    with _folder("bert") as folder:
        (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        write_synthetic_marker(folder)
        return BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True, bos_token="[DEC]",
                                                 extra_special_tokens=extra)


def synthetic_clip_tokenizer(vocab_size: int):
    """A byte-level BPE (CLIP-style) tokenizer with no merges; <|startoftext|>/<|endoftext|> are the last two
    ids, as in the real CLIP vocabulary (49406, 49407)."""
    from transformers import CLIPTokenizer

    # The 256 byte symbols and their end-of-word forms, as CLIP's vocabulary starts; then filler words.
    base = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 173)] + \
        [chr(c) for c in range(174, 256)]
    extra_chars = [chr(256 + i) for i in range(256 - len(base))]
    symbols = base + extra_chars
    words = symbols + [s + "</w>" for s in symbols]
    words = words[: vocab_size - 2] + [f"tok{i}" for i in range(len(words), vocab_size - 2)]
    words += ["<|startoftext|>", "<|endoftext|>"]
    with _folder("clip") as folder:
        (folder / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        write_synthetic_marker(folder)
        return CLIPTokenizer.from_pretrained(str(folder), pad_token="<|endoftext|>")
