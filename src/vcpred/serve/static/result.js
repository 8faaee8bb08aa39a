// The prediction and its result: the progress line while predicting, the level, the risk category,
// the probability bar (split models' band, the frames' band, mean, threshold), the uncertainty in one
// line, the heat map's note, the flags, per-frame probabilities, warnings and downloads. A failed
// prediction is an error, never a number.
import {$, NO_RESULT, changed, make, setState, setStatus, state} from "./state.js";
import {getFloats, postJson} from "./api.js";
import {finiteRange, heatSignal} from "./canvas.js";
import {clinicalValues} from "./clinical.js";
import {percent, percentRange, percents, sliceName, sliceTooltip} from "./names.js";
import {slicePatch} from "./viewer.js";

const isProbability = (p) => typeof p === "number" && Number.isFinite(p) && p >= 0 && p <= 1;

// The server's answer to a prediction, checked: an answer without a finite probability is shown as
// an error and thrown.
export async function showResult(answer) {
  const r = answer.result;
  const numbers = [r.probability, r.sd, r.interval && r.interval.low, r.interval && r.interval.high,
                   ...(r.per_model || []).map((m) => m.probability), ...(r.per_frame || []).map((f) => f.probability)];
  if (!numbers.every((p) => typeof p === "number" && Number.isFinite(p)) || !isProbability(r.probability)) {
    setState({...NO_RESULT, resultError: "the server returned no valid probability (NaN or missing); this is not a result"});
    throw new Error("the prediction failed: no valid probability");
  }
  setState(NO_RESULT);
  const heat = answer.heatmap ? await getFloats(`/api/studies/${state.study}/heatmap`) : null;
  setState({result: r, downloads: answer.downloads, heat, heatRange: heat && finiteRange(heat),
            ...slicePatch(r.roi.slice)});
}

// The progress line while predicting: the seconds since Predict, counted each second (the server
// says nothing until its answer); it goes when the answer or the error arrives.
let ticker = null;

function startProgress() {
  const started = performance.now();
  setState({predictSeconds: 0});
  ticker = setInterval(() => setState({predictSeconds: Math.floor((performance.now() - started) / 1000)}), 1000);
}

function stopProgress() {
  clearInterval(ticker);
  ticker = null;
}

export async function submitPrediction(event) {
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
  setState({...NO_RESULT, status: {text: "predicting...", error: false}, phase: "predicting", predicting: true});
  startProgress();
  try {
    const body = {slice: state.roi.slice, box: state.roi.box, clinical: clinicalValues(state),
                  allow_missing: state.allowMissing, label: state.label.trim(), level: state.level.trim()};
    const answer = await (await postJson(`/api/studies/${study}/predict`, body)).json();
    if (state.study !== study) return;  // another study was opened meanwhile: not this patient's result
    await showResult(answer);
    setState({status: {text: "prediction done", error: false}, phase: "result"});
  } catch (error) {
    if (state.study !== study) return;
    setState({...NO_RESULT, resultError: error.message, status: {text: `no prediction: ${error.message}`, error: true},
              phase: "ready"});
  } finally {
    stopProgress();
    setState({predicting: false});
  }
}

// The frame-to-frame spread of the augmented prediction: the lowest and highest of the per-frame
// probabilities (each the mean over the split models); null when the model reads one frame.
export function frameRange(r) {
  if (!r.ap || !r.per_frame || r.per_frame.length < 2) return null;
  const probabilities = r.per_frame.map((f) => f.probability);
  return {low: Math.min(...probabilities), high: Math.max(...probabilities), count: probabilities.length};
}

function renderBar(r, frames) {
  const place = (p) => `${(100 * p).toFixed(2)}%`;
  const band = (id, range) => Object.assign($(id).style, {left: place(range.low), width: place(range.high - range.low),
                                                          minWidth: "2px"});
  band("prob-spread", r.interval);
  $("prob-frames").hidden = !frames;
  if (frames) band("prob-frames", frames);
  $("prob-mean").style.left = place(r.probability);
  $("prob-threshold").style.left = place(r.threshold);
  $("prob-bar").title = `mean ${percent(r.probability)}; ${spreadText(r, frames)}; threshold ${percent(r.threshold)}`;
}

// The uncertainty, each spread worded alike: "split models 28-41 %, frames 17-52 %".
const spreads = (r, frames) => [["models", `split models ${percentRange(r.interval.low, r.interval.high)}`],
                                ...(frames ? [["frames", `frames ${percentRange(frames.low, frames.high)}`]] : [])];
const spreadText = (r, frames) => spreads(r, frames).map(([, text]) => text).join(", ");

function renderSpread(r, frames) {
  const keyed = spreads(r, frames).map(([key, text]) => make("span", {className: `key-${key}`}, text));
  $("spread").replaceChildren("Uncertainty: ", ...keyed.flatMap((span, i) => (i ? [", ", span] : [span])));
}

