"""When an answer is unsure, the result says so: one line per reason in ``Result.warnings`` (and on stderr at
the CLI), read from the facts the pipeline recorded. The floors below were measured across the sets in
docs/descriptions.md."""

from __future__ import annotations

from imgdiff_rt.result import Result

POOR_FIT_SHARE = 0.6  # a flow fit with fewer forward-backward consistent pixels than this registered poorly...
POOR_FIT_RESIDUAL_PX = 2.0  # ...as does one whose median forward-backward error reaches this
# A poor fit that lowered the mean difference by less than this factor did not find real camera motion: it bent
# the image around the changes. Such a pair that found nothing is compared unaligned too, and the warning says
# what that finds (Pipeline.compare_unaligned).
LITTLE_IMPROVEMENT = 0.75
SMALL_OVERLAP = 0.5  # a registered overlap under this share of the image leaves much of it uncompared
BROAD_CHANGE_SHARE = 0.5  # regions covering this share of the image: the images may not show one scene
# Regions covering this share: broad change, as on an aerial tile a season apart (measured with the pixel
# detector's defaults: at most 16% on the synthetic, puzzle and CLEVR-Change sets, 55-100% on the LEVIR-CD tiles
# with regions; docs/detection.md).
AERIAL_BROAD_SHARE = 0.25
ASPECT_TOLERANCE = 0.02  # relative aspect-ratio difference above which a resize stretches the right image


def fit_facts(result: Result) -> dict:
    alignment = result.settings.get("alignment") or {}
    return {**(alignment.get("fit") or {}), "method": alignment.get("method"), "note": alignment.get("note", "")}


def poor_fit(result: Result) -> bool:
    fit = fit_facts(result)
    if fit.get("method") not in ("flow", "flow-homography") or "consistent_share" not in fit:
        return False
    return fit["consistent_share"] < POOR_FIT_SHARE or fit.get("fb_residual_px", 0.0) >= POOR_FIT_RESIDUAL_PX


def fit_barely_helped(result: Result) -> bool:
    """A poor fit whose warp hardly made the images agree better: what it 'registered' was the change."""
    gain = fit_facts(result).get("improvement")
    return poor_fit(result) and gain is not None and gain > LITTLE_IMPROVEMENT


def _registration(result: Result) -> list[str]:
    alignment = result.settings.get("alignment") or {}
    fit = fit_facts(result)
    if alignment.get("method") == "none" and fit.get("consistent_share") is not None \
            and alignment.get("note") and "not warped" not in alignment["note"]:
        return [f"registration was refused ({alignment['note']}): the images were compared as they are, so a "
                f"moved camera shows as change"]
    if not poor_fit(result):
        return []
    text = (f"registration fitted poorly ({fit['consistent_share']:.0%} of textured pixels consistent, "
            f"forward-backward error {fit.get('fb_residual_px', 0.0):.1f} px): small changes may be missed and "
            f"parallax may show as change")
    overlap = alignment.get("overlap", 1.0)
    if overlap < SMALL_OVERLAP:
        text += f"; only {overlap:.0%} of the image could be compared after the warp"
    unaligned = result.settings.get("compared_unaligned")
    if unaligned is not None and unaligned["regions"]:
        text += (f"; the warp barely improved the match (mean difference x{fit.get('improvement', 0):.2f}) and "
                 f"found nothing, while the images compared as they are differ in {unaligned['regions']} "
                 f"region(s) covering {unaligned['share']:.0%} of the image (--align none reports them)")
    return [text]


def _resized(result: Result) -> list[str]:
    source = result.settings.get("right_resized_from")
    if not source:
        return []
    (rw, rh), (w, h) = source, result.size
    text = f"the right image ({rw}x{rh}) was resized to the left image's size ({w}x{h})"
    stretch = abs((rw / rh) / (w / h) - 1.0)
    if stretch > ASPECT_TOLERANCE:
        text += f"; their aspect ratios differ by {stretch:.0%}, so it was stretched: they may not show one scene"
    return [text]


def _broad(result: Result) -> list[str]:
    """One line for broad change: most of the image (the images may not show one scene), or a quarter of it
    from the pixel detector (an aerial tile a season apart, whose building change it cannot tell)."""
    share = sum(r.area for r in result.regions) / float(result.size[0] * result.size[1])
    if share >= BROAD_CHANGE_SHARE:
        return [f"most of the image differs ({share:.0%} of it in the regions): the two images may not show one "
                f"scene, or the change is broad (a pixel comparison cannot tell buildings from seasons)"]
    if share >= AERIAL_BROAD_SHARE and result.settings.get("detector", "pixel") == "pixel":
        return [f"broad change ({share:.0%} of the image): on an aerial or satellite tile, building change is "
                f"outside what the pixel detector can tell from seasons, light and view (it needs a trained "
                f"change-detection model)"]
    return []


def caveats(result: Result) -> tuple[str, ...]:
    return tuple(_resized(result) + _registration(result) + _broad(result))


def with_caveats(result: Result) -> Result:
    for text in caveats(result):
        result = result.with_warning(text)
    return result
