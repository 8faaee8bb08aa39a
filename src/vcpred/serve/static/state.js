// The page's one state and its one render loop: event handlers and server answers change the state
// with setState(patch); render() then derives every panel from the state (the views registered in
// app.js, and annotate.js's), so what the page shows never depends on the order things happened in.

export const $ = (id) => document.getElementById(id);

// What a finished prediction leaves; cleared by a new ROI, series or study.
export const NO_RESULT = Object.freeze({result: null, resultError: null, downloads: null, heat: null, heatRange: null});

export const state = {
  mode: document.body.dataset.mode === "annotate" ? "annotate" : "serve",
  phase: "empty",              // body data-state: empty, loading, ready, predicting, result
  status: {text: "", error: false},
  model: null,                 // /api/model (annotate: the frames vcpred prepare reads)
  local: null,                 // /api/local: {enabled, entries}
  study: null,                 // the open study's random id
  series: [],                  // the study's series (the table when there are several)
  identity: null,              // the series whose DICOM header names the patient
  chosen: null,                // the series on screen: description, shape, spacing, window, instance numbers
  volume: null, shape: null, spacing: null, instanceNumbers: null,
  defaultWindow: null, window: null,
  slice: 0, zoom: 1, pan: [0, 0], tool: "roi", drag: null,
  viewport: [window.innerWidth, window.innerHeight],
  roi: null,                   // {slice, box: [r0, c0, r1, c1]}, canonical, max exclusive
  clinical: {}, allowMissing: false, label: "",
  level: "",                   // the vertebral level of the fracture (optional, sent with the prediction)
  formEpoch: 0,                // a new patient: the form's fields are written afresh
  predicting: false,
  predictSeconds: 0,           // seconds since Predict, counted while predicting (the progress line)
  overlay: true, opacity: 35,   // the heat map's opacity in %: 60 hid the vertebra under it
  ...NO_RESULT,
  annotation: null,            // annotate.js
};

const views = [];

// A view is a function of the state that writes its part of the page (and nothing else).
export function addView(view) {
  views.push(view);
}

export function render() {
  for (const view of views) view(state);
}

export function setState(patch) {
  Object.assign(state, patch);
  render();
}

export const setStatus = (text, error = false) => setState({status: {text, error}});

// For a view that redraws only when its inputs change: `const fresh = changed();` then
// `fresh(a, b)` answers true on the first call and whenever a or b is not the same value as the last time.
export function changed() {
  let last = null;
  return (...keys) => {
    const same = last && last.length === keys.length && keys.every((key, i) => Object.is(key, last[i]));
    last = keys;
    return !same;
  };
}

// A DOM element with properties and children (text children are set as text, never as HTML).
export function make(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}
