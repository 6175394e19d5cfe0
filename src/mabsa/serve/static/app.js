// The mabsa page: post + image in, highlighted aspects, face/region overlay and evidence out.
// Plain JS, no external assets: the page works on a machine without internet.
"use strict";

const $ = (id) => document.getElementById(id);
const POLARITY = { POS: "positive", NEU: "neutral", NEG: "negative" };
let chosenImage = null; // Blob of the current image (upload, drop or example)
let imageURL = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function setImage(blob) {
  chosenImage = blob;
  if (imageURL) URL.revokeObjectURL(imageURL);
  imageURL = blob ? URL.createObjectURL(blob) : null;
  $("preview").hidden = !blob;
  $("drop-hint").hidden = !!blob;
  $("clear-image").hidden = !blob;
  if (blob) $("preview").src = imageURL;
  else { $("preview").removeAttribute("src"); $("image-input").value = ""; }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
  if (message) $("result").hidden = true; // never leave the previous post's answer under an error
}

function pct(value) { return value == null ? "" : `${Math.round(value * 100)}%`; }

// -- rendering -----------------------------------------------------------------------------
function renderText(data) {
  const p = $("result-text");
  p.replaceChildren();
  const located = data.aspects.every((a) => a.char_start != null);
  const text = located ? data.text : data.tokens.join(" ");
  let offsets = data.aspects.map((a) => [a.char_start, a.char_end]);
  if (!located) { // place the aspects by token position in the joined tokens
    const starts = []; let pos = 0;
    for (const t of data.tokens) { starts.push(pos); pos += t.length + 1; }
    offsets = data.aspects.map((a) => [starts[a.start], starts[a.end - 1] + data.tokens[a.end - 1].length]);
  }
  let cursor = 0;
  data.aspects.forEach((a, i) => {
    const [s, e] = offsets[i];
    if (s > cursor) p.append(text.slice(cursor, s));
    const cls = a.polarity || "none";
    const label = a.polarity ? POLARITY[a.polarity] : "aspect";
    p.append(el("mark", {
      class: `aspect ${cls}`, dataset: { index: i, polarity: cls },
      title: `${a.term}: ${label}${a.score != null ? ` (${pct(a.score)} confident)` : ""}`,
    }, text.slice(s, e), el("span", { class: "conf" }, pct(a.score))));
    cursor = e;
  });
  p.append(text.slice(cursor));
}

function renderTable(data) {
  const body = $("aspect-table").querySelector("tbody");
  body.replaceChildren();
  data.aspects.forEach((a, i) => {
    const aligned = a.aligned ? `${a.aligned.kind} ${a.aligned.index + 1}: ${a.aligned.description}` : "-";
    body.append(el("tr", { dataset: { index: i } },
      el("td", {}, a.term),
      el("td", { class: a.polarity || "" }, a.polarity ? POLARITY[a.polarity] : "-"),
      el("td", {}, pct(a.score) || "-"),
      el("td", {}, aligned)));
  });
  $("aspect-table").hidden = data.aspects.length === 0;
  $("no-aspects").hidden = data.aspects.length > 0;
}

function box(kind, index, b, size, label) {
  const [x, y, w, h] = b;
  const [W, H] = size;
  return el("div", {
    class: `box ${kind}`, dataset: { kind, index },
    style: `left:${(100 * x) / W}%;top:${(100 * y) / H}%;width:${(100 * w) / W}%;height:${(100 * h) / H}%`,
  }, el("span", { class: "tag" }, label));
}

function renderVisual(data) {
  const image = data.image;
  $("visual").hidden = !imageURL;
  if (!imageURL) return;
  $("result-image").src = imageURL;
  const overlay = $("overlay");
  overlay.replaceChildren();
  if (!image || !image.width) return;
  const size = [image.width, image.height];
  image.faces.forEach((f, i) => {
    if (f.box) overlay.append(box("face", i, f.box, size, `face ${i + 1}${f.emotion ? `: ${f.emotion}` : ""}`));
  });
  image.regions.forEach((r, i) => {
    if (!r.is_background) overlay.append(box("region", i, r.box, size, `region ${i + 1}`));
  });
}

