// vcpred serve: the viewer page. Plain JavaScript, no libraries, nothing loaded from the internet.
// The volume arrives as raw float32 [slices, rows, cols] (canonical sagittal display); the window,
// zoom, ROI drawing and heat-map overlay happen here, every number comes from the server.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  model: null, study: null, volume: null, shape: null, spacing: null, defaultWindow: null,
  window: null, slice: 0, zoom: 1, pan: [0, 0], roi: null, drag: null,
  heat: null, heatRange: null, result: null, instanceNumbers: null, predicting: null,
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
  input.min = String(field.limits.low);
  input.max = String(field.limits.high);
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

// The clinical-input policy of vcpred predict (vcpred/predict/clinical_input.py), checked here first:
// an impossible value (outside the limits) is refused, one outside the training range only flagged.
// The server checks the same rules again.
function checkField(field, input) {
  const warn = input.closest(".field").querySelector(".warn");
  warn.textContent = "";
  warn.className = "warn";
  input.setCustomValidity("");
  if (input.value === "" || field.kind === "categorical" || field.values) return;
  const value = Number(input.value), limits = field.limits;
  const tooLow = limits.low_open ? value <= limits.low : value < limits.low;
  if (!Number.isFinite(value)) input.setCustomValidity(`${field.name} must be a number`);
  else if (tooLow || value > limits.high) {
    input.setCustomValidity(`${field.name}=${value} is impossible (${limits.why})`);
    warn.textContent = `impossible: ${limits.why}`;
    warn.className = "warn error";
  } else if (value < field.min || value > field.max)
    warn.textContent = "outside the training range: accepted, flagged, the model extrapolates";
}

// A new study is another patient: nothing typed for the previous one may stay.
function resetPatientInputs() {
  for (const input of $("clinical-fields").querySelectorAll("input, select")) {
    input.value = "";
    input.setCustomValidity("");
    input.required = true;
  }
  for (const warn of $("clinical-fields").querySelectorAll(".warn")) {
    warn.textContent = "";
    warn.className = "warn";
  }
  $("allow-missing").checked = false;
  $("label").value = "";
  clearResult();
  Object.assign(state, {roi: null, heat: null, heatRange: null, result: null, instanceNumbers: null});
  for (const id of ["roi-slice", "roi-r0", "roi-c0", "roi-r1", "roi-c1"]) $(id).value = "";
  showIdentity(null);
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
  resetPatientInputs();
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
  const first = study.series.find((s) => s.usable) || study.series[0];
  if (first) showIdentity(first);
}

// Whose study is open: patient, study date, series (from the DICOM header; a NIfTI file has none).
function showIdentity(series) {
  const box = $("identity");
  box.replaceChildren();
  if (!series) {
    box.textContent = "No study open.";
    box.dataset.patient = "";
    return;
  }
  const id = series.identity || {};
  const patient = [id.patient_name, id.patient_id && id.patient_id !== id.patient_name ? `(ID ${id.patient_id})` : ""]
    .filter(Boolean).join(" ");
  const parts = [];
  if (patient) parts.push(`Patient ${patient}`);
  if (id.birth_date) parts.push(`born ${id.birth_date}`);
  parts.push(id.study_date ? `study ${id.study_date}` : "no study date");
  parts.push(`series ${id.series_number ? id.series_number + " " : ""}${series.description}`);
  box.textContent = parts.join(" · ");
  if (!patient) {
    const none = document.createElement("span");
    none.className = "none";
    none.textContent = " (no patient name in the file: check that this is the right patient)";
    box.append(none);
  }
  box.dataset.patient = patient;
}

