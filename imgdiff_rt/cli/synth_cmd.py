"""`imgdiff-rt synth`: spot-the-difference pairs with ground truth from any photo."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from imgdiff_rt.detectors.pixel.jitter import JITTER_STRENGTHS
from imgdiff_rt.errors import InputError, UsageError
from imgdiff_rt.files import write_text_atomic
from imgdiff_rt.imageio import read_image, write_png_atomic
from imgdiff_rt.writers.pair import check_writable_dir, make_dir
from imgdiff_rt.evaluation.synth import synthesize

SKIMAGE_PREFIX = "skimage:"


def load_photo(spec: str) -> tuple[np.ndarray, str]:
    """A path, or ``skimage:NAME`` for one of scikit-image's bundled sample photos (e.g. skimage:astronaut)."""
    if spec.startswith(SKIMAGE_PREFIX):
        from skimage import data

        name = spec[len(SKIMAGE_PREFIX):]
        loader = getattr(data, name, None)
        if loader is None or not callable(loader):
            raise InputError(f"{spec}: scikit-image has no sample image named {name!r}")
        return read_image(np.asarray(loader())), name
    return read_image(spec), Path(spec).stem


def _merge_pairs_file(path: Path, new: list[dict]) -> None:
    """pairs.jsonl keeps earlier entries (several photos can feed one folder); same ids are replaced."""
    entries: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                entries[rec["id"]] = rec
            except (ValueError, KeyError, TypeError):
                continue
    for rec in new:
        entries[rec["id"]] = rec
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in entries.values()))


@click.command("synth")
@click.argument("image")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--spots", type=int, default=None,
              help="Changes per pair (default: 3; level 3 draws 4-7 per pair).")
@click.option("--level", type=click.Choice(["1", "2", "3"]), default="1", show_default=True,
              help="1: larger regions change; 2: smaller ones (harder); 3: a magazine puzzle (0.3-2% each, many "
                   "faint, one at the border, one long and thin, one beside another).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same pair).")
@click.option("--count", type=int, default=1, show_default=True,
              help="Pairs to make; with more than one, each goes to DIR/<name>-s<seed>/.")
@click.option("--jitter", is_flag=True,
              help="Re-shoot the right image: a small viewpoint warp with parallax, a light change (gain, offset, "
                   "gamma, gradient) and noise; truth boxes stay in left-image pixels (bbox_right: moved).")
@click.option("--jitter-strength", type=click.Choice(list(JITTER_STRENGTHS)), default=None,
              help="mild (the default with --jitter): a steady hand; strong: also a 3-7% zoom, parallax of several "
                   "pixels and a moved light (a soft shadow and a brightened patch). Implies --jitter.")
def synth(image: str, out_dir: Path, spots: int | None, level: str, seed: int, count: int, jitter: bool,
          jitter_strength: str | None) -> None:
    """Make spot-the-difference pairs from a photo: left.png, right.png and truth.json (each change's kind and
    box), plus DIR/pairs.jsonl for `run --pairs` and `eval --pairs`.

    IMAGE is a file, or skimage:NAME for a scikit-image sample photo. Regions are found by Felzenszwalb
    segmentation and changed by removal (inpainting), recolouring or pasting a copy elsewhere.

    \b
    Examples:
      imgdiff-rt synth photo.jpg --out pair/ --spots 3 --seed 7
      imgdiff-rt synth skimage:astronaut --out set/ --level 2 --count 10
      imgdiff-rt synth skimage:coffee --out shaky/ --jitter --count 10
      imgdiff-rt synth skimage:coffee --out puzzle/ --level 3 --count 10
      imgdiff-rt synth skimage:coffee --out rendered/ --jitter-strength strong --count 10
    """
    if count < 1:
        raise UsageError("count must be at least 1")
    photo, name = load_photo(image)
    check_writable_dir(out_dir)
    shake: bool | str = jitter_strength or jitter
    made = [synthesize(photo, spots=spots, level=int(level), seed=seed + k, jitter=shake) for k in range(count)]
    make_dir(out_dir)
    entries = []
    for k, pair in enumerate(made):
        mark = {False: "", True: "-j", "mild": "-j", "strong": "-js"}[shake]
        pair_id = f"{name}-l{level}{mark}-s{seed + k}"
        folder = out_dir if count == 1 else make_dir(out_dir / pair_id)
        write_png_atomic(folder / "left.png", pair.left)
        write_png_atomic(folder / "right.png", pair.right)
        truth = {**pair.truth, "source": image}
        write_text_atomic(folder / "truth.json", json.dumps(truth, indent=2) + "\n")
        rel = folder.relative_to(out_dir)
        entries.append({"id": pair_id, "left": str(rel / "left.png"), "right": str(rel / "right.png"),
                        "truth": str(rel / "truth.json")})
        click.echo(f"{pair_id}: {len(pair.truth['changes'])} changes -> {folder}", err=True)
    _merge_pairs_file(out_dir / "pairs.jsonl", entries)