const list = (texts) => texts.map((text) => make("li", {}, text));

function renderNumbers(state, r) {
  const high = r.category.startsWith("high"), borderline = Boolean(r.borderline);
  $("risk").textContent = borderline
    ? "Borderline: the split models fall on both sides of the threshold"
    : r.category.charAt(0).toUpperCase() + r.category.slice(1);
  $("risk").className = `risk ${borderline ? "borderline" : high ? "high" : "low"}`;
  const frames = frameRange(r);
  renderBar(r, frames);
  $("result-level").textContent = r.level ? `level ${r.level}` : "";
  const [probability, threshold] = percents(r.probability, r.threshold);
  $("probability").textContent = `Probability of collapse ${probability} (risk threshold ${threshold})`;
  renderSpread(r, frames);
  const sd = percent(r.sd, r.sd > 0 && r.sd < 0.005 ? 1 : 0);  // a tiny SD is not "0 %"
  $("interval").textContent = `Lowest to highest of the ${r.per_model.length} split models (SD ${sd})` +
    (frames ? ` and of the ${frames.count} frames read around the ROI slice (each the mean of the models)` : "") +
    (borderline ? `; the mean is ${high ? "at or above" : "below"} the threshold, but not all models agree.` : ".") +
    ` Threshold: ${r.threshold_rule}.`;
  const signal = heatSignal(state);
  $("heatmap-note").textContent = !r.heatmap ? "No heat map for this model."
    : signal === "no-signal" ? `Heat map: no signal. ${r.heatmap.note || "The map is flat over the crop."} ` +
      "Nothing is drawn on the image; dashed white: the crop the model saw."
    : `Heat map: ${r.heatmap.method}, averaged over the split models, drawn inside the crop the model saw ` +
      `(dashed white) on the ROI slice, colours relative to this map.`;
  $("flags").replaceChildren(...list((r.clinical_flags || []).map((flag) => `Flag: ${flag.message}`)));
  $("per-frame").querySelector("tbody").replaceChildren(...r.per_frame.map((f) => {
    const bar = make("span", {className: "bar"});
    bar.style.width = `${Math.round(80 * f.probability)}px`;
    return make("tr", {}, make("td", {}, `${f.offset > 0 ? "+" : ""}${f.offset}`),
                make("td", {title: sliceTooltip(f.slice)}, sliceName(state, f.slice)),
                make("td", {}, bar, percent(f.probability)));
  }));
  const flagged = new Set((r.clinical_flags || []).map((f) => f.message));
  $("warnings").replaceChildren(...list(r.warnings.filter((w) => !flagged.has(w))));
  $("download-json").href = state.downloads["prediction.json"];
  $("download-report").href = state.downloads["report.html"];
}

function clearNumbers() {
  for (const id of ["risk", "probability", "spread", "interval", "heatmap-note", "result-level"]) $(id).textContent = "";
  $("risk").className = "risk";
  for (const id of ["flags", "warnings"]) $(id).replaceChildren();
  $("per-frame").querySelector("tbody").replaceChildren();
  $("download-json").href = $("download-report").href = "#";
}

// Predict may sit below the fold: show the top of the page when the image and the result both fit
// there (the wide layout), else scroll the result into view (the stacked layout).
function revealResult() {
  $("result-panel").closest("aside").scrollTop = 0;  // beside the image the column scrolls on its own
  const summary = $("result-panel").getBoundingClientRect();
  if (summary.bottom + window.scrollY <= window.innerHeight) window.scrollTo(0, 0);
  else $("result-panel").scrollIntoView({block: "nearest"});
}

const resultChanged = changed();

export function renderResult(state) {
  const r = state.result, error = state.resultError, panel = $("result-panel");
  $("predict-progress").hidden = !state.predicting;
  $("predict-progress").textContent = state.predicting ? `Predicting... ${state.predictSeconds} s elapsed` : "";
  $("overlay-toggle").checked = state.overlay;
  $("opacity").value = String(state.opacity);
  $("colorbar").hidden = heatSignal(state) !== "signal";
  if (!resultChanged(r, error, state.heat, state.downloads)) return;
  panel.hidden = !r && !error;
  panel.dataset.state = error ? "error" : !r ? "none"
    : r.borderline ? "borderline" : r.category.startsWith("high") ? "high" : "low";
  $("result-error").hidden = !error;
  $("result-error").textContent = error ? `No prediction: ${error}` : "";
  $("result-summary").hidden = $("result-details").hidden = Boolean(error);
  if (r) renderNumbers(state, r);
  else clearNumbers();
  if (r || error) revealResult();
}

export function wireResult() {
  $("clinical-form").addEventListener("submit", submitPrediction);
  $("overlay-toggle").addEventListener("change", () => setState({overlay: $("overlay-toggle").checked}));
  $("opacity").addEventListener("input", () => setState({opacity: Number($("opacity").value)}));
}