function renderEvidence(data) {
  const list = $("evidence-list");
  list.replaceChildren();
  const add = (term, ...desc) => { list.append(el("dt", {}, term)); desc.forEach((d) => list.append(el("dd", {}, d))); };
  const image = data.image;
  if (image) {
    if (!image.confident) add("No confident evidence", "nothing in this image was recognised with confidence (no face, no object or region named above the floor)");
    if (image.caption) add("Caption", image.caption, el("span", { class: "muted" }, image.caption_source || ""));
    if (image.face_description) add("Faces", image.face_description);
    const regions = image.regions.map((r, i) => r.interpretation && `${r.is_background ? "background" : `region ${i + 1}`}: ${r.interpretation}`).filter(Boolean);
    if (regions.length) add("Regions", ...regions);
  }
  data.aspects.forEach((a) => {
    const parts = [];
    if (image && !a.aligned) parts.push("no face or region of the image is near enough to this term to be shown as its evidence");
    if (a.aligned) parts.push(`aligned ${a.aligned.kind} ${a.aligned.index + 1} (similarity ${a.aligned.similarity.toFixed(2)}): ${a.aligned.description}`);
    if (a.rationale) parts.push(`rationale: ${[a.rationale.description, a.rationale.reason].filter(Boolean).join(" ")}`);
    if (parts.length) add(`"${a.term}"`, ...parts);
  });
  add("Model input", data.image_used ? "the post text and the image (its caption and faces, or its pixels)"
    : "the post text only; the image is shown as evidence");
  if (data.evidence_error) add("Evidence unavailable", data.evidence_error);
  $("evidence-panel").hidden = list.childElementCount === 0;
}

function linkHover(data) {
  const targets = document.querySelectorAll("#result-text mark.aspect, #aspect-table tbody tr");
  targets.forEach((node) => {
    const a = data.aspects[Number(node.dataset.index)];
    const boxNode = a && a.aligned && document.querySelector(
      `#overlay .box[data-kind="${a.aligned.kind === "face" ? "face" : "region"}"][data-index="${a.aligned.index}"]`);
    node.addEventListener("mouseenter", () => { if (boxNode) boxNode.classList.add("active"); });
    node.addEventListener("mouseleave", () => { if (boxNode) boxNode.classList.remove("active"); });
  });
}

function render(data) {
  renderText(data);
  renderTable(data);
  renderVisual(data);
  renderEvidence(data);
  linkHover(data);
  const t = data.timing_ms;
  $("timing").textContent = `model ${data.model} (${data.task}) · ${Math.round(t.total)} ms` +
    (t.perception != null ? ` (perception ${Math.round(t.perception)} ms)` : "") + (data.truncated ? " · post truncated" : "");
  $("result").hidden = false;
}

// -- actions -------------------------------------------------------------------------------
async function analyse(event) {
  if (event) event.preventDefault();
  showError("");
  const text = $("post-text").value;
  if (!text.trim()) { showError("Type the text of a post first."); return; }
  const form = new FormData();
  form.append("text", text);
  if (chosenImage) form.append("image", chosenImage, chosenImage.name || "image");
  form.append("evidence", $("evidence").checked ? "true" : "false");
  if (!$("aspects-field").hidden) { // masc models classify the aspects they are given
    $("aspects").value.split(",").map((a) => a.trim()).filter(Boolean).forEach((a) => form.append("aspects", a));
  }
  $("analyse").disabled = true;
  $("status").textContent = "Analysing…";
  try {
    const response = await fetch("/v1/predict", { method: "POST", body: form });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const err = data && data.error;
      showError(err ? `${err.message} (${err.code})` : `The server answered ${response.status}.`);
      $("status").textContent = "";
      return;
    }
    render(data);
    $("status").textContent = `${data.aspects.length} aspect${data.aspects.length === 1 ? "" : "s"} found.`;
  } catch (e) {
    showError(`Could not reach the server: ${e.message}`);
    $("status").textContent = "";
  } finally {
    $("analyse").disabled = false;
  }
}

async function loadExamples() {
  try {
    const response = await fetch("/v1/examples");
    const { examples } = await response.json();
    for (const ex of examples) {
      const button = el("button", { type: "button", class: "example", dataset: { name: ex.name } },
        el("img", { src: ex.image_url, alt: ex.name }), el("span", {}, ex.text));
      button.addEventListener("click", async () => {
        $("post-text").value = ex.text;
        const blob = await (await fetch(ex.image_url)).blob();
        setImage(new File([blob], `${ex.name}.jpg`, { type: blob.type || "image/jpeg" }));
        analyse();
      });
      $("example-list").append(button);
    }
  } catch (e) { $("examples").hidden = true; }
}

async function loadModelInfo() {
  try {
    const info = await (await fetch("/v1/models")).json();
    const m = info.models.find((x) => x.name === info.default) || {};
    $("model-info").textContent = `model: ${info.default}${m.model ? ` (${m.model}, ${m.task})` : ""}`;
    if (info.limits) $("post-text").maxLength = info.limits.max_text_chars;
    $("aspects-field").hidden = !m.needs_aspects;
  } catch (e) { /* the page still works */ }
}

function setUp() {
  $("post-form").addEventListener("submit", analyse);
  $("image-input").addEventListener("change", (e) => setImage(e.target.files[0] || null));
  $("clear-image").addEventListener("click", () => setImage(null));
  const zone = $("drop-zone");
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (e) => {
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/"));
    if (file) setImage(file); else showError("That is not an image file.");
  });
  loadExamples();
  loadModelInfo();
}

setUp();