async function chooseSeries(seriesId) {
  setStatus("reading the series...");
  try {
    const study = await (await postJson(`/api/studies/${state.study}/series`, {series: seriesId})).json();
    clearResult();
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
    zoom: 1, pan: [0, 0], slice: Math.floor(chosen.shape[0] / 2), instanceNumbers: chosen.instance_numbers || null,
  });
  const [slices, rows, cols] = chosen.shape;
  Object.assign($("slice"), {max: String(slices - 1), value: String(state.slice), disabled: false});
  $("roi-slice").max = String(slices - 1);
  $("roi-set").disabled = false;
  $("placeholder").hidden = true;
  showIdentity(chosen.series);
  $("study-info").textContent = `${chosen.series.description}: ${slices} sagittal slices of ${rows} x ${cols} ` +
    `pixels, ${chosen.spacing.map((s) => s.toFixed(2)).join(" x ")} mm` +
    (state.instanceNumbers ? "; slices numbered as on the scanner (InstanceNumber)" : "");
  clearResult();
  setStatus("series loaded: draw the ROI (or type it)");
  setPageState("ready");
  fitCanvas();
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
  clearResult();
  $("frames-panel").hidden = true;
  $("study-info").textContent = "";
  $("slice").disabled = true;
  $("roi-set").disabled = true;
  $("view").getContext("2d").clearRect(0, 0, $("view").width, $("view").height);
  resetPatientInputs();
  setStatus("study closed; its files were deleted");
  setPageState("empty");
  updateRoi();
}

// ---------- slice numbers ----------

// The number a clinician knows a slice by: the scanner's InstanceNumber (1-based) when the DICOM gives
// one, else the canonical index; the canonical index (vcpred predict --roi-slice) is in the tooltip.
function sliceName(index) {
  const numbers = state.instanceNumbers;
  return numbers ? `image ${numbers[index]}` : `index ${index}`;
}

function sliceTooltip(index) {
  return `canonical slice index ${index} (0-based, what vcpred predict --roi-slice and the report use)`;
}

// ---------- canvas size ----------

// As large as the window allows: the viewer column's width and the height left below the toolbar,
// so the image and the result column fit the window without scrolling.
function fitCanvas() {
  const wrap = $("canvas-wrap"), canvas = $("view"), panel = wrap.parentElement, style = getComputedStyle(panel);
  const width = panel.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const top = wrap.getBoundingClientRect().top + window.scrollY;
  const height = window.innerHeight - top - 10;
  const side = Math.max(200, Math.floor(Math.min(width, height, 1000)));
  if (canvas.width !== side) {
    Object.assign(canvas, {width: side, height: side});
    wrap.style.width = wrap.style.height = `${side}px`;
  }
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

// The heat map's own range; "no signal" when it is zero (or flat) everywhere in the crop: Grad-CAM
// keeps only what raises the logit, so an all-zero map says no region raises the risk.
function heatSignal() {
  if (!state.heat) return "none";
  const [low, high] = state.heatRange;
  return Number.isFinite(high) && high > 0 && high > low ? "signal" : "no-signal";
}

function blendHeat(image) {
  // Colour and opacity grow with the value, stretched to the map's own min..max like the report (the
  // colour bar); NaN (outside the model's crop) is never drawn, nor are the map's lowest values.
  const alpha = Number($("opacity").value) / 100;
  const [low, high] = state.heatRange;
  for (let i = 0; i < state.heat.length; i++) {
    const h = state.heat[i];
    if (Number.isNaN(h)) continue;
    const t = Math.min(1, Math.max(0, (h - low) / (high - low)));
    const a = alpha * Math.sqrt(t);
    const rgb = jet(t);
    for (let k = 0; k < 3; k++) image.data[4 * i + k] = (1 - a) * image.data[4 * i + k] + a * rgb[k];
  }
}

function showsHeat() {
  return state.heat && heatSignal() === "signal" && $("overlay-toggle").checked && state.result &&
    state.slice === state.result.roi.slice;
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
  drawOrientation(ctx, canvas);
  drawScaleBar(ctx, canvas, g);
  if (overlay) drawColorBar(ctx, canvas);
  const signal = heatSignal();
  canvas.dataset.overlay = overlay ? "drawn" : signal === "no-signal" ? "no-signal" : state.heat ? "hidden" : "none";
  canvas.dataset.slice = String(state.slice);
  const label = $("slice-label");
  label.textContent = `${sliceName(state.slice)} (${state.slice + 1} of ${state.shape[0]})` +
    (state.roi && state.slice === state.roi.slice ? " · ROI slice" : "");
  label.title = sliceTooltip(state.slice);
  $("slice").title = label.title;
}

// Canonical sagittal display: anterior left, posterior right, superior up, inferior down.
function drawOrientation(ctx, canvas) {
  const w = canvas.width, h = canvas.height;
  ctx.save();
  ctx.font = "bold 15px system-ui, Arial, sans-serif";
  ctx.fillStyle = "#ffeb3b";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const [letter, x, y] of [["S", w / 2, 12], ["I", w / 2, h - 12], ["A", 12, h / 2], ["P", w - 12, h / 2]])
    ctx.fillText(letter, x, y);
  ctx.restore();
}

