// vcpred serve and vcpred annotate: the viewer page's entry module. Plain JavaScript modules, no
// libraries, nothing loaded from the internet. The volume arrives as raw float32 [slices, rows, cols]
// (canonical sagittal display); the window, zoom, ROI drawing and heat-map overlay happen in the
// page, every number comes from the server.
//
// One state (state.js), changed only through setState(patch), which runs one render(): the views
// registered here, each drawing its part of the page from the state (the header and the study panel
// first: they move the image's top edge, which the canvas's size follows).
import {$, addView, render, setState, setStatus, state} from "./state.js";
import {closeOnLeave, getJson} from "./api.js";
import {drawLegend, renderImage} from "./canvas.js";
import {renderClinical, wireClinical} from "./clinical.js";
import {renderFrames} from "./frames.js";
import {renderHeights, wireHeights} from "./heights.js";
import {percent} from "./names.js";
import {renderReading, wireReading} from "./reading.js";
import {renderResult, wireResult} from "./result.js";
import {renderRoi, typedRoi} from "./roi.js";
import {loadLocalList, renderStudy, wireStudy} from "./study.js";
import {renderTools, wireViewer} from "./viewer.js";
import {startAnnotate} from "./annotate.js";

// The model's description at the top; a model trained on synthetic data (vcpred synth) says so at
// the top and above every result.
function renderModel(state) {
  const m = state.model;
  if (state.mode !== "serve" || !m) return;
  $("notice").textContent = m.notice;
  $("model-info").textContent = `Model ${m.model_id}: ${m.splits} split models, risk threshold ` +
    `${percent(m.threshold)}; the model reads ${2 * m.k + 1} adjacent sagittal frames around the ROI slice.`;
  for (const id of ["synthetic-warning", "result-synthetic-warning"]) {
    $(id).textContent = m.warning ? `${m.warning.charAt(0).toUpperCase()}${m.warning.slice(1)}.` : "";
    $(id).hidden = !m.warning;
  }
}

async function loadModel() {
  const model = await getJson("/api/model");
  setState({model});
  if (model.local_folder) await loadLocalList();
}

for (const view of [renderModel, renderStudy, renderTools, renderImage, renderRoi, renderReading, renderHeights,
                    renderFrames, renderClinical, renderResult])
  addView(view);

wireReading();  // first: it sets the reading tools' part of the state
wireHeights();
wireViewer();
wireStudy();
wireClinical();
wireResult();
$("roi-form").addEventListener("submit", typedRoi);
// Closing the tab closes the study (its files are deleted); the idle timeout catches the rest.
window.addEventListener("pagehide", () => {
  if (state.study) closeOnLeave(state.study);
});
drawLegend();
render();
// vcpred annotate serves this page with data-mode="annotate": no model, the manifest's patients.
(state.mode === "annotate" ? startAnnotate() : loadModel())
  .catch((error) => setStatus(`cannot reach the server: ${error.message}`, true));
