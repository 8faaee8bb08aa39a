// The prediction and its result: the risk category, the probability bar (split models' band, mean,
// threshold), the heat map's note, the flags, per-frame probabilities, warnings and downloads. A
// failed prediction is an error, never a number.
import {$, NO_RESULT, changed, make, setState, setStatus, state} from "./state.js";
import {getFloats, postJson} from "./api.js";
import {finiteRange, heatSignal} from "./canvas.js";
import {clinicalValues} from "./clinical.js";
import {percent, sliceName, sliceTooltip} from "./names.js";
import {slicePatch} from "./viewer.js";

const isProbability = (p) => typeof p === "number" && Number.isFinite(p) && p >= 0 && p <= 1;

// The server's answer to a prediction, checked: an answer without a finite probability is shown as
// an error and thrown.
export async function showResult(answer) {
  const r = answer.result;
  const numbers = [r.probability, r.sd, r.interval && r.interval.low, r.interval && r.interval.high,
                   ...(r.per_model || []).map((m) => m.probability)];
  if (!numbers.every((p) => typeof p === "number" && Number.isFinite(p)) || !isProbability(r.probability)) {
    setState({...NO_RESULT, resultError: "the server returned no valid probability (NaN or missing); this is not a result"});
    throw new Error("the prediction failed: no valid probability");
  }
  setState(NO_RESULT);
  const heat = answer.heatmap ? await getFloats(`/api/studies/${state.study}/heatmap`) : null;
  setState({result: r, downloads: answer.downloads, heat, heatRange: heat && finiteRange(heat),
            ...slicePatch(r.roi.slice)});
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
  try {
    const body = {slice: state.roi.slice, box: state.roi.box, clinical: clinicalValues(state),
                  allow_missing: state.allowMissing, label: state.label.trim()};
    const answer = await (await postJson(`/api/studies/${study}/predict`, body)).json();
    if (state.study !== study) return;  // another study was opened meanwhile: not this patient's result
    await showResult(answer);
    setState({status: {text: "prediction done", error: false}, phase: "result"});
  } catch (error) {
    if (state.study !== study) return;
    setState({...NO_RESULT, resultError: error.message, status: {text: `no prediction: ${error.message}`, error: true},
              phase: "ready"});
  } finally {
    setState({predicting: false});
  }
}

function renderBar(r) {
  const place = (p) => `${(100 * p).toFixed(2)}%`;
  Object.assign($("prob-spread").style, {left: place(r.interval.low), width: place(r.interval.high - r.interval.low),
                                         minWidth: "2px"});
  $("prob-mean").style.left = place(r.probability);
  $("prob-threshold").style.left = place(r.threshold);
  $("prob-bar").title = `mean ${percent(r.probability)}; split models ${percent(r.interval.low)} to ` +
    `${percent(r.interval.high)}; threshold ${percent(r.threshold)}`;
}

const list = (texts) => texts.map((text) => make("li", {}, text));

function renderNumbers(state, r) {
  const high = r.category.startsWith("high"), borderline = Boolean(r.borderline);
  $("risk").textContent = borderline
    ? "Borderline: the split models fall on both sides of the threshold"
    : r.category.charAt(0).toUpperCase() + r.category.slice(1);
  $("risk").className = `risk ${borderline ? "borderline" : high ? "high" : "low"}`;
  renderBar(r);
  $("probability").textContent = `Probability of collapse ${percent(r.probability)} ` +
    `(risk threshold ${percent(r.threshold)})`;
  $("interval").textContent = `Over the ${r.per_model.length} split models: ${percent(r.interval.low)} to ` +
    `${percent(r.interval.high)} (SD ${percent(r.sd)})` +
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
  for (const id of ["risk", "probability", "interval", "heatmap-note"]) $(id).textContent = "";
  $("risk").className = "risk";
  for (const id of ["flags", "warnings"]) $(id).replaceChildren();
  $("per-frame").querySelector("tbody").replaceChildren();
  $("download-json").href = $("download-report").href = "#";
}

// Predict may sit below the fold: show the top of the page when the image and the result both fit
// there (the wide layout), else scroll the result into view (the stacked layout).
function revealResult() {
  const summary = $("result-panel").getBoundingClientRect();
  if (summary.bottom + window.scrollY <= window.innerHeight) window.scrollTo(0, 0);
  else $("result-panel").scrollIntoView({block: "nearest"});
}

const resultChanged = changed();

export function renderResult(state) {
  const r = state.result, error = state.resultError, panel = $("result-panel");
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