// A bar of a round length (5, 10, 20, 50 or 100 mm) near 1/6 of the canvas, in the row direction's mm.
function drawScaleBar(ctx, canvas, g) {
  const pxPerMm = g.sx / state.spacing[2];
  const target = canvas.width / 6 / pxPerMm;
  const mm = [5, 10, 20, 50, 100].reduce((best, v) => Math.abs(v - target) < Math.abs(best - target) ? v : best);
  const length = mm * pxPerMm, x = 14, y = canvas.height - 16;
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + length, y);
  ctx.moveTo(x, y - 5);
  ctx.lineTo(x, y + 5);
  ctx.moveTo(x + length, y - 5);
  ctx.lineTo(x + length, y + 5);
  ctx.stroke();
  ctx.font = "12px system-ui, Arial, sans-serif";
  ctx.fillText(`${mm} mm`, x, y - 8);
  ctx.restore();
  $("view").dataset.scaleMm = String(mm);
}

// The colour bar on the image (top right) while the heat map is drawn: low (blue) to high (red).
function drawColorBar(ctx, canvas) {
  const width = 12, height = Math.min(120, canvas.height / 4), x = canvas.width - 30, y = 30;
  ctx.save();
  for (let i = 0; i < height; i++) {
    const [r, gr, b] = jet(1 - i / height);
    ctx.fillStyle = `rgb(${r}, ${gr}, ${b})`;
    ctx.fillRect(x, y + i, width, 1);
  }
  ctx.strokeStyle = "#fff";
  ctx.strokeRect(x, y, width, height);
  ctx.fillStyle = "#fff";
  ctx.font = "11px system-ui, Arial, sans-serif";
  ctx.textAlign = "right";
  ctx.fillText("high", x - 3, y + 8);
  ctx.fillText("low", x - 3, y + height);
  ctx.restore();
}

function drawLegend() {
  const canvas = $("colorbar-canvas"), ctx = canvas.getContext("2d");
  for (let i = 0; i < canvas.width; i++) {
    const [r, g, b] = jet(i / (canvas.width - 1));
    ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(i, 0, 1, canvas.height);
  }
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
  return selectFrames(state.shape[0], state.roi.slice, state.model.k, state.model.edge);  // geometry.js
}

// The model's crop around the box, in whole pixels as the pipeline cuts it (geometry.js).
function cropBox() {
  return cropSquare(state.roi.box, state.spacing, state.model.margin);
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
    label.textContent = `${frame.offset > 0 ? "+" : ""}${frame.offset} · ${sliceName(frame.slice)}` +
      (frame.edge ? " (edge)" : "");
    label.title = sliceTooltip(frame.slice);
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
    delete $("roi-info").dataset.box;
    delete $("roi-info").dataset.slice;
    return;
  }
  const [r0, c0, r1, c1] = state.roi.box;
  $("roi-info").textContent = `ROI on ${sliceName(state.roi.slice)} (index ${state.roi.slice}): rows ${r0}-${r1}, ` +
    `columns ${c0}-${c1} (drag again, type below, or use the arrow keys on the image).`;
  $("roi-info").dataset.box = state.roi.box.join(",");
  $("roi-info").dataset.slice = String(state.roi.slice);
  for (const [id, value] of [["roi-slice", state.roi.slice], ["roi-r0", r0], ["roi-c0", c0], ["roi-r1", r1], ["roi-c1", c1]])
    if (document.activeElement !== $(id)) $(id).value = String(value);
  drawFrames();
}

