// vcpred serve: the viewer page. Plain JavaScript, no libraries, nothing loaded from the internet.
// The volume arrives as raw float32 [slices, rows, cols] (canonical sagittal display); the window,
// zoom, ROI drawing and heat-map overlay happen here, every number comes from the server.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  model: null, study: null, volume: null, shape: null, spacing: null, defaultWindow: null,
  window: null, slice: 0, zoom: 1, pan: [0, 0], roi: null, drag: null,
  heat: null, heatRange: null, result: null,
};

// ---------- server calls ----------

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// Every state-changing request carries this header: the server refuses POST/DELETE without it (no
// other site's page can send it), and JSON bodies must say they are JSON.
const PAGE_HEADER = {"X-Vcpred-Request": "1"};

const postJson = (path, body) => api(path, {
  method: "POST", headers: {...PAGE_HEADER, "Content-Type": "application/json"}, body: JSON.stringify(body)});

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setPageState(name) { document.body.dataset.state = name; }

const percent = (p) => `${(100 * p).toFixed(1)} %`;

// ---------- model description and the clinical form ----------

async function loadModel() {
  state.model = await (await api("/api/model")).json();
  const m = state.model;
  $("notice").textContent = m.notice;
  showSyntheticWarning(m.warning);
  $("model-info").textContent = `Model ${m.model_id}: ${m.splits} split models, risk threshold ` +
    `${percent(m.threshold)}; the model reads ${2 * m.k + 1} adjacent sagittal frames around the ROI slice.`;
  buildForm(m.clinical);
  if (m.local_folder) loadLocalList();
}

// A model trained on synthetic data (vcpred synth) says so at the top and above every result.
function showSyntheticWarning(warning) {
  for (const id of ["synthetic-warning", "result-synthetic-warning"]) {
    $(id).textContent = warning ? `${warning.charAt(0).toUpperCase()}${warning.slice(1)}.` : "";
    $(id).hidden = !warning;
  }
}

function fieldHint(field) {
  if (field.kind === "categorical") return field.unit || "";
  const [low, high] = [+field.min.toPrecision(4), +field.max.toPrecision(4)];
  const range = field.range_source === "development min-max" ? `training range ${low} to ${high}`
    : `about ${low} to ${high} (${field.range_source})`;
  return field.unit ? `${field.unit}; ${range}` : range;
}

function buildInput(field) {
  if (field.kind === "categorical" || field.values) {
    const select = document.createElement("select");
    const choices = field.kind === "categorical" ? field.choices : field.values.map(String);
    select.append(new Option("", ""), ...choices.map((c) => new Option(c, c)));
    return select;
  }
  const input = document.createElement("input");
  Object.assign(input, {type: "number", step: "any", placeholder: `e.g. ${+field.median.toPrecision(4)}`});
  input.min = String(field.plausible[0]);
  input.max = String(field.plausible[1]);
  return input;
}

function buildForm(fields) {
  const box = $("clinical-fields");
  box.replaceChildren();
  if (!fields.length) box.textContent = "This model uses no clinical values.";
  for (const field of fields) {
    const row = document.createElement("div");
    row.className = "field";
    const label = document.createElement("label");
    label.textContent = field.name + " ";
    const input = buildInput(field);
    input.name = field.name;
    input.id = `clinical-${field.name}`;
    input.required = true;
    input.addEventListener("input", () => checkField(field, input));
    const hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = fieldHint(field);
    const warn = document.createElement("span");
    warn.className = "warn";
    label.append(input, hint);
    row.append(label, warn);
    box.append(row);
  }
  $("allow-missing").addEventListener("change", () => {
    for (const input of box.querySelectorAll("input, select")) input.required = !$("allow-missing").checked;
  });
}

