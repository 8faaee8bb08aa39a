// vcpred annotate: the viewer (its state, its study, ROI and image modules) over a cohort manifest,
// patient by patient, without a model. A save writes the patient's ROI (the canonical slice index and
// box the viewer shows, 0-based, max exclusive) into the manifest on the server; a patient is left out
// with a reason (or included again) through its row's exclude cell. The patient's vertebral level shows
// large beside its id, and a warning when the DICOM header names another patient (the server's
// identity check, in the answer that opens the patient); review.js shows every saved box at a glance.
// Everything shown from the manifest or the DICOM header is set as text, never as HTML.
import {$, addView, changed, make, setState, setStatus, state} from "./state.js";
import {getJson, postJson} from "./api.js";
import {openStudy} from "./study.js";
import {roiPatch} from "./roi.js";
import {linkedPatient, renderReview, wireReview} from "./review.js";

// state.annotation: session (the manifest's patients and progress), current (the patient shown),
// loading, failed (patients whose images cannot be read), saved (the ROI last saved or loaded: any
// other box is unsaved), warned ({index, roi}: the user was told this box is not saved when going to
// that patient; a second try with the same box goes), series (the current patient's series:
// {index, column, choice, series: [{reference, study_date, number, description, plane, slices, chosen}]}),
// seriesWarned ("index reference": the user was told that choosing it clears a box; a second click goes),
// review (the review pass's page shown, null while the editor is shown).
const annotation = () => state.annotation;
const patients = () => annotation().session.patients;
const setAnnotation = (patch, more = {}) => setState({annotation: {...annotation(), ...patch}, ...more});
const unsaved = () => Boolean(state.roi && state.roi !== annotation().saved);
// Excluded patients need no ROI: they are counted apart ("n of N annotated (M excluded)").
const firstWithoutRoi = () => patients().findIndex((p) => !p.roi && !p.exclude);

// The session with one patient as the server answered it (opened: its identity check).
const withPatient = (patient, index) => {
  const session = annotation().session;
  return {...session, patients: session.patients.map((p, i) => (i === index ? patient : p))};
};

// The session after a save's answer: its counts, and the patient it wrote.
const answered = (answer, index) => {
  const session = annotation().session;
  return {...session, annotated: answer.annotated, total: answer.total, excluded: answer.excluded,
          patients: session.patients.map((p, i) => (i === index ? answer.patient : p))};
};

export async function startAnnotate() {
  const session = await getJson("/api/annotate");
  $("annotate-panel").insertBefore($("status"), $("series-choice"));
  addView(renderAnnotate);
  // The frame strip shows what `vcpred prepare` reads with its default settings.
  setState({model: {k: session.k, edge: session.edge, margin: session.margin, clinical: []},
            annotation: {session, current: null, loading: false, failed: new Set(), saved: null, warned: null,
                         series: null, seriesWarned: null, review: null}});
  wireAnnotate();
  // A link to a patient (#patient=N, the review's cards) opens it; else the first without ROI.
  await openPatient(linkedPatient(session.patients.length) ?? Math.max(0, firstWithoutRoi()));
}