// A new or changed ROI: the earlier result belongs to the old box and goes.
function setRoi(slice, box) {
  state.roi = {slice, box};
  if (state.result || $("result-panel").dataset.state === "error") clearResult();
  updateRoi();
  render();
  document.dispatchEvent(new CustomEvent("roi-changed"));  // annotate.js marks the box unsaved
}

// The box clipped to the image, at least 4 x 4 pixels (what the server accepts).
function validBox(box) {
  const [, rows, cols] = state.shape;
  const [r0, c0, r1, c1] = box;
  return Number.isInteger(r0) && Number.isInteger(c0) && Number.isInteger(r1) && Number.isInteger(c1) &&
    r0 >= 0 && c0 >= 0 && r1 <= rows && c1 <= cols && r1 - r0 >= 4 && c1 - c0 >= 4;
}

function typedRoi(event) {
  event.preventDefault();
  if (!state.volume) return;
  const [slices, rows, cols] = state.shape;
  const read = (id) => ($(id).value.trim() === "" ? NaN : Number($(id).value));
  const slice = read("roi-slice");
  const box = ["roi-r0", "roi-c0", "roi-r1", "roi-c1"].map(read);
  if (!Number.isInteger(slice) || slice < 0 || slice >= slices) {
    setStatus(`the ROI slice index must be a whole number from 0 to ${slices - 1}`, true);
    return;
  }
  if (!validBox(box)) {
    setStatus(`the ROI box must be whole numbers inside the ${rows} x ${cols} image, rows and columns ` +
              "increasing, at least 4 pixels each way", true);
    return;
  }
  setSlice(slice);
  setRoi(slice, box);
  setStatus("ROI set");
}

// Keyboard on the focused image: arrows move the box (Shift: 5 pixels), Ctrl/Alt + arrows move its
// lower-right corner (resize), Page Up/Down change the slice. Without a box, the first arrow puts a
// 32 x 32 pixel box in the middle of the current slice.
function onKey(event) {
  if (!state.volume) return;
  if (event.key === "PageUp" || event.key === "PageDown") {
    event.preventDefault();
    setSlice(state.slice + (event.key === "PageDown" ? 1 : -1));
    return;
  }
  const moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
  if (!(event.key in moves)) return;
  event.preventDefault();
  const [, rows, cols] = state.shape;
  if (!state.roi) {
    const side = Math.max(4, Math.min(32, rows, cols));
    const r0 = Math.floor((rows - side) / 2), c0 = Math.floor((cols - side) / 2);
    setRoi(state.slice, [r0, c0, r0 + side, c0 + side]);
    return;
  }
  const step = event.shiftKey ? 5 : 1, [dr, dc] = moves[event.key].map((v) => v * step);
  let [r0, c0, r1, c1] = state.roi.box;
  if (event.ctrlKey || event.altKey) {
    r1 = Math.min(rows, Math.max(r0 + 4, r1 + dr));
    c1 = Math.min(cols, Math.max(c0 + 4, c1 + dc));
  } else {
    const mr = Math.min(rows - r1, Math.max(-r0, dr)), mc = Math.min(cols - c1, Math.max(-c0, dc));
    [r0, r1, c0, c1] = [r0 + mr, r1 + mr, c0 + mc, c1 + mc];
  }
  setRoi(state.roi.slice, [r0, c0, r1, c1]);
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
  $("view").focus({preventScroll: true});
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
    state.drag = null;
    if (box[2] - box[0] >= 4 && box[3] - box[1] >= 4) setRoi(state.slice, box);
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
    setStatus("draw the ROI box around the vertebral body first (or type it)", true);
    return;
  }
  if (!$("clinical-form").reportValidity()) {
    setStatus("check the clinical values marked in red", true);
    return;
  }
  const study = state.study;
  setStatus("predicting...");
  setPageState("predicting");
  clearResult();
  $("predict").disabled = true;
  try {
    const body = {slice: state.roi.slice, box: state.roi.box, clinical: clinicalValues(),
                  allow_missing: $("allow-missing").checked, label: $("label").value.trim()};
    const answer = await (await postJson(`/api/studies/${study}/predict`, body)).json();
    if (state.study !== study) return;  // another study was opened meanwhile: not this patient's result
    await showResult(answer);
    setStatus("prediction done");
    setPageState("result");
  } catch (error) {
    if (state.study !== study) return;
    showResultError(error.message);
    setStatus(`no prediction: ${error.message}`, true);
    setPageState("ready");
  } finally {
    $("predict").disabled = !state.volume;
  }
}

