// imgdiff-rt's page: pick two images, POST them to /v1/diff, draw the numbered regions over both images.
// Plain script, no framework, no network beyond this server (the page's Content-Security-Policy says so).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (sel, root = document) => root.querySelector(sel);
const state = { files: { left: null, right: null }, info: null, result: null, selected: null, jsonUrl: null };

function el(tag, attrs = {}, text = null) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ---- server info and per-request options ------------------------------------------------------------------
async function loadInfo() {
  try {
    const resp = await fetch("/v1/info");
    const info = await resp.json();
    state.info = info;
    const w = info.weights;
    const kinds = w.models_ran ? [...new Set(Object.values(w.graphs).map((g) => g.weights))].join(", ") : "no model";
    $("#server-info").textContent =
      `v${info.version} · detector ${info.pipeline.detector} · captioner ${info.pipeline.captioner} · weights: ${kinds}`;
    const notes = [info.notice, w.note].filter(Boolean);
    if (notes.length) { $("#notice").textContent = notes.join(" — "); $("#notice").hidden = false; }
    $("#use-example").hidden = !info.example;
    buildOptionFields(info.options);
  } catch (err) {
    $("#server-info").textContent = "server unreachable";
  }
}

function buildOptionFields(options) {
  const box = $("#option-fields");
  box.replaceChildren();
  for (const opt of options) {
    const label = el("label", { title: opt.help || "" });
    label.append(el("span", {}, opt.field));
    let input;
    if (opt.type === "bool") {
      input = el("input", { type: "checkbox" });
      input.checked = Boolean(opt.server_value);
    } else if (opt.type === "choice") {
      input = el("select");
      for (const c of opt.choices) input.append(el("option", { value: c }, c));
      input.value = String(opt.server_value);
    } else {
      input = el("input", { type: "text", placeholder: opt.server_value === null ? "auto" : String(opt.server_value) });
    }
    input.dataset.field = opt.field;
    input.dataset.kind = opt.type;
    input.dataset.server = JSON.stringify(opt.server_value);
    label.append(input);
    box.append(label);
  }
}

function changedOptions() {
  // Only what the user changed is sent: the rest stays the server's setting.
  const out = {};
  for (const input of document.querySelectorAll("#option-fields [data-field]")) {
    const server = JSON.parse(input.dataset.server);
    if (input.dataset.kind === "bool") {
      if (input.checked !== Boolean(server)) out[input.dataset.field] = input.checked;
    } else if (input.dataset.kind === "choice") {
      if (input.value !== String(server)) out[input.dataset.field] = input.value;
    } else if (input.value.trim() !== "") {
      out[input.dataset.field] = input.value.trim();
    }
  }
  return out;
}

// ---- choosing images ---------------------------------------------------------------------------------------
function setFile(side, file) {
  state.files[side] = file;
  const zone = $(`#drop-${side}`);
  const preview = $(".preview", zone);
  const old = preview.src;
  preview.src = URL.createObjectURL(file);
  // the previous picture's URL is freed unless the result on show still uses it
  if (old.startsWith("blob:") && ![...document.querySelectorAll(".photo")].some((p) => p.src === old)) {
    URL.revokeObjectURL(old);
  }
  preview.hidden = false;
  $(".file-name", zone).textContent = `${file.name} · ${(file.size / 1024).toFixed(0)} KiB`;
  $("#compare").disabled = !(state.files.left && state.files.right);
}

function wireDropZone(side) {
  const zone = $(`#drop-${side}`);
  $(`#file-${side}`).addEventListener("change", (e) => { if (e.target.files[0]) setFile(side, e.target.files[0]); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files];
    if (files.length >= 2) { setFile("left", files[0]); setFile("right", files[1]); }
    else if (files.length === 1) setFile(side, files[0]);
  });
}

async function useExample() {
  showError("");
  for (const side of ["left", "right"]) {
    const resp = await fetch(`/v1/example/${side}.png`);
    if (!resp.ok) { showError((await resp.json()).error); return; }
    setFile(side, new File([await resp.blob()], `${side}.png`, { type: "image/png" }));
  }
}

