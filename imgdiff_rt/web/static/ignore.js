// Ignore boxes on imgdiff-rt's page: typed in #ignore-boxes ("x0,y0,x1,y1; ..." in left-image pixels) or drawn
// with the mouse on the left result image; sent as the request's `ignore` field (app.js's compare), and every
// ignored box the server applied (its own and the request's) is shown greyed over the images.
"use strict";

const MIN_DRAWN_PX = 2; // a click without a drag is not a box

function ignoreField() {
  return $("#ignore-boxes").value.trim();
}

function addIgnoreBox(box) {
  const input = $("#ignore-boxes");
  input.value = [input.value.trim(), box.join(",")].filter(Boolean).join("; ");
}

function drawIgnored(result) {
  // In the left image's frame: over the right image only when no registration moved it (as the mask).
  const boxes = (result.settings.ignore && result.settings.ignore.boxes_px) || [];
  const aligned = result.settings.alignment && result.settings.alignment.method !== "none";
  for (const svg of document.querySelectorAll("#views svg.boxes")) {
    svg.querySelectorAll(".ignored").forEach((n) => n.remove());
    if (aligned && svg.closest("#view-right")) continue;
    for (const [x0, y0, x1, y1] of boxes) {
      svg.prepend(el("svg:rect", { class: "ignored", x: x0, y: y0, width: Math.max(1, x1 - x0),
                                   height: Math.max(1, y1 - y0), "vector-effect": "non-scaling-stroke" }));
    }
  }
}

function imagePoint(svg, event) {
  // the SVG spans the image exactly (viewBox = image size, no aspect preservation)
  const r = svg.getBoundingClientRect();
  const [w, h] = state.result.size;
  const x = Math.min(Math.max(event.clientX - r.left, 0), r.width);
  const y = Math.min(Math.max(event.clientY - r.top, 0), r.height);
  return [x / r.width * w, y / r.height * h];
}

function setDrawing(on) {
  $("#ignore-draw").setAttribute("aria-pressed", String(on));
  $("#view-left .stage").classList.toggle("drawing", on);
}

function wireIgnoreDrawing() {
  const svg = $("#view-left svg.boxes");
  let start = null;
  let draft = null;
  svg.addEventListener("pointerdown", (e) => {
    if (!$("#view-left .stage").classList.contains("drawing") || !state.result) return;
    e.preventDefault();
    svg.setPointerCapture(e.pointerId);
    start = imagePoint(svg, e);
    draft = el("svg:rect", { class: "ignore-draft", x: start[0], y: start[1], width: 0, height: 0,
                             "vector-effect": "non-scaling-stroke" });
    svg.append(draft);
  });
  svg.addEventListener("pointermove", (e) => {
    if (!start) return;
    const [x, y] = imagePoint(svg, e);
    Object.entries({ x: Math.min(x, start[0]), y: Math.min(y, start[1]), width: Math.abs(x - start[0]),
                     height: Math.abs(y - start[1]) }).forEach(([k, v]) => draft.setAttribute(k, v));
  });
  svg.addEventListener("pointerup", (e) => {
    if (!start) return;
    const [x, y] = imagePoint(svg, e);
    const box = [Math.min(x, start[0]), Math.min(y, start[1]), Math.max(x, start[0]), Math.max(y, start[1])];
    start = null;
    draft.remove();
    if (box[2] - box[0] < MIN_DRAWN_PX || box[3] - box[1] < MIN_DRAWN_PX) return;
    addIgnoreBox([Math.floor(box[0]), Math.floor(box[1]), Math.ceil(box[2]), Math.ceil(box[3])]);
    setDrawing(false);
    compare(); // the new box takes effect at once
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#ignore-draw").addEventListener("click", () => {
    setDrawing($("#ignore-draw").getAttribute("aria-pressed") !== "true");
  });
  $("#ignore-clear").addEventListener("click", () => {
    $("#ignore-boxes").value = "";
    if (state.result) compare();
  });
  wireIgnoreDrawing();
});