function finiteRange(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) if (!Number.isNaN(v)) { low = Math.min(low, v); high = Math.max(high, v); }
  return [low, high];
}

const isProbability = (p) => typeof p === "number" && Number.isFinite(p) && p >= 0 && p <= 1;

function clearResult() {
  Object.assign(state, {result: null, heat: null, heatRange: null});
  const panel = $("result-panel");
  panel.hidden = true;
  panel.dataset.state = "none";
  $("result-error").hidden = true;
  $("result-error").textContent = "";
  $("result-summary").hidden = false;
  $("result-details").hidden = false;
  for (const id of ["risk", "probability", "interval", "heatmap-note"]) $(id).textContent = "";
  $("risk").className = "risk";
  $("flags").replaceChildren();
  $("warnings").replaceChildren();
  $("per-frame").querySelector("tbody").replaceChildren();
  $("download-json").href = $("download-report").href = "#";
  render();
}

// A failed prediction is an error, never a number: no risk, no bar, no downloads.
function showResultError(message) {
  clearResult();
  const panel = $("result-panel");
  $("result-summary").hidden = true;
  $("result-details").hidden = true;
  $("result-error").textContent = `No prediction: ${message}`;
  $("result-error").hidden = false;
  panel.dataset.state = "error";
  panel.hidden = false;
  revealResult();
}

// Predict may sit below the fold: show the top of the page when the image and the result both fit
// there (the wide layout), else scroll the result into view (the stacked layout).
function revealResult() {
  const summary = $("result-panel").getBoundingClientRect();
  if (summary.bottom + window.scrollY <= window.innerHeight) window.scrollTo(0, 0);
  else $("result-panel").scrollIntoView({block: "nearest"});
}

function setBar(r) {
  const place = (p) => `${(100 * p).toFixed(2)}%`;
  Object.assign($("prob-spread").style, {left: place(r.interval.low), width: place(r.interval.high - r.interval.low)});
  $("prob-spread").style.minWidth = "2px";
  $("prob-mean").style.left = place(r.probability);
  $("prob-threshold").style.left = place(r.threshold);
  $("prob-bar").title = `mean ${percent(r.probability)}; split models ${percent(r.interval.low)} to ` +
    `${percent(r.interval.high)}; threshold ${percent(r.threshold)}`;
}