// ---- comparing ---------------------------------------------------------------------------------------------
async function compare() {
  showError("");
  const form = new FormData();
  form.append("left", state.files.left);
  form.append("right", state.files.right);
  const options = changedOptions();
  if (Object.keys(options).length) form.append("options", JSON.stringify(options));
  if (ignoreField()) form.append("ignore", ignoreField()); // ignore.js
  $("#compare").disabled = true;
  const started = performance.now();
  $("#status").textContent = "comparing…";
  try {
    const resp = await fetch("/v1/diff", { method: "POST", body: form });
    const body = await resp.json();
    if (!resp.ok) {
      clearResult();
      showError(`${resp.status}: ${body.error}`);
      $("#status").textContent = "";
      return;
    }
    $("#status").textContent = `done in ${((performance.now() - started) / 1000).toFixed(2)} s (round trip)`;
    await showResult(body);
  } catch (err) {
    clearResult();
    showError(`request failed: ${err}`);
    $("#status").textContent = "";
  } finally {
    $("#compare").disabled = false;
  }
}

function clearResult() {
  // an error's message must not sit beside the previous pair's boxes and list, as if they were its result
  state.result = null;
  state.selected = null;
  $("#result").hidden = true;
  document.querySelectorAll("#views svg.boxes").forEach((svg) => svg.replaceChildren());
  $("#regions").replaceChildren();
  $("#summary").textContent = "";
}

async function showResult(result) {
  state.result = result;
  state.selected = null;
  const [w, h] = result.size;
  const views = { left: $("#view-left"), right: $("#view-right") };
  for (const side of ["left", "right"]) {
    const stage = $(".stage", views[side]);
    stage.style.aspectRatio = `${w} / ${h}`;
    $(".photo", stage).src = $(`#drop-${side} .preview`).src;
    $(`.caption-${side}`).textContent = result[side] || side;
  }
  drawBoxes($(".boxes", views.left), result.regions.map((r) => r.bbox), result.regions, w, h);
  drawBoxes($(".boxes", views.right), result.job.right_boxes, result.regions, w, h);
  drawIgnored(result); // ignore.js
  listRegions(result);
  listTimings(result);
  setDownloads(result);
  $("#result").hidden = false;
  await loadMask(result);
}

function drawBoxes(svg, boxes, regions, w, h) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const fontSize = Math.max(12, Math.round(Math.max(w, h) / 32));
  regions.forEach((region, i) => {
    const [x0, y0, x1, y1] = boxes[i];
    const g = el("svg:g", { class: "region", "data-id": region.id });
    g.append(el("svg:rect", { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0),
                              "vector-effect": "non-scaling-stroke" }));
    const tagY = y0 - fontSize * 1.25 >= 0 ? y0 - fontSize * 1.25 : y1;
    const tagW = fontSize * (0.75 + 0.6 * String(region.id).length);
    g.append(el("svg:rect", { class: "tag", x: x0, y: tagY, width: tagW, height: fontSize * 1.25 }));
    g.append(el("svg:text", { x: x0 + fontSize * 0.35, y: tagY + fontSize, "font-size": fontSize }, String(region.id)));
    wireRegion(g, region.id);
    svg.append(g);
  });
}

function listRegions(result) {
  const list = $("#regions");
  list.replaceChildren();
  const n = result.regions.length;
  $("#regions-title").textContent = `Regions (${n})`;
  $("#summary").textContent = result.description || (n ? "" : "No differences found.");
  const warnings = $("#warnings");
  warnings.replaceChildren(...(result.warnings || []).map((w) => el("li", {}, w)));
  warnings.hidden = !(result.warnings || []).length;
  for (const r of result.regions) {
    const li = el("li", { "data-id": r.id });
    const head = el("div");
    head.append(el("span", { class: "num" }, String(r.id)), el("span", { class: "desc" }, r.description || "(no description)"));
    const facts = [`score ${r.score.toFixed(3)}`, `area ${r.area} px`, `box ${r.bbox.join(", ")}`, `source ${r.source}`];
    if (r.similarity !== null) facts.push(`similarity ${r.similarity.toFixed(3)}`);
    li.append(head, el("div", { class: "facts" }, facts.join(" · ")));
    if (r.caption_left || r.caption_right) {
      li.append(el("div", { class: "captions" }, `left: ${r.caption_left || "—"} · right: ${r.caption_right || "—"}`));
    }
    wireRegion(li, r.id);
    list.append(li);
  }
}

