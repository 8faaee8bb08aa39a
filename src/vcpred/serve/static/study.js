// The study: upload or open from the local folder, the series list, whose study it is, the volume
// read, closing. Opening a study is opening another patient: nothing of the previous one stays.
import {$, NO_RESULT, changed, make, setState, setStatus, state} from "./state.js";
import {deleteStudy, getFloats, getJson, postFile, postJson} from "./api.js";

// A new patient: no values, level, report name, ROI or result of the previous one.
const newPatient = () => ({clinical: {}, allowMissing: false, label: "", level: "", formEpoch: state.formEpoch + 1,
                           roi: null, identity: null, instanceNumbers: null, ...NO_RESULT});

const noVolume = {volume: null, shape: null, spacing: null, chosen: null, drag: null};

export async function loadLocalList() {
  setState({local: await getJson("/api/local")});
}

export async function uploadFile(file) {
  if (!file) return;
  if (file.size > state.model.max_upload_mb * 1024 * 1024) {
    setStatus(`the file is over the ${state.model.max_upload_mb} MB upload limit`, true);
    return;
  }
  await openStudy(() => postFile("/api/studies", file), {keep: true});
}

// request(): the server call that opens the study (upload, local entry, annotate's patient).
// keep: the open study stays open until the new one is (vcpred serve): a wrong file (a .txt, a
// broken zip) is refused with its message beside the patient already open. Without keep (annotate,
// whose patient list has already moved on) the open study is closed first.
export async function openStudy(request, {keep = false} = {}) {
  if (!keep) await closeStudy();
  const before = state.phase;
  setState({...(keep ? {} : newPatient()), status: {text: "loading the study...", error: false}, phase: "loading"});
  let answer;
  try {
    answer = await request();
  } catch (error) {
    const stays = keep && state.study;
    setState({status: {text: stays ? `${error.message} (the study already open stays open)` : error.message,
                       error: true}, phase: stays ? before : "empty"});
    return;
  }
  if (keep) {
    await closeStudy();
    setState({...newPatient(), status: {text: "loading the study...", error: false}, phase: "loading"});
  }
  try {
    const study = await answer.json();
    setState({study: study.study_id, series: study.series,
              identity: study.series.find((s) => s.usable) || study.series[0] || null});
    if (study.chosen) await showVolume(study.chosen);
    else setStatus("the study holds several series: open the sagittal one");
  } catch (error) {
    setState({status: {text: error.message, error: true}, phase: "empty"});
  }
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
  const volume = await getFloats(chosen.volume);
  setState({
    volume, chosen, shape: chosen.shape, spacing: chosen.spacing, defaultWindow: chosen.window,
    window: {...chosen.window}, roi: null, ...NO_RESULT, zoom: 1, pan: [0, 0], drag: null,
    slice: Math.floor(chosen.shape[0] / 2), instanceNumbers: chosen.instance_numbers || null,
    identity: chosen.series, status: {text: "series loaded: draw the ROI (or type it)", error: false}, phase: "ready",
  });
}

export async function closeStudy() {
  if (!state.study) return;
  const id = state.study;
  setState({study: null, ...noVolume, roi: null, ...NO_RESULT});
  await deleteStudy(id);
  setState({series: [], ...newPatient(), status: {text: "study closed; its files were deleted", error: false},
            phase: "empty"});
}

function seriesRow(series) {
  const cells = [series.description, series.plane, String(series.slices)].map((text) => make("td", {}, text));
  const action = make("td");
  if (series.usable) {
    const button = make("button", {type: "button", textContent: "open"});
    button.dataset.series = series.id;
    button.addEventListener("click", () => chooseSeries(series.id));
    action.append(button);
  } else {
    action.textContent = series.refused;
  }
  return make("tr", {className: series.usable ? "" : "refused"}, ...cells, action);
}

function localItem(entry) {
  const button = make("button", {type: "button", textContent: entry.name});
  button.addEventListener("click", () => openStudy(() => postJson("/api/studies/local", {name: entry.name}),
                                                   {keep: true}));
  return make("li", {}, button, ` ${entry.kind}`);
}

// Whose study is open: patient, study date, series (from the DICOM header; a NIfTI file has none).
function renderIdentity(series) {
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
  if (!patient) box.append(make("span", {className: "none"},
                                " (no patient name in the file: check that this is the right patient)"));
  box.dataset.patient = patient;
}

function studyInfo(state) {
  const chosen = state.chosen;
  if (!chosen || !state.volume) return "";
  const [slices, rows, cols] = chosen.shape;
  return `${chosen.series.description}: ${slices} sagittal slices of ${rows} x ${cols} ` +
    `pixels, ${chosen.spacing.map((s) => s.toFixed(2)).join(" x ")} mm` +
    (state.instanceNumbers ? "; slices numbered as on the scanner (InstanceNumber)" : "");
}

const seriesChanged = changed(), identityChanged = changed(), localChanged = changed();

export function renderStudy(state) {
  document.body.dataset.state = state.phase;
  $("status").textContent = state.status.text;
  $("status").className = state.status.error ? "error" : "";
  if (localChanged(state.local) && state.local) {
    $("local").hidden = !state.local.enabled;
    $("local-list").replaceChildren(...state.local.entries.map(localItem));
  }
  if (seriesChanged(state.series)) $("series-table").querySelector("tbody").replaceChildren(...state.series.map(seriesRow));
  $("series-table").hidden = !state.study || state.series.length < 2;
  if (identityChanged(state.identity)) renderIdentity(state.identity);
  $("study-info").textContent = studyInfo(state);
  $("close-study").hidden = !state.study;
  $("placeholder").hidden = Boolean(state.volume);
}

export function wireStudy() {
  $("file").addEventListener("change", () => uploadFile($("file").files[0]));
  $("close-study").addEventListener("click", closeStudy);
}