// force: go without the unsaved-box check (the series was changed: the box was for the other one).
async function openPatient(index, force = false) {
  const a = annotation();
  if (a.loading || index < 0 || index >= patients().length) return;
  if (!force && unsaved() && !(a.warned && a.warned.index === index && a.warned.roi === state.roi)) {
    setAnnotation({warned: {index, roi: state.roi}},
                  {status: {text: `the box of ${patients()[a.current].patient_id} is not saved: save it, or click ` +
                                  "again to leave it unsaved", error: true}});
    return;
  }
  setAnnotation({current: index, loading: true, warned: null, seriesWarned: null});
  let opened = null;  // the answer also holds the patient as its image was read
  await openStudy(async () => (opened = await postJson(`/api/annotate/patients/${index}/open`, {})).clone());
  if (state.study && opened) setAnnotation({session: withPatient((await opened.json()).patient, index)});
  await loadSeries(index);
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

// The patient's series (listed even when none could be read, so that one can be chosen).
async function loadSeries(index) {
  try {
    setAnnotation({series: {index, ...await getJson(`/api/annotate/patients/${index}/series`)}});
  } catch (error) {
    setAnnotation({series: null});  // opening the patient already said what is wrong
  }
}

// Write the series into the manifest's series cell, then read it. A box on the image shown (saved or
// not) belongs to that series: choosing another clears it, so the first click only says so.
async function chooseSeries(reference) {
  const a = annotation(), index = a.current, patient = patients()[index];
  const placed = Boolean(patient.roi || patient.partly_filled), box = placed || unsaved();
  const key = `${index} ${reference}`;
  if (box && a.seriesWarned !== key) {
    setAnnotation({seriesWarned: key},
                  {status: {text: `choosing series ${reference} clears the ${placed ? "saved ROI" : "box not saved"} ` +
                                  `of ${patient.patient_id} (a box belongs to the image it was drawn on): click ` +
                                  "it again to choose it", error: true}});
    return;
  }
  try {
    const answer = await (await postJson(`/api/annotate/patients/${index}/series`,
                                         {series: reference, version: patient.version, clear_roi: placed})).json();
    setAnnotation({seriesWarned: null, saved: null, session: answered(answer, index)});
    await openPatient(index, true);
    if (state.volume) setStatus(`series ${reference} chosen and written into ${a.series.column}: draw the ROI`);
  } catch (error) {
    setStatus(`series not chosen: ${error.message}`, true);
  }
}

// One series: its reference is the button that chooses it.
function seriesRow(series) {
  const button = make("button", {type: "button", textContent: series.reference,
                                 title: series.chosen ? "the series shown" : series.plane === "sagittal"
                                   ? "read this series" : "vcpred reads sagittal series only"});
  button.dataset.off = String(series.chosen || series.plane !== "sagittal");  // never clickable
  button.addEventListener("click", () => chooseSeries(series.reference));
  const cells = [series.study_date || "-", series.number ?? "-", series.description, series.plane, series.slices]
    .map((value) => make("td", {}, String(value)));
  const row = make("tr", {className: series.chosen ? "chosen" : ""}, make("td", {}, button), ...cells);
  row.dataset.reference = series.reference;
  return row;
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
    const saved = answer.patient;
    const [r0, c0, r1, c1] = saved.roi.box;
    setAnnotation({saved: roi, session: answered(answer, index)},
                  {status: {text: `saved ${saved.patient_id}: slice index ${saved.roi.slice}, rows ${r0}-${r1}, ` +
                                  `columns ${c0}-${c1}`, error: false}});
    if (andNext && index < patients().length - 1) await openPatient(index + 1);
  } catch (error) {
    setStatus(`not saved: ${error.message}`, true);
  }
}

// The typed reason into the row's exclude cell; an empty field is not a reason.
function excludePatient() {
  const reason = $("exclude-reason").value.trim();
  if (!reason) {
    setStatus(`write why ${patients()[annotation().current].patient_id} is left out first (e.g. series misses ` +
              "a slice)", true);
    return;
  }
  setExclusion(reason);
}