function listTimings(result) {
  const body = $("#timings tbody");
  body.replaceChildren();
  for (const [stage, ms] of Object.entries(result.timings_ms)) {
    const tr = el("tr");
    tr.append(el("td", {}, stage), el("td", {}, `${ms.toFixed(1)} ms`));
    body.append(tr);
  }
  const s = result.settings;
  $("#produced-by").textContent = `detector ${s.detector}, captioner ${s.captioner}, align ${s.align}`;
}

function setDownloads(result) {
  const { job } = result;
  const json = new Blob([JSON.stringify(result, null, 2)], { type: "application/json" });
  if (state.jsonUrl) URL.revokeObjectURL(state.jsonUrl);
  state.jsonUrl = URL.createObjectURL(json);
  Object.assign($("#dl-json"), { href: state.jsonUrl, download: `${job.id}.json` });
  Object.assign($("#dl-annotated"), { href: job.links.annotated_png, download: `${job.id}.png` });
  Object.assign($("#dl-imgdiff"), { href: job.links.img_diff, download: `${job.id}-img-diff.json` });
}

// ---- highlighting: one region on both images and in the list ----------------------------------------------
function members(id) {
  return document.querySelectorAll(`#result [data-id="${id}"]`);
}

function wireRegion(node, id) {
  node.addEventListener("mouseenter", () => members(id).forEach((m) => m.classList.add("hl")));
  node.addEventListener("mouseleave", () => members(id).forEach((m) => m.classList.remove("hl")));
  node.addEventListener("click", () => select(state.selected === id ? null : id));
}

function select(id) {
  document.querySelectorAll("#result .selected").forEach((m) => m.classList.remove("selected"));
  state.selected = id;
  if (id === null) return;
  members(id).forEach((m) => m.classList.add("selected"));
  const li = $(`#regions li[data-id="${id}"]`);
  if (li) li.scrollIntoView({ block: "nearest" });
}

// ---- change mask overlay -----------------------------------------------------------------------------------
async function loadMask(result) {
  const canvases = document.querySelectorAll("#views canvas.mask");
  canvases.forEach((c) => { c.hidden = true; });
  if (!result.job.has_mask) { $("#mask-toggle").disabled = true; return; }
  const resp = await fetch(result.job.links.mask_png);
  if (!resp.ok) { $("#mask-toggle").disabled = true; return; }
  const bitmap = await createImageBitmap(await resp.blob());
  // The mask is in the left image's frame: over the right image only when no registration moved it.
  const aligned = result.settings.alignment && result.settings.alignment.method !== "none";
  canvases.forEach((canvas) => {
    if (aligned && canvas.closest("#view-right")) { canvas.dataset.off = "1"; return; }
    delete canvas.dataset.off;
    tintMask(canvas, bitmap);
  });
  $("#mask-toggle").disabled = false;
  applyMaskControls();
}

function tintMask(canvas, bitmap) {
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const img = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  const px = img.data;
  for (let i = 0; i < px.length; i += 4) {
    const on = px[i] > 127;
    px[i] = 255; px[i + 1] = 0; px[i + 2] = 200; px[i + 3] = on ? 255 : 0;
  }
  ctx.putImageData(img, 0, 0);
}

function applyMaskControls() {
  const show = $("#mask-toggle").checked;
  const opacity = Number($("#mask-opacity").value) / 100;
  document.querySelectorAll("#views canvas.mask").forEach((c) => {
    c.hidden = !show || c.dataset.off === "1";
    c.style.opacity = String(opacity);
  });
}

// ---- start -------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  wireDropZone("left");
  wireDropZone("right");
  $("#use-example").addEventListener("click", useExample);
  $("#compare").addEventListener("click", compare);
  $("#mask-toggle").addEventListener("change", applyMaskControls);
  $("#mask-opacity").addEventListener("input", () => {
    if (!$("#mask-toggle").checked) $("#mask-toggle").checked = true;
    applyMaskControls();
  });
  loadInfo();
});
