// The clinical values: one field per value the model uses (from /api/model), the vertebral level,
// the "impute" tick and the name in the report. The values live in the state; the fields, their checks
// and warnings are drawn from it.
import {$, changed, make, setState, state} from "./state.js";

// What the form calls the clinical columns of vcpred's cohorts (docs/manifest.md): the one table of
// their names on the page. A column not listed here is shown by its own name.
export const CLINICAL_LABELS = {
  age: "Age", sex: "Sex", bmi: "BMI", bmd_tscore: "BMD T-score", days_to_mri: "Days from fracture to MRI",
  steroid: "Glucocorticoids: yes/no", diabetes: "Diabetes: yes/no",
};

export const fieldLabel = (field) => CLINICAL_LABELS[field.name] || field.name;

// A 0/1 column (steroid, diabetes): a drop-down of "no" (0) and "yes" (1).
const isYesNo = (field) => Boolean(field.values) && field.values.length === 2 &&
  [...field.values].sort().join() === "0,1";

// The unit is left out where the label already says it ("Days from fracture to MRI", "BMD T-score").
function fieldUnit(field) {
  const unit = field.unit || "";
  return isYesNo(field) || fieldLabel(field).toLowerCase().includes(unit.toLowerCase()) ? "" : unit;
}

function fieldHint(field) {
  if (field.kind === "categorical") return fieldUnit(field);
  if (isYesNo(field)) return "";
  const [low, high] = [+field.min.toPrecision(4), +field.max.toPrecision(4)];
  const range = field.range_source === "development min-max" ? `training range ${low} to ${high}`
    : `about ${low} to ${high} (${field.range_source})`;
  return fieldUnit(field) ? `${fieldUnit(field)}; ${range}` : range;
}

const isChoice = (field) => field.kind === "categorical" || Boolean(field.values);

function buildInput(field) {
  if (isChoice(field)) {
    if (isYesNo(field)) return make("select", {}, new Option("", ""), new Option("no", "0"), new Option("yes", "1"));
    const choices = field.kind === "categorical" ? field.choices : field.values.map(String);
    return make("select", {}, new Option("", ""), ...choices.map((c) => new Option(c, c)));
  }
  const input = make("input", {type: "number", step: "any", placeholder: `e.g. ${+field.median.toPrecision(4)}`});
  input.min = String(field.limits.low);
  input.max = String(field.limits.high);
  return input;
}

function buildForm(fields) {
  const box = $("clinical-fields");
  box.replaceChildren();
  if (!fields.length) box.textContent = "This model uses no clinical values.";
  for (const field of fields) {
    const input = buildInput(field);
    Object.assign(input, {name: field.name, id: `clinical-${field.name}`, required: true});
    const update = () => setState({clinical: {...state.clinical, [field.name]: input.value}});
    input.addEventListener("input", update);
    input.addEventListener("change", update);
    const label = make("label", {title: `the manifest's ${field.name} column`},
                       make("span", {className: "name"}, fieldLabel(field)), input,
                       make("span", {className: "hint"}, fieldHint(field)));
    box.append(make("div", {className: "field"}, label, make("span", {className: "warn"})));
  }
}

// The clinical-input policy of vcpred predict (vcpred/predict/clinical_input.py), checked here first:
// an impossible value (outside the limits) is refused, one outside the training range only flagged.
// The server checks the same rules again. Answers {refused: why or "", warning, impossible}.
export function checkValue(field, text) {
  const ok = {refused: "", warning: "", impossible: false};
  if (text === "" || isChoice(field)) return ok;
  const value = Number(text), limits = field.limits;
  const tooLow = limits.low_open ? value <= limits.low : value < limits.low;
  if (!Number.isFinite(value)) return {...ok, refused: `${field.name} must be a number`};
  if (tooLow || value > limits.high)
    return {refused: `${field.name}=${value} is impossible (${limits.why})`, warning: `impossible: ${limits.why}`,
            impossible: true};
  if (value < field.min || value > field.max)
    return {...ok, warning: "outside the training range: accepted, flagged, the model extrapolates"};
  return ok;
}

// What the prediction request sends: the values typed, trimmed; empty ones left out.
export function clinicalValues(state) {
  const values = {};
  for (const field of state.model.clinical) {
    const value = (state.clinical[field.name] || "").trim();
    if (value !== "") values[field.name] = value;
  }
  return values;
}

const modelChanged = changed(), epochChanged = changed();

export function renderClinical(state) {
  if (!state.model) return;
  if (modelChanged(state.model)) buildForm(state.model.clinical);
  const fresh = epochChanged(state.formEpoch);  // a new patient: every field written, even one typed into
  for (const field of state.model.clinical) {
    const input = $(`clinical-${field.name}`), value = state.clinical[field.name] || "";
    if (fresh || input.value !== value) input.value = value;
    input.required = !state.allowMissing;
    const check = checkValue(field, value), warn = input.closest(".field").querySelector(".warn");
    input.setCustomValidity(check.refused);
    warn.textContent = check.warning;
    warn.className = check.impossible ? "warn error" : "warn";
  }
  $("allow-missing").checked = state.allowMissing;
  if (fresh || $("label").value !== state.label) $("label").value = state.label;
  if (fresh || $("level").value !== state.level) $("level").value = state.level;
  $("predict").disabled = !state.volume || state.predicting;
}

export function wireClinical() {
  $("allow-missing").addEventListener("change", () => setState({allowMissing: $("allow-missing").checked}));
  $("label").addEventListener("input", () => setState({label: $("label").value}));
  $("level").addEventListener("input", () => setState({level: $("level").value}));
}
