// The ROI: the box around the vertebral body on its central slice (canonical index, rows and columns,
// max exclusive, as vcpred predict --roi-slice/--roi-box take them), drawn, typed or nudged.
import {$, NO_RESULT, changed, setState, setStatus, state} from "./state.js";
import {sliceName} from "./names.js";

// A new or changed ROI: the earlier result belongs to the old box and goes.
export const roiPatch = (slice, box) => ({roi: {slice, box}, ...NO_RESULT});

// The box inside the image, at least 4 x 4 pixels (what the server accepts).
export function validBox(box, rows, cols) {
  const [r0, c0, r1, c1] = box;
  return box.every(Number.isInteger) && r0 >= 0 && c0 >= 0 && r1 <= rows && c1 <= cols && r1 - r0 >= 4 && c1 - c0 >= 4;
}

// The box moved by [dr, dc] without leaving the image, or (resize) its lower-right corner moved,
// keeping at least 4 x 4 pixels.
export function nudgedBox(box, [dr, dc], resize, rows, cols) {
  let [r0, c0, r1, c1] = box;
  if (resize) {
    r1 = Math.min(rows, Math.max(r0 + 4, r1 + dr));
    c1 = Math.min(cols, Math.max(c0 + 4, c1 + dc));
  } else {
    const mr = Math.min(rows - r1, Math.max(-r0, dr)), mc = Math.min(cols - c1, Math.max(-c0, dc));
    [r0, r1, c0, c1] = [r0 + mr, r1 + mr, c0 + mc, c1 + mc];
  }
  return [r0, c0, r1, c1];
}

const FIELDS = ["roi-slice", "roi-r0", "roi-c0", "roi-r1", "roi-c1"];

// "Set ROI" (or Enter) in the typed fields.
export function typedRoi(event) {
  event.preventDefault();
  if (!state.volume) return;
  const [slices, rows, cols] = state.shape;
  const [slice, ...box] = FIELDS.map((id) => ($(id).value.trim() === "" ? NaN : Number($(id).value)));
  if (!Number.isInteger(slice) || slice < 0 || slice >= slices) {
    setStatus(`the ROI slice index must be a whole number from 0 to ${slices - 1}`, true);
    return;
  }
  if (!validBox(box, rows, cols)) {
    setStatus(`the ROI box must be whole numbers inside the ${rows} x ${cols} image, rows and columns ` +
              "increasing, at least 4 pixels each way", true);
    return;
  }
  setState({slice, ...roiPatch(slice, box), status: {text: "ROI set", error: false}});
}

const roiChanged = changed();

// The ROI line and the typed fields, which follow the box (written when the box or the patient
// changes, never the field being typed in).
export function renderRoi(state) {
  $("roi-set").disabled = !state.volume;
  if (state.shape) $("roi-slice").max = String(state.shape[0] - 1);
  const info = $("roi-info"), roi = state.volume ? state.roi : null;
  if (!roiChanged(roi, state.formEpoch)) return;
  if (!roi) {
    info.textContent = "Scroll to the central slice of the fractured vertebra and drag a box around its body.";
    delete info.dataset.box;
    delete info.dataset.slice;
    for (const id of FIELDS) $(id).value = "";
    return;
  }
  const [r0, c0, r1, c1] = roi.box;
  info.textContent = `ROI on ${sliceName(state, roi.slice)} (index ${roi.slice}): rows ${r0}-${r1}, ` +
    `columns ${c0}-${c1} (drag again, type below, or use the arrow keys on the image).`;
  Object.assign(info.dataset, {box: roi.box.join(","), slice: String(roi.slice)});
  FIELDS.forEach((id, i) => {
    if (document.activeElement !== $(id)) $(id).value = String([roi.slice, ...roi.box][i]);
  });
}