// Client-side checks mirror the server's (serve/clinical.py): numbers, plausible range, categories;
// outside the training range only warns.
function checkField(field, input) {
  const warn = input.closest(".field").querySelector(".warn");
  warn.textContent = "";
  input.setCustomValidity("");
  if (input.value === "" || field.kind === "categorical" || field.values) return;
  const value = Number(input.value);
  if (!Number.isFinite(value)) input.setCustomValidity(`${field.name} must be a number`);
  else if (value < field.plausible[0] || value > field.plausible[1])
    input.setCustomValidity(`${field.name} is far outside the training range (a typo?)`);
  else if (value < field.min || value > field.max)
    warn.textContent = "outside the training range: the model extrapolates";
}

function clinicalValues() {
  const values = {};
  for (const field of state.model.clinical) {
    const value = $(`clinical-${field.name}`).value.trim();
    if (value !== "") values[field.name] = value;
  }
  return values;
}

// ---------- loading a study ----------

async function loadLocalList() {
  const listing = await (await api("/api/local")).json();
  $("local").hidden = !listing.enabled;
  $("local-list").replaceChildren(...listing.entries.map((entry) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = entry.name;
    button.addEventListener("click", () => openStudy(() => postJson("/api/studies/local", {name: entry.name})));
    item.append(button, ` ${entry.kind}`);
    return item;
  }));
}

async function uploadFile(file) {
  if (!file) return;
  if (file.size > state.model.max_upload_mb * 1024 * 1024) {
    setStatus(`the file is over the ${state.model.max_upload_mb} MB upload limit`, true);
    return;
  }
  await openStudy(() => api("/api/studies", {
    method: "POST", body: file, headers: {...PAGE_HEADER, "Content-Type": "application/octet-stream"}}));
}

async function openStudy(request) {
  await closeStudy();
  setStatus("loading the study...");
  setPageState("loading");
  try {
    const study = await (await request()).json();
    state.study = study.study_id;
    $("close-study").hidden = false;
    showSeries(study);
    if (study.chosen) await showVolume(study.chosen);
    else setStatus("the study holds several series: open the sagittal one");
  } catch (error) {
    setStatus(error.message, true);
    setPageState("empty");
  }
}

function showSeries(study) {
  const body = $("series-table").querySelector("tbody");
  body.replaceChildren(...study.series.map((series) => {
    const row = document.createElement("tr");
    row.className = series.usable ? "" : "refused";
    const cells = [series.description, series.plane, String(series.slices)].map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    });
    const action = document.createElement("td");
    if (series.usable) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "open";
      button.dataset.series = series.id;
      button.addEventListener("click", () => chooseSeries(series.id));
      action.append(button);
    } else {
      action.textContent = series.refused;
    }
    row.append(...cells, action);
    return row;
  }));
  $("series-table").hidden = study.series.length < 2;
}