async function showResult(answer) {
  const r = answer.result;
  const numbers = [r.probability, r.sd, r.interval && r.interval.low, r.interval && r.interval.high,
                   ...(r.per_model || []).map((m) => m.probability)];
  if (!numbers.every((p) => typeof p === "number" && Number.isFinite(p)) || !isProbability(r.probability)) {
    showResultError("the server returned no valid probability (NaN or missing); this is not a result");
    throw new Error("the prediction failed: no valid probability");
  }
  clearResult();
  state.result = r;
  if (answer.heatmap) {
    state.heat = new Float32Array(await (await api(`/api/studies/${state.study}/heatmap`)).arrayBuffer());
    state.heatRange = finiteRange(state.heat);
  }
  const high = r.category.startsWith("high");
  const borderline = Boolean(r.borderline);
  $("risk").textContent = borderline
    ? "Borderline: the split models fall on both sides of the threshold"
    : r.category.charAt(0).toUpperCase() + r.category.slice(1);
  $("risk").className = `risk ${borderline ? "borderline" : high ? "high" : "low"}`;
  $("result-panel").dataset.state = borderline ? "borderline" : high ? "high" : "low";
  setBar(r);
  $("probability").textContent = `Probability of collapse ${percent(r.probability)} ` +
    `(risk threshold ${percent(r.threshold)})`;
  $("interval").textContent = `Over the ${r.per_model.length} split models: ${percent(r.interval.low)} to ` +
    `${percent(r.interval.high)} (SD ${percent(r.sd)})` +
    (borderline ? `; the mean is ${high ? "at or above" : "below"} the threshold, but not all models agree.` : ".") +
    ` Threshold: ${r.threshold_rule}.`;
  const signal = heatSignal();
  $("colorbar").hidden = signal !== "signal";
  $("heatmap-note").textContent = !r.heatmap ? "No heat map for this model."
    : signal === "no-signal" ? `Heat map: no signal. ${r.heatmap.note || "The map is flat over the crop."} ` +
      "Nothing is drawn on the image; dashed white: the crop the model saw."
    : `Heat map: ${r.heatmap.method}, averaged over the split models, drawn inside the crop the model saw ` +
      `(dashed white) on the ROI slice, colours relative to this map.`;
  $("flags").replaceChildren(...(r.clinical_flags || []).map((flag) => {
    const item = document.createElement("li");
    item.textContent = `Flag: ${flag.message}`;
    return item;
  }));
  $("per-frame").querySelector("tbody").replaceChildren(...r.per_frame.map((f) => {
    const row = document.createElement("tr");
    row.innerHTML = "<td></td><td></td><td><span class=bar></span></td>";
    row.cells[0].textContent = `${f.offset > 0 ? "+" : ""}${f.offset}`;
    row.cells[1].textContent = sliceName(f.slice);
    row.cells[1].title = sliceTooltip(f.slice);
    row.cells[2].firstChild.style.width = `${Math.round(80 * f.probability)}px`;
    row.cells[2].append(percent(f.probability));
    return row;
  }));
  const flagged = new Set((r.clinical_flags || []).map((f) => f.message));
  $("warnings").replaceChildren(...r.warnings.filter((w) => !flagged.has(w)).map((w) => {
    const item = document.createElement("li");
    item.textContent = w;
    return item;
  }));
  $("download-json").href = answer.downloads["prediction.json"];
  $("download-report").href = answer.downloads["report.html"];
  $("result-panel").hidden = false;
  setSlice(r.roi.slice);
  revealResult();
}

// ---------- wiring ----------

function wire() {
  const canvas = $("view");
  canvas.addEventListener("mousedown", onMouseDown);
  window.addEventListener("mousemove", onMouseMove);
  window.addEventListener("mouseup", onMouseUp);
  canvas.addEventListener("wheel", onWheel, {passive: false});
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("keydown", onKey);
  $("slice").addEventListener("input", () => setSlice(Number($("slice").value)));
  $("zoom-in").addEventListener("click", () => zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => zoomBy(0.8));
  $("reset-view").addEventListener("click", () => {
    Object.assign(state, {zoom: 1, pan: [0, 0], window: state.defaultWindow && {...state.defaultWindow}});
    render();
  });
  $("file").addEventListener("change", () => uploadFile($("file").files[0]));
  $("close-study").addEventListener("click", closeStudy);
  $("roi-form").addEventListener("submit", typedRoi);
  $("clinical-form").addEventListener("submit", submitPrediction);
  $("overlay-toggle").addEventListener("change", render);
  $("opacity").addEventListener("input", render);
  window.addEventListener("resize", () => { fitCanvas(); render(); });
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
drawLegend();
fitCanvas();
// vcpred annotate serves this page with data-mode="annotate": no model; annotate.js starts it.
if (document.body.dataset.mode !== "annotate")
  loadModel().catch((error) => setStatus(`cannot reach the server: ${error.message}`, true));
