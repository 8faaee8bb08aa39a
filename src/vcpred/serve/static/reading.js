// Reading tools beside the image: window/level presets and the window in numbers (typed or dragged),
// and how the heat map is drawn (filled or as an outline). The ROI view's button is in the toolbar
// (viewer.js), the height calipers in heights.js.
//
// MRI signal has no absolute scale (a T2 intensity depends on the scanner, coil and reconstruction,
// unlike CT's Hounsfield units), so fixed numbers like a CT "bone window" would mean nothing: the
// presets are percentiles of this series' own intensities, and each shows the W and L it gives.
import {$, changed, make, setState, state} from "./state.js";
import {heatSignal, windowNumbers} from "./canvas.js";

// The reading tools' part of the state, set before the first render: the heat map filled; the ROI
// view automatic; no heights; wlEpoch: the W and L fields are written afresh (after a refused or
// abandoned typed value).
export const READING_STATE = Object.freeze({heatMode: "filled", roiView: null, heights: null,
                                            measuring: null, wlEpoch: 0});

// Percentiles (numpy's default, linear between ranks) of the whole series, or of the ROI box on its
// slice (the vertebral body: its marrow signal spread over the grey levels).
export const PRESETS = [
  {id: "default", name: "T2 default", range: [1, 99.5], hint: "the viewer's and the report's window"},
  {id: "wide", name: "T2 wide", range: [0.1, 99.9], hint: "fluid and fat without saturation"},
  {id: "contrast", name: "T2 contrast", range: [5, 95], hint: "more contrast, the brightest fluid saturated"},
  {id: "body", name: "T2 vertebral body", range: [2, 98], roi: true, hint: "the ROI box's own intensities"},
];

// At most this many voxels are sorted for the percentiles (a regular sample of larger series).
const SAMPLE = 1 << 22;

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const position = (p / 100) * (sorted.length - 1), below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
}

function sortedFinite(values, step = 1) {
  const kept = new Float32Array(Math.ceil(values.length / step));
  let n = 0;
  for (let i = 0; i < values.length; i += step) if (Number.isFinite(values[i])) kept[n++] = values[i];
  return kept.subarray(0, n).sort();
}

function roiValues(state) {
  const [, rows, cols] = state.shape, [r0, c0, r1, c1] = state.roi.box, values = [];
  for (let r = r0; r < r1; r++) {
    const start = (state.roi.slice * rows + r) * cols;
    for (let c = c0; c < c1; c++) values.push(state.volume[start + c]);
  }
  return sortedFinite(values);
}

// The series' sorted intensities, once per volume.
let series = {volume: null, sorted: null};

function seriesSorted(state) {
  if (series.volume !== state.volume) {
    const step = Math.max(1, Math.ceil(state.volume.length / SAMPLE));
    series = {volume: state.volume, sorted: sortedFinite(state.volume, step)};
  }
  return series.sorted;
}

// Each preset's window for the volume shown (null where it needs a ROI and there is none); the
// default is the server's own window (vcpred.imaging.display), the same numbers as the report's.
export function presetWindows(state) {
  const whole = seriesSorted(state), roi = state.roi ? roiValues(state) : null;
  return PRESETS.map((preset) => {
    if (preset.id === "default") return {...state.defaultWindow};
    const values = preset.roi ? roi : whole;
    if (!values || !values.length) return null;
    const [low, high] = preset.range.map((p) => percentile(values, p));
    return {low, high: high > low ? high : low + 1};
  });
}

const sameWindow = (a, b) => Boolean(a && b) && Math.abs(a.low - b.low) < 1e-9 * (1 + Math.abs(a.low)) &&
  Math.abs(a.high - b.high) < 1e-9 * (1 + Math.abs(a.high));

// A typed width and level: the width must be a number above 0.
function typedWindow() {
  const width = Number($("wl-width").value), level = Number($("wl-level").value);
  if ($("wl-width").value.trim() === "" || $("wl-level").value.trim() === "" || !Number.isFinite(level) ||
      !Number.isFinite(width) || width <= 0) {
    setState({status: {text: "the window width (W) must be a number above 0 and the level (L) a number", error: true},
              wlEpoch: state.wlEpoch + 1});
    return;
  }
  setState({window: {low: level - width / 2, high: level + width / 2}});
}

let windows = [];
const presetsChanged = changed(), fieldsChanged = changed();

function presetOption(preset, window) {
  const range = `${preset.range[0]}-${preset.range[1]} %${preset.roi ? " of the ROI" : ""}`;
  const numbers = window ? windowNumbers(window) : null;
  const text = `${preset.name} (${range}): ` + (numbers ? `W ${numbers.width} L ${numbers.level}` : "draw the ROI first");
  return make("option", {value: preset.id, textContent: text, title: preset.hint, disabled: !window});
}

function renderWindow(state) {
  if (presetsChanged(state.volume, state.roi, state.defaultWindow)) {
    windows = presetWindows(state);
    $("wl-preset").replaceChildren(make("option", {value: "custom", textContent: "custom (dragged or typed)"}),
                                   ...PRESETS.map((preset, i) => presetOption(preset, windows[i])));
  }
  const chosen = PRESETS.findIndex((preset, i) => sameWindow(windows[i], state.window));
  $("wl-preset").value = chosen < 0 ? "custom" : PRESETS[chosen].id;
  $("wl-preset").dataset.preset = $("wl-preset").value;
  if (!fieldsChanged(state.window, state.wlEpoch)) return;
  const {width, level} = windowNumbers(state.window);
  for (const [id, value] of [["wl-width", width], ["wl-level", level]])
    if (document.activeElement !== $(id)) $(id).value = String(value);
}

export function renderReading(state) {
  $("reading-panel").hidden = !state.volume;
  if (state.volume) renderWindow(state);
  $("heat-display").hidden = heatSignal(state) !== "signal";
  for (const radio of document.querySelectorAll("input[name=heat-mode]"))
    radio.checked = radio.value === state.heatMode;
}

export function wireReading() {
  Object.assign(state, READING_STATE);
  $("wl-preset").addEventListener("change", () => {
    const i = PRESETS.findIndex((preset) => preset.id === $("wl-preset").value);
    if (i >= 0 && windows[i]) setState({window: {...windows[i]}});
  });
  for (const id of ["wl-width", "wl-level"]) {
    $(id).addEventListener("change", typedWindow);
    $(id).addEventListener("blur", () => setState({wlEpoch: state.wlEpoch + 1}));  // the shown numbers again
  }
  for (const radio of document.querySelectorAll("input[name=heat-mode]"))
    radio.addEventListener("change", () => setState({heatMode: radio.value}));
}