async function chooseSeries(seriesId) {
  setStatus("reading the series...");
  try {
    const study = await (await postJson(`/api/studies/${state.study}/series`, {series: seriesId})).json();
    await showVolume(study.chosen);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function showVolume(chosen) {
  const buffer = await (await api(chosen.volume)).arrayBuffer();
  Object.assign(state, {
    volume: new Float32Array(buffer), shape: chosen.shape, spacing: chosen.spacing,
    defaultWindow: chosen.window, window: {...chosen.window}, roi: null, heat: null, result: null,
    zoom: 1, pan: [0, 0], slice: Math.floor(chosen.shape[0] / 2),
  });
  const [slices, rows, cols] = chosen.shape;
  Object.assign($("slice"), {max: String(slices - 1), value: String(state.slice), disabled: false});
  $("placeholder").hidden = true;
  $("study-info").textContent = `${chosen.series.description}: ${slices} sagittal slices of ${rows} x ${cols} ` +
    `pixels, ${chosen.spacing.map((s) => s.toFixed(2)).join(" x ")} mm`;
  $("result-panel").hidden = true;
  setStatus("series loaded: draw the ROI");
  setPageState("ready");
  updateRoi();
  render();
}

async function closeStudy() {
  if (!state.study) return;
  const id = state.study;
  state.study = null;
  Object.assign(state, {volume: null, roi: null, heat: null, result: null});
  await fetch(`/api/studies/${id}`, {method: "DELETE", headers: PAGE_HEADER}).catch(() => {});
  $("placeholder").hidden = false;
  $("series-table").hidden = true;
  $("close-study").hidden = true;
  $("result-panel").hidden = true;
  $("frames-panel").hidden = true;
  $("study-info").textContent = "";
  $("slice").disabled = true;
  $("view").getContext("2d").clearRect(0, 0, $("view").width, $("view").height);
  setStatus("study closed; its files were deleted");
  setPageState("empty");
  updateRoi();
}

// ---------- drawing ----------

function geometry() {
  // Physical aspect: a pixel is col_mm wide and row_mm high; fit the image, then zoom and pan.
  const [, rows, cols] = state.shape;
  const [, rowMm, colMm] = state.spacing;
  const canvas = $("view");
  const fit = Math.min(canvas.width / (cols * colMm), canvas.height / (rows * rowMm));
  const sx = fit * colMm * state.zoom, sy = fit * rowMm * state.zoom;
  const ox = (canvas.width - cols * sx) / 2 + state.pan[0], oy = (canvas.height - rows * sy) / 2 + state.pan[1];
  return {sx, sy, ox, oy};
}

function greyImage(slice, rows, cols) {
  const image = new ImageData(cols, rows);
  const {low, high} = state.window;
  const scale = 255 / Math.max(high - low, 1e-6);
  const offset = slice * rows * cols;
  for (let i = 0; i < rows * cols; i++) {
    const v = Math.min(255, Math.max(0, (state.volume[offset + i] - low) * scale));
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  }
  return image;
}

// matplotlib's "jet", the colour map of the report's heat map.
function jet(x) {
  const c = (v) => 255 * Math.min(1, Math.max(0, v));
  return [c(1.5 - Math.abs(4 * x - 3)), c(1.5 - Math.abs(4 * x - 2)), c(1.5 - Math.abs(4 * x - 1))];
}

function blendHeat(image) {
  // Stretched to the map's own min..max like the report; NaN (outside the model's crop) stays grey.
  const alpha = Number($("opacity").value) / 100;
  const [low, high] = state.heatRange;
  for (let i = 0; i < state.heat.length; i++) {
    const h = state.heat[i];
    if (Number.isNaN(h)) continue;
    const rgb = jet(high > low ? (h - low) / (high - low) : 0);
    for (let k = 0; k < 3; k++) image.data[4 * i + k] = (1 - alpha) * image.data[4 * i + k] + alpha * rgb[k];
  }
}

function showsHeat() {
  return state.heat && $("overlay-toggle").checked && state.result && state.slice === state.result.roi.slice;
}

function render() {
  if (!state.volume) return;
  const [, rows, cols] = state.shape;
  const image = greyImage(state.slice, rows, cols);
  const overlay = showsHeat();
  if (overlay) blendHeat(image);
  const buffer = document.createElement("canvas");
  Object.assign(buffer, {width: cols, height: rows});
  buffer.getContext("2d").putImageData(image, 0, 0);
  const canvas = $("view"), ctx = canvas.getContext("2d"), g = geometry();
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = state.zoom < 2;
  ctx.drawImage(buffer, g.ox, g.oy, cols * g.sx, rows * g.sy);
  drawBoxes(ctx, g);
  canvas.dataset.overlay = overlay ? "drawn" : state.heat ? "hidden" : "none";
  canvas.dataset.slice = String(state.slice);
  $("slice-label").textContent = `${state.slice} of 0-${state.shape[0] - 1}` +
    (state.roi && state.slice === state.roi.slice ? " (ROI slice)" : "");
}

function strokeBox(ctx, g, box, colour, dashed) {
  const [r0, c0, r1, c1] = box;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.setLineDash(dashed ? [6, 4] : []);
  ctx.strokeRect(g.ox + c0 * g.sx, g.oy + r0 * g.sy, (c1 - c0) * g.sx, (r1 - r0) * g.sy);
  ctx.restore();
}

function drawBoxes(ctx, g) {
  if (state.drag && state.drag.kind === "roi") strokeBox(ctx, g, dragBox(), "#ffd54f", true);
  if (!state.roi) return;
  const offset = state.slice - state.roi.slice;
  if (offset === 0) strokeBox(ctx, g, state.roi.box, "#4caf50", false);
  else if (Math.abs(offset) <= state.model.k) strokeBox(ctx, g, state.roi.box, "#4caf50", true);
  if (state.result && offset === 0) strokeBox(ctx, g, state.result.crop_box, "#ffffff", true);
}

// ---------- the frames the model will read ----------

// The frame selection of the bundle's SelectFrames: offsets -k..k; beyond the volume the edge
// slice is repeated ("replicate") or the frame dropped ("keep").
function modelFrames() {
  const frames = [], slices = state.shape[0];
  for (let offset = -state.model.k; offset <= state.model.k; offset++) {
    const index = state.roi.slice + offset;
    const inside = index >= 0 && index < slices;
    if (inside || state.model.edge === "replicate")
      frames.push({offset, slice: Math.min(Math.max(index, 0), slices - 1), edge: !inside});
  }
  return frames;
}

// The square crop in millimetres around the box, enlarged by the margin (CropROI).
function cropBox() {
  const [r0, c0, r1, c1] = state.roi.box, [, rowMm, colMm] = state.spacing;
  const side = Math.max((r1 - r0) * rowMm, (c1 - c0) * colMm) * (1 + state.model.margin);
  const rc = (r0 + r1) / 2, cc = (c0 + c1) / 2;
  return [rc - side / rowMm / 2, cc - side / colMm / 2, rc + side / rowMm / 2, cc + side / colMm / 2];
}

function drawFrames() {
  const [, rows, cols] = state.shape, [top, left, bottom, right] = cropBox();
  const size = 96;
  $("frames").replaceChildren(...modelFrames().map((frame) => {
    const cell = document.createElement("div");
    cell.className = "frame" + (frame.offset === 0 ? " main" : "") + (frame.edge ? " edge" : "");
    const canvas = document.createElement("canvas");
    Object.assign(canvas, {width: size, height: size});
    const buffer = document.createElement("canvas");
    Object.assign(buffer, {width: cols, height: rows});
    buffer.getContext("2d").putImageData(greyImage(frame.slice, rows, cols), 0, 0);
    canvas.getContext("2d").drawImage(buffer, left, top, right - left, bottom - top, 0, 0, size, size);
    const label = document.createElement("div");
    label.textContent = `${frame.offset > 0 ? "+" : ""}${frame.offset} · slice ${frame.slice}` +
      (frame.edge ? " (edge)" : "");
    cell.append(canvas, label);
    return cell;
  }));
  const dropped = 2 * state.model.k + 1 - modelFrames().length;
  $("frames-note").textContent = `The ROI slice and ${state.model.k} neighbours on each side, cropped around ` +
    `the box (+${Math.round(100 * state.model.margin)} %)` + (dropped ? `; ${dropped} beyond the volume dropped` : "") + ".";
}

function updateRoi() {
  const ready = Boolean(state.volume && state.roi);
  $("predict").disabled = !state.volume;
  $("frames-panel").hidden = !ready;
  if (!ready) {
    $("roi-info").textContent = "Scroll to the central slice of the fractured vertebra and drag a box around its body.";
    return;
  }
  const [r0, c0, r1, c1] = state.roi.box;
  $("roi-info").textContent = `ROI on slice ${state.roi.slice}: rows ${r0}-${r1}, columns ${c0}-${c1} ` +
    "(drag again to redraw).";
  $("roi-info").dataset.box = state.roi.box.join(",");
  drawFrames();
}

// ---------- mouse: ROI, window/level, pan, slices, zoom ----------

function imagePoint(event) {
  const rect = $("view").getBoundingClientRect(), g = geometry();
  const [, rows, cols] = state.shape;
  const col = (event.clientX - rect.left - g.ox) / g.sx, row = (event.clientY - rect.top - g.oy) / g.sy;
  return [Math.min(rows, Math.max(0, Math.round(row))), Math.min(cols, Math.max(0, Math.round(col)))];
}

function dragBox() {
  const [ra, ca] = state.drag.start, [rb, cb] = state.drag.now;
  return [Math.min(ra, rb), Math.min(ca, cb), Math.max(ra, rb), Math.max(ca, cb)];
}

function currentTool(event) {
  if (event.button === 2) return "wl";
  if (event.shiftKey) return "pan";
  return document.querySelector("input[name=tool]:checked").value;
}

function onMouseDown(event) {
  if (!state.volume) return;
  event.preventDefault();
  const kind = currentTool(event);
  state.drag = {kind, start: imagePoint(event), now: imagePoint(event), x: event.clientX, y: event.clientY,
                window: {...state.window}, pan: [...state.pan]};
}

function onMouseMove(event) {
  const drag = state.drag;
  if (!drag) return;
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (drag.kind === "roi") drag.now = imagePoint(event);
  if (drag.kind === "pan") state.pan = [drag.pan[0] + dx, drag.pan[1] + dy];
  if (drag.kind === "wl") {  // right/left: wider/narrower window; up/down: darker/brighter
    const width = Math.max((drag.window.high - drag.window.low) * Math.exp(dx / 200), 1e-3);
    const centre = (drag.window.high + drag.window.low) / 2 + dy * width / 300;
    state.window = {low: centre - width / 2, high: centre + width / 2};
  }
  render();
}

function onMouseUp(event) {
  const drag = state.drag;
  if (!drag) return;
  if (drag.kind === "roi") {
    drag.now = imagePoint(event);
    const box = dragBox();
    if (box[2] - box[0] >= 4 && box[3] - box[1] >= 4) {
      state.roi = {slice: state.slice, box};
      state.result = null;
      state.heat = null;
      $("result-panel").hidden = true;
    }
  }
  state.drag = null;
  updateRoi();
  render();
}

function onWheel(event) {
  if (!state.volume) return;
  event.preventDefault();
  const rect = $("view").getBoundingClientRect();
  if (event.ctrlKey) zoomBy(event.deltaY < 0 ? 1.25 : 0.8, [event.clientX - rect.left, event.clientY - rect.top]);
  else setSlice(state.slice + Math.sign(event.deltaY));
}

function setSlice(index) {
  state.slice = Math.min(state.shape[0] - 1, Math.max(0, index));
  $("slice").value = String(state.slice);
  render();
}

// Zoom keeping the image point under `anchor` (canvas pixels) in place: the mouse for Ctrl+wheel,
// the ROI's centre (or the canvas centre) for the buttons.
function zoomBy(factor, anchor = null) {
  if (!state.volume) return;
  const before = geometry();
  if (!anchor && state.roi) {
    const [r0, c0, r1, c1] = state.roi.box;
    anchor = [before.ox + (c0 + c1) / 2 * before.sx, before.oy + (r0 + r1) / 2 * before.sy];
  }
  anchor = anchor || [$("view").width / 2, $("view").height / 2];
  const col = (anchor[0] - before.ox) / before.sx, row = (anchor[1] - before.oy) / before.sy;
  state.zoom = Math.min(16, Math.max(0.5, state.zoom * factor));
  const after = geometry();
  state.pan = [state.pan[0] + anchor[0] - (after.ox + col * after.sx),
               state.pan[1] + anchor[1] - (after.oy + row * after.sy)];
  render();
}

// ---------- prediction and result ----------

async function submitPrediction(event) {
  event.preventDefault();
  if (!state.roi) {
    setStatus("draw the ROI box around the vertebral body first", true);
    return;
  }
  if (!$("clinical-form").reportValidity()) {
    setStatus("check the clinical values marked in red", true);
    return;
  }
  setStatus("predicting...");
  setPageState("predicting");
  $("predict").disabled = true;
  try {
    const body = {slice: state.roi.slice, box: state.roi.box, clinical: clinicalValues(),
                  allow_missing: $("allow-missing").checked, label: $("label").value.trim()};
    const answer = await (await postJson(`/api/studies/${state.study}/predict`, body)).json();
    await showResult(answer);
    setStatus("prediction done");
    setPageState("result");
  } catch (error) {
    setStatus(error.message, true);
    setPageState("ready");
  } finally {
    $("predict").disabled = false;
  }
}

function finiteRange(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) if (!Number.isNaN(v)) { low = Math.min(low, v); high = Math.max(high, v); }
  return [low, high];
}

async function showResult(answer) {
  const r = answer.result;
  state.result = r;
  state.heat = null;
  if (answer.heatmap) {
    state.heat = new Float32Array(await (await api(`/api/studies/${state.study}/heatmap`)).arrayBuffer());
    state.heatRange = finiteRange(state.heat);
  }
  const high = r.category.startsWith("high");
  $("risk").textContent = r.category.charAt(0).toUpperCase() + r.category.slice(1);
  $("risk").className = `risk ${high ? "high" : "low"}`;
  $("probability").textContent = `Probability of collapse ${percent(r.probability)} ` +
    `(risk threshold ${percent(r.threshold)})`;
  $("interval").textContent = `Over the ${r.per_model.length} split models: ${percent(r.interval.low)} to ` +
    `${percent(r.interval.high)} (SD ${percent(r.sd)}). Threshold: ${r.threshold_rule}.`;
  $("heatmap-note").textContent = r.heatmap ? `Heat map: ${r.heatmap.method}, averaged over the split models, ` +
    `on the ROI slice; dashed white: the crop the model saw. ${r.heatmap.note || ""}` : "No heat map for this model.";
  $("per-frame").querySelector("tbody").replaceChildren(...r.per_frame.map((f) => {
    const row = document.createElement("tr");
    row.innerHTML = "<td></td><td></td><td><span class=bar></span></td>";
    row.cells[0].textContent = `${f.offset > 0 ? "+" : ""}${f.offset}`;
    row.cells[1].textContent = String(f.slice);
    row.cells[2].firstChild.style.width = `${Math.round(80 * f.probability)}px`;
    row.cells[2].append(percent(f.probability));
    return row;
  }));
  $("warnings").replaceChildren(...[...answer.input_warnings, ...r.warnings].map((w) => {
    const item = document.createElement("li");
    item.textContent = w;
    return item;
  }));
  $("download-json").href = answer.downloads["prediction.json"];
  $("download-report").href = answer.downloads["report.html"];
  $("result-panel").hidden = false;
  setSlice(r.roi.slice);
}

// ---------- wiring ----------

function wire() {
  const canvas = $("view");
  canvas.addEventListener("mousedown", onMouseDown);
  window.addEventListener("mousemove", onMouseMove);
  window.addEventListener("mouseup", onMouseUp);
  canvas.addEventListener("wheel", onWheel, {passive: false});
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  $("slice").addEventListener("input", () => setSlice(Number($("slice").value)));
  $("zoom-in").addEventListener("click", () => zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => zoomBy(0.8));
  $("reset-view").addEventListener("click", () => {
    Object.assign(state, {zoom: 1, pan: [0, 0], window: state.defaultWindow && {...state.defaultWindow}});
    render();
  });
  $("file").addEventListener("change", () => uploadFile($("file").files[0]));
  $("close-study").addEventListener("click", closeStudy);
  $("clinical-form").addEventListener("submit", submitPrediction);
  $("overlay-toggle").addEventListener("change", render);
  $("opacity").addEventListener("input", render);
  // Closing the tab closes the study (its files are deleted); the idle timeout catches the rest.
  // A keepalive fetch outlives the page like sendBeacon, and can carry the page's header.
  window.addEventListener("pagehide", () => {
    if (state.study) {
      fetch(`/api/studies/${state.study}/close`, {method: "POST", headers: PAGE_HEADER, keepalive: true})
        .catch(() => {});
    }
  });
}

wire();
loadModel().catch((error) => setStatus(`cannot reach the server: ${error.message}`, true));