// Write the reason into the row's exclude cell ("" includes the patient again), as a ROI is written.
async function setExclusion(reason) {
  const index = annotation().current, patient = patients()[index];
  try {
    const answer = await (await postJson(`/api/annotate/patients/${index}/exclude`,
                                         {reason, version: patient.version})).json();
    setAnnotation({session: answered(answer, index)},
                  {status: {text: answer.patient.exclude
                    ? `${patient.patient_id} excluded: ${answer.patient.exclude} (written into the manifest's ` +
                      "exclude cell; left out of every step)"
                    : `${patient.patient_id} included again (its exclude cell emptied)`, error: false}});
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
  $("exclude-patient").addEventListener("click", excludePatient);
  $("exclude-reason").addEventListener("keydown", (event) => {
    if (event.key === "Enter") excludePatient();
  });
  $("include-patient").addEventListener("click", () => setExclusion(""));
  wireReview(openPatient, (page) => {
    setAnnotation({review: page});
    if (page !== null) window.scrollTo(0, 0);
  });
}

function patientItem(patient, index) {
  const button = make("button", {type: "button", textContent: patient.patient_id});
  button.addEventListener("click", () => openPatient(index));
  return make("li", {}, button, make("span", {className: "mark"}));
}

const listChanged = changed(), seriesChanged = changed(), reasonChanged = changed();

function renderAnnotate(state) {
  const a = state.annotation;
  if (!a) return;
  const {session} = a, list = session.patients, index = a.current;
  $("annotate-panel").hidden = false;
  $("model-info").textContent = `Annotating ${session.manifest} (${session.sequence} images): no model. Draw or ` +
    "type the box on the central slice of the fractured vertebra, then save: the patient's roi_* cells are " +
    "written into the manifest (the original is kept as a .bak file).";
  document.querySelector("#frames-panel h3").textContent = "Frames vcpred prepare reads (default settings)";
  $("progress").textContent = `${session.annotated} of ${session.total} patients annotated` +
    (session.excluded ? ` (${session.excluded} excluded)` : "");
  Object.assign($("progress").dataset, {annotated: String(session.annotated), total: String(session.total),
                                        excluded: String(session.excluded || 0)});
  if (listChanged(list.length)) $("patient-list").replaceChildren(...list.map(patientItem));
  [...$("patient-list").children].forEach((item, i) => {
    const patient = list[i], failed = a.failed.has(i);
    item.className = [i === index ? "current" : "",
                      patient.exclude ? "excluded" : failed ? "error" : patient.roi ? "done" : ""]
      .filter(Boolean).join(" ");
    item.querySelector(".mark").textContent = patient.exclude ? `excluded: ${patient.exclude}` : failed
      ? "cannot be read" : patient.roi ? `slice index ${patient.roi.slice}`
        : patient.partly_filled ? "partly filled" : "";
  });
  if (index !== null) {
    const patient = list[index];
    $("patient-name").textContent = `Patient ${patient.patient_id} (manifest row ${patient.row}; ` +
      `${index + 1} of ${list.length})${patient.exclude ? ": excluded" : ""}`;
    $("patient-name").dataset.index = String(index);
    $("patient-level").textContent = patient.level || "level not recorded";
    $("patient-level").className = patient.level ? "level" : "level none";
    // The check is of the image shown: none while it loads or when it could not be read.
    const warning = !a.loading && state.volume ? patient.identity_warning : "";
    $("identity-warning").hidden = !warning;
    $("identity-warning").textContent = warning || "";
    $("excluded-note").hidden = !patient.exclude;
    $("excluded-note").textContent = patient.exclude
      ? `Excluded, left out of every step: ${patient.exclude}` : "";
    if (reasonChanged(index, patient.version)) $("exclude-reason").value = patient.exclude;
    $("exclude-patient").textContent = patient.exclude ? "Change the reason" : "Exclude";
    $("include-patient").hidden = !patient.exclude;
  }
  const listed = a.series && a.series.index === index ? a.series : null;
  $("series-choice").hidden = !listed || listed.series.length < 2;
  if (seriesChanged(listed) && listed) {
    $("series-column").textContent = listed.column;
    $("series-choice").querySelector("tbody").replaceChildren(...listed.series.map(seriesRow));
  }
  const busy = a.loading, open = Boolean(state.volume);
  $("previous-patient").disabled = busy || index <= 0;
  $("next-patient").disabled = busy || index >= list.length - 1;
  $("first-without-roi").disabled = busy || firstWithoutRoi() < 0;
  $("save-roi").disabled = $("save-next").disabled = busy || !open || !state.roi;
  // An image that cannot be read is the usual reason: excluding never needs the image open.
  $("exclude-patient").disabled = $("include-patient").disabled = busy || index === null;
  for (const button of $("series-choice").querySelectorAll("button")) button.disabled = busy || button.dataset.off === "true";
  $("saved-note").textContent = unsaved() ? "not saved yet" : "";
  renderReview(a.review, list);
}
