// vcpred annotate: the viewer of app.js (its state, openStudy, setRoi, setSlice) over a cohort
// manifest, patient by patient, without a model. A save writes the patient's ROI (the canonical
// slice index and box the viewer shows, 0-based, max exclusive) into the manifest on the server.
// Everything shown from the manifest or the DICOM header is set as text, never as HTML.
"use strict";

// warned: the patient the user was told the box is not saved when trying to go to (a second try goes).
const annotation = {session: null, current: null, loading: false, failed: new Set(), unsaved: false, warned: null};

const patients = () => annotation.session.patients;

async function startAnnotate() {
  const session = await (await api("/api/annotate")).json();
  annotation.session = session;
  // The frame strip shows what `vcpred prepare` reads with its default settings.
  state.model = {k: session.k, edge: session.edge, margin: session.margin, clinical: []};
  $("model-info").textContent = `Annotating ${session.manifest} (${session.sequence} images): no model. Draw or ` +
    "type the box on the central slice of the fractured vertebra, then save: the patient's roi_* cells are " +
    "written into the manifest (the original is kept as a .bak file).";
  document.querySelector("#frames-panel h3").textContent = "Frames vcpred prepare reads (default settings)";
  $("annotate-panel").hidden = false;
  $("annotate-panel").insertBefore($("status"), $("patient-list"));
  buildPatientList();
  showProgress();
  await openPatient(Math.max(0, firstWithoutRoi()));
}

function firstWithoutRoi() {
  return patients().findIndex((p) => !p.roi);
}

function showProgress() {
  const {annotated, total} = annotation.session;
  $("progress").textContent = `${annotated} of ${total} patients annotated`;
  Object.assign($("progress").dataset, {annotated: String(annotated), total: String(total)});
}

function buildPatientList() {
  $("patient-list").replaceChildren(...patients().map((patient, index) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = patient.patient_id;
    button.addEventListener("click", () => openPatient(index));
    const mark = document.createElement("span");
    mark.className = "mark";
    item.append(button, mark);
    return item;
  }));
  markPatients();
}

function markPatients() {
  [...$("patient-list").children].forEach((item, index) => {
    const patient = patients()[index], failed = annotation.failed.has(index);
    item.className = [index === annotation.current ? "current" : "", failed ? "error" : patient.roi ? "done" : ""]
      .filter(Boolean).join(" ");
    item.querySelector(".mark").textContent = failed ? "cannot be read" : patient.roi
      ? `slice index ${patient.roi.slice}` : patient.partly_filled ? "partly filled" : "";
  });
}

function showPatientName() {
  const index = annotation.current, patient = patients()[index];
  $("patient-name").textContent = `Patient ${patient.patient_id} (manifest row ${patient.row}; ` +
    `${index + 1} of ${patients().length})`;
  $("patient-name").dataset.index = String(index);
}

function setNavigation() {
  const busy = annotation.loading, index = annotation.current, open = Boolean(state.volume);
  $("previous-patient").disabled = busy || index <= 0;
  $("next-patient").disabled = busy || index >= patients().length - 1;
  $("first-without-roi").disabled = busy || firstWithoutRoi() < 0;
  $("save-roi").disabled = $("save-next").disabled = busy || !open || !state.roi;
  $("saved-note").textContent = annotation.unsaved ? "not saved yet" : "";
}

async function openPatient(index) {
  if (annotation.loading || index < 0 || index >= patients().length) return;
  if (annotation.unsaved && state.roi && annotation.warned !== index) {
    annotation.warned = index;
    setStatus(`the box of ${patients()[annotation.current].patient_id} is not saved: save it, or click again to ` +
              "leave it unsaved", true);
    return;
  }
  Object.assign(annotation, {current: index, loading: true, unsaved: false, warned: null});
  showPatientName();
  markPatients();
  setNavigation();
  await openStudy(() => postJson(`/api/annotate/patients/${index}/open`, {}));
  annotation.loading = false;
  if (state.study) {
    annotation.failed.delete(index);
    const roi = patients()[index].roi;
    if (roi) {
      setSlice(roi.slice);
      setRoi(roi.slice, roi.box);
      annotation.unsaved = false;
      setStatus(`the saved ROI of ${patients()[index].patient_id} is shown: change it and save, or go on`);
    }
  } else {
    annotation.failed.add(index);  // openStudy shows the server's message; the session goes on
  }
  markPatients();
  setNavigation();
}

async function saveRoi(andNext = false) {
  const index = annotation.current, roi = state.roi;
  if (!roi || !state.volume) {
    setStatus("draw the ROI box around the vertebral body first (or type it)", true);
    return;
  }
  try {
    const answer = await (await postJson(`/api/annotate/patients/${index}/roi`,
                                         {slice: roi.slice, box: roi.box})).json();
    patients()[index] = answer.patient;
    Object.assign(annotation.session, {annotated: answer.annotated, total: answer.total});
    annotation.unsaved = false;
    showProgress();
    markPatients();
    setNavigation();
    const [r0, c0, r1, c1] = answer.patient.roi.box;
    setStatus(`saved ${answer.patient.patient_id}: slice index ${answer.patient.roi.slice}, rows ${r0}-${r1}, ` +
              `columns ${c0}-${c1}`);
    if (andNext && index < patients().length - 1) await openPatient(index + 1);
  } catch (error) {
    setStatus(`not saved: ${error.message}`, true);
  }
}

function wireAnnotate() {
  $("previous-patient").addEventListener("click", () => openPatient(annotation.current - 1));
  $("next-patient").addEventListener("click", () => openPatient(annotation.current + 1));
  $("first-without-roi").addEventListener("click", () => openPatient(firstWithoutRoi()));
  $("save-roi").addEventListener("click", () => saveRoi(false));
  $("save-next").addEventListener("click", () => saveRoi(true));
  document.addEventListener("roi-changed", () => {
    Object.assign(annotation, {unsaved: true, warned: null});
    setNavigation();
  });
}

if (document.body.dataset.mode === "annotate") {
  wireAnnotate();
  startAnnotate().catch((error) => setStatus(`cannot reach the server: ${error.message}`, true));
}
