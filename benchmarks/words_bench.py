"""The words benchmark: how often the measured descriptions name the kind of change and its colours right, and
which pairs carry warnings, on every labelled set there is (docs/descriptions.md's table comes from here).

    python benchmarks/words_bench.py --make-sets /tmp/wordsets      # write the synthetic sets once
    python benchmarks/words_bench.py --sets /tmp/wordsets --out benchmarks/results/words.json

Sets: CLEVR-Change 0-49 labelled by eye (tests/data/clevr_change_words.jsonl: all colour changes), synth levels 1
and 2 (pixel-exact, and as JPEG-85 copies) and their re-shot (--jitter) copies, from scikit-image's photos;
CLEVR-Change's nonsemantic pairs and LEVIR-CD for the warnings. A labelled change no region matched counts as
wrong. Results of a checkout without the ``change`` block (an older imgdiff-rt) are read from its sentences, so the
same script measures before and after: run it with PYTHONPATH pointing at the other checkout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
KINDS_SAID = {"remove": {"disappeared"}, "paste": {"appeared", "copied"}, "recolour": {"recoloured"}}
OLD_NAMES = {"dark green": "green", "dark blue": "blue"}


def make_sets(out: Path, per_photo: int) -> None:
    from skimage import data

    from imgdiff_rt.imageio import read_image, write_png_atomic
    from imgdiff_rt.evaluation.synth import synthesize

    for name, level, jitter, jpeg in [("synth-l1", 1, False, False), ("synth-l2", 2, False, False),
                                      ("synth-l1-jpeg85", 1, False, True), ("synth-jitter-l1", 1, True, False),
                                      ("synth-jitter-l2", 2, True, False)]:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for photo in PHOTOS:
            img = read_image(np.asarray(getattr(data, photo)()))
            for seed in range(per_photo):
                pair = synthesize(img, spots=3, level=level, seed=seed, jitter=jitter)
                stem = f"{photo}-{seed}"
                for side, arr in (("left", pair.left), ("right", pair.right)):
                    if jpeg:
                        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR),
                                               [cv2.IMWRITE_JPEG_QUALITY, 85])
                        arr = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                    write_png_atomic(folder / f"{stem}-{side}.png", arr)
                (folder / f"{stem}.json").write_text(json.dumps(pair.truth))
                lines.append({"id": stem, "left": f"{stem}-left.png", "right": f"{stem}-right.png",
                              "truth": f"{stem}.json"})
        (folder / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def words_from_sentence(text: str | None) -> dict:
    """An older result's words, read back from its sentence (it had no ``change`` block)."""
    text = text or ""
    base = lambda name: OLD_NAMES.get(name, name.split()[-1])  # noqa: E731
    m = re.search(r"colour changed from ([a-z ]+) to ([a-z ]+)", text)
    if m:
        return {"kind": "recoloured", "colour_left": {"name": base(m[1])}, "colour_right": {"name": base(m[2])}}
    m = re.search(r"a ([a-z ]+) object appears", text)
    if m:
        return {"kind": "appeared", "colour_right": {"name": base(m[1])}}
    m = re.search(r"a ([a-z ]+) object in the left image is gone", text)
    if m:
        return {"kind": "disappeared", "colour_left": {"name": base(m[1])}}
    for word in ("brighter", "darker"):
        if word in text:
            return {"kind": word}
    return {"kind": "changed"}


def score_set(pipeline, pairs_file: Path) -> dict:
    from imgdiff_rt.evaluation.evaluate import match
    from imgdiff_rt.pairs import load_pairs

    checks = {"kind": [0, 0], "colour_left": [0, 0], "colour_right": [0, 0], "both_colours": [0, 0]}
    found = [0, 0]
    warned, describe_ms = 0, []
    for item in load_pairs(pairs_file):
        result = pipeline(item.left, item.right, id=item.id)
        describe_ms.append(result.timings_ms.get("describe", 0.0))
        warned += bool(getattr(result, "warnings", ()))
        changes = json.loads(Path(item.truth).read_text())["changes"]  # read here: older checkouts lack a reader
        matches = match([r.bbox for r in result.regions], [tuple(c["bbox"]) for c in changes])
        said = {j: (getattr(result.regions[i], "change", None) or words_from_sentence(result.regions[i].description))
                for i, j, _ in matches}
        found[0] += len(matches)
        found[1] += len(changes)
        for j, change in enumerate(changes):
            words = said.get(j, {})
            right = {}
            if "kind" in change:
                right["kind"] = words.get("kind") in KINDS_SAID.get(change["kind"], {change["kind"] + "ed"})
            for side in ("colour_left", "colour_right"):
                if side in change:
                    right[side] = (words.get(side) or {}).get("name") == change[side]
            if "colour_left" in right and "colour_right" in right:
                right["both_colours"] = right["colour_left"] and right["colour_right"]
            for key, ok in right.items():
                checks[key][0] += bool(ok)
                checks[key][1] += 1
    row = {"pairs": len(describe_ms), "found": round(found[0] / max(found[1], 1), 4), "changes": found[1],
           "warned": warned, "describe_ms_median": round(float(np.median(describe_ms)), 2)}
    for key, (ok, n) in checks.items():
        if n:
            row[key] = round(ok / n, 4)
            row[key + "_n"] = n
    return row


def warned_share(pipeline, folder: Path) -> dict:
    from imgdiff_rt.pairs import load_pairs

    items = [it for it in load_pairs(folder) if it.error is None]
    results = [pipeline(it.left, it.right, id=it.id) for it in items]
    return {"pairs": len(items), "warned": sum(bool(getattr(r, "warnings", ())) for r in results),
            "nothing_found": sum(not r.regions for r in results),
            "silent_none": sum(not r.regions and not getattr(r, "warnings", ()) for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-sets", type=Path)
    ap.add_argument("--per-photo", type=int, default=10)
    ap.add_argument("--sets", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.make_sets:
        make_sets(args.make_sets, args.per_photo)
        return
    from imgdiff_rt.pipeline import Pipeline

    pipeline = Pipeline()
    table = {"clevr-labelled": score_set(pipeline, ROOT / "tests" / "data" / "clevr_change_words.jsonl")}
    for folder in sorted(p for p in args.sets.iterdir() if (p / "pairs.jsonl").is_file()):
        t = time.perf_counter()
        table[folder.name] = score_set(pipeline, folder / "pairs.jsonl")
        print(folder.name, table[folder.name], f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
    table["levir-cd (warnings)"] = warned_share(pipeline, SHARED / "levir-cd")
    clevr = SHARED / "clevr-change"
    table["clevr-change 100 pairs (warnings)"] = warned_share(pipeline, clevr)
    text = json.dumps(table, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
