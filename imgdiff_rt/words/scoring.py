"""Scoring descriptions against labelled changes: was the kind of change right, the old colour, the new one.

A truth change may carry ``kind`` (synth's remove / paste / recolour / move, or added / dropped / material for
hand labels) and ``colour_left`` / ``colour_right`` (basic colour terms); the region matched to it (one-to-one, as
box scoring matches) is scored on whichever the label gives."""

from __future__ import annotations

from dataclasses import dataclass, field

#: a truth kind -> the region kinds that say it
KIND_WORDS = {
    "remove": {"disappeared"}, "drop": {"disappeared"}, "dropped": {"disappeared"},
    "paste": {"appeared", "copied"}, "add": {"appeared", "copied"}, "added": {"appeared", "copied"},
    "recolour": {"recoloured"}, "color": {"recoloured"}, "colour": {"recoloured"},
    "move": {"moved"}, "moved": {"moved"},
    "material": {"changed", "replaced"}, "texture": {"changed", "replaced"},
}
WORD_FIELDS = ("kind", "colour_left", "colour_right")


def has_words(change: dict) -> bool:
    return isinstance(change, dict) and any(k in change for k in WORD_FIELDS)


def _colour(change_block: dict | None, side: str) -> str | None:
    colour = (change_block or {}).get(f"colour_{side}") or {}
    return colour.get("name") if isinstance(colour, dict) else None


def word_checks(region_change: dict | None, truth: dict) -> dict:
    """One matched pair's checks: for each field the label gives, the label, what was said and whether it is
    right (a plain dict, kept in eval records so a resumed batch re-tallies without re-running)."""
    said_kind = (region_change or {}).get("kind")
    out = {}
    if "kind" in truth:
        allowed = KIND_WORDS.get(str(truth["kind"]).lower(), {str(truth["kind"]).lower()})
        out["kind"] = {"truth": truth["kind"], "said": said_kind, "right": said_kind in allowed}
    for side in ("left", "right"):
        key = f"colour_{side}"
        if key in truth:
            said = _colour(region_change, side)
            out[key] = {"truth": truth[key], "said": said, "right": said == truth[key]}
    return out


@dataclass
class WordsTally:
    """Description accuracy pooled over the matched, labelled changes; a labelled change no region matched
    counts as wrong (nothing was said about it)."""

    right: dict[str, int] = field(default_factory=lambda: {k: 0 for k in (*WORD_FIELDS, "both_colours")})
    total: dict[str, int] = field(default_factory=lambda: {k: 0 for k in (*WORD_FIELDS, "both_colours")})

    def add(self, checks: dict) -> None:
        for key in WORD_FIELDS:
            if key in checks:
                self.total[key] += 1
                self.right[key] += bool(checks[key]["right"])
        if "colour_left" in checks and "colour_right" in checks:
            self.total["both_colours"] += 1
            self.right["both_colours"] += bool(checks["colour_left"]["right"] and checks["colour_right"]["right"])

    def add_missed(self, truth: dict) -> None:
        self.add({k: {"right": False} for k in WORD_FIELDS if k in truth}
                 | ({"colour_left": {"right": False}, "colour_right": {"right": False}}
                    if "colour_left" in truth and "colour_right" in truth else {}))

    def summary(self) -> dict:
        return {k: {"right": self.right[k], "of": self.total[k],
                    "share": round(self.right[k] / self.total[k], 4) if self.total[k] else None}
                for k in self.right if self.total[k]}


WORDS_LABELS = {"kind": "kind", "colour_left": "old colour", "colour_right": "new colour",
                "both_colours": "both colours"}


def words_line(summary: dict) -> str:
    """e.g. "kind 0.931 (162/174), old colour 0.960 (48/50), new colour ..." """
    return ", ".join(f"{WORDS_LABELS[k]} {v['share']:.3f} ({v['right']}/{v['of']})" for k, v in summary.items())
