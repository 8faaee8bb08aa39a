// vcpred annotate: the viewer (its state, its study, ROI and image modules) over a cohort manifest,
// patient by patient, without a model. A save writes the patient's ROI (the canonical slice index and
// box the viewer shows, 0-based, max exclusive) into the manifest on the server. Everything shown
// from the manifest or the DICOM header is set as text, never as HTML.
import {$, addView, changed, make, setState, setStatus, state} from "./state.js";
import {getJson, postJson} from "./api.js";
import {openStudy} from "./study.js";
import {roiPatch} from "./roi.js";

// state.annotation: session (the manifest's patients and progress), current (the patient shown),
// loading, failed (patients whose images cannot be read), saved (the ROI last saved or loaded: any
// other box is unsaved), warned ({index, roi}: the user was told this box is not saved when going to
// that patient; a second try with the same box goes).
const annotation = () => state.annotation;
const patients = () => annotation().session.patients;
const setAnnotation = (patch, more = {}) => setState({annotation: {...annotation(), ...patch}, ...more});
const unsaved = () => Boolean(state.roi && state.roi !== annotation().saved);
const firstWithoutRoi = () => patients().findIndex((p) => !p.roi);

export async function startAnnotate() {
  const session = await getJson("/api/annotate");
  $("annotate-panel").insertBefore($("status"), $("patient-list"));
  addView(renderAnnotate);
  // The frame strip shows what `vcpred prepare` reads with its default settings.
  setState({model: {k: session.k, edge: session.edge, margin: session.margin, clinical: []},
            annotation: {session, current: null, loading: false, failed: new Set(), saved: null, warned: null}});
  wireAnnotate();
  await openPatient(Math.max(0, firstWithoutRoi()));
}

async function openPatient(index) {
  const a = annotation();
  if (a.loading || index < 0 || index >= patients().length) return;
  if (unsaved() && !(a.warned && a.warned.index === index && a.warned.roi === state.roi)) {
    setAnnotation({warned: {index, roi: state.roi}},
                  {status: {text: `the box of ${patients()[a.current].patient_id} is not saved: save it, or click ` +
                                  "again to leave it unsaved", error: true}});
    return;
  }
  setAnnotation({current: index, loading: true, warned: null});
  await openStudy(() => postJson(`/api/annotate/patients/${index}/open`, {}));
  const failed = new Set(annotation().failed);
  if (!state.study) {
    failed.add(index);  // openStudy shows the server's message; the session goes on
    setAnnotation({loading: false, failed});
    return;
  }
  failed.delete(index);
  const patient = patients()[index];
  if (!patient.roi) {
    setAnnotation({loading: false, failed, saved: null});
    return;
  }
  const shown = roiPatch(patient.roi.slice, patient.roi.box);
  setAnnotation({loading: false, failed, saved: shown.roi},
                {slice: patient.roi.slice, ...shown,
                 status: {text: `the saved ROI of ${patient.patient_id} is shown: change it and save, or go on`,
                          error: false}});
}

async function saveRoi(andNext = false) {
  const index = annotation().current, roi = state.roi;
  if (!roi || !state.volume) {
    setStatus("draw the ROI box around the vertebral body first (or type it)", true);
    return;
  }
  try {
    // The row version this page read: a save from another tab or client meanwhile is refused (409).
    const answer = await (await postJson(`/api/annotate/patients/${index}/roi`,
                                         {slice: roi.slice, box: roi.box, version: patients()[index].version})).json();
    const session = annotation().session, saved = answer.patient;
    const [r0, c0, r1, c1] = saved.roi.box;
    setAnnotation({saved: roi, session: {...session, annotated: answer.annotated, total: answer.total,
                                         patients: session.patients.map((p, i) => (i === index ? saved : p))}},
                  {status: {text: `saved ${saved.patient_id}: slice index ${saved.roi.slice}, rows ${r0}-${r1}, ` +
                                  `columns ${c0}-${c1}`, error: false}});
    if (andNext && index < patients().length - 1) await openPatient(index + 1);
  } catch (error) {
    setStatus(`not saved: ${error.message}`, true);
  }
}

function wireAnnotate() {
  $("previous-patient").addEventListener("click", () => openPatient(annotation().current - 1));
  $("next-patient").addEventListener("click", () => openPatient(annotation().current + 1));
  $("first-without-roi").addEventListener("click", () => openPatient(firstWithoutRoi()));
  $("save-roi").addEventListener("click", () => saveRoi(false));
  $("save-next").addEventListener("click", () => saveRoi(true));
}

function patientItem(patient, index) {
  const button = make("button", {type: "button", textContent: patient.patient_id});
  button.addEventListener("click", () => openPatient(index));
  return make("li", {}, button, make("span", {className: "mark"}));
}

const listChanged = changed();

function renderAnnotate(state) {
  const a = state.annotation;
  if (!a) return;
  const {session} = a, list = session.patients, index = a.current;
  $("annotate-panel").hidden = false;
  $("model-info").textContent = `Annotating ${session.manifest} (${session.sequence} images): no model. Draw or ` +
    "type the box on the central slice of the fractured vertebra, then save: the patient's roi_* cells are " +
    "written into the manifest (the original is kept as a .bak file).";
  document.querySelector("#frames-panel h3").textContent = "Frames vcpred prepare reads (default settings)";
  $("progress").textContent = `${session.annotated} of ${session.total} patients annotated`;
  Object.assign($("progress").dataset, {annotated: String(session.annotated), total: String(session.total)});
  if (listChanged(list.length)) $("patient-list").replaceChildren(...list.map(patientItem));
  [...$("patient-list").children].forEach((item, i) => {
    const patient = list[i], failed = a.failed.has(i);
    item.className = [i === index ? "current" : "", failed ? "error" : patient.roi ? "done" : ""]
      .filter(Boolean).join(" ");
    item.querySelector(".mark").textContent = failed ? "cannot be read" : patient.roi
      ? `slice index ${patient.roi.slice}` : patient.partly_filled ? "partly filled" : "";
  });
  if (index !== null) {
    $("patient-name").textContent = `Patient ${list[index].patient_id} (manifest row ${list[index].row}; ` +
      `${index + 1} of ${list.length})`;
    $("patient-name").dataset.index = String(index);
  }
  const busy = a.loading, open = Boolean(state.volume);
  $("previous-patient").disabled = busy || index <= 0;
  $("next-patient").disabled = busy || index >= list.length - 1;
  $("first-without-roi").disabled = busy || firstWithoutRoi() < 0;
  $("save-roi").disabled = $("save-next").disabled = busy || !open || !state.roi;
  $("saved-note").textContent = unsaved() ? "not saved yet" : "";
}
