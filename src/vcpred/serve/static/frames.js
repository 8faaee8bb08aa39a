// The strip of the frames the model will read: the ROI slice and k neighbours each side, cropped the
// way the model crops. Which frames and which crop come from geometry.js only (the pipeline's rules,
// tested against it on shared vectors); the strip's data-crop names the crop it drew.
import {$, changed, make} from "./state.js";
import {cropSquare, selectFrames} from "./geometry.js";
import {greyImage, imageCanvas} from "./canvas.js";
import {sliceName, sliceTooltip} from "./names.js";

const SIZE = 96;
const stripChanged = changed();

export function renderFrames(state) {
  const ready = Boolean(state.volume && state.roi && state.model);
  $("frames-panel").hidden = !ready;
  if (!ready || !stripChanged(state.volume, state.roi, state.window, state.model, state.instanceNumbers)) return;
  const {k, edge, margin} = state.model;
  const frames = selectFrames(state.shape[0], state.roi.slice, k, edge);
  const crop = cropSquare(state.roi.box, state.spacing, margin), [top, left, bottom, right] = crop;
  $("frames").replaceChildren(...frames.map((frame) => {
    const canvas = make("canvas", {width: SIZE, height: SIZE});
    canvas.getContext("2d").drawImage(imageCanvas(greyImage(state, frame.slice)), left, top, right - left,
                                      bottom - top, 0, 0, SIZE, SIZE);
    const label = make("div", {title: sliceTooltip(frame.slice)},
                       `${frame.offset > 0 ? "+" : ""}${frame.offset} · ${sliceName(state, frame.slice)}` +
                       (frame.edge ? " (edge)" : ""));
    const cell = make("div", {className: "frame" + (frame.offset === 0 ? " main" : "") + (frame.edge ? " edge" : "")},
                      canvas, label);
    Object.assign(cell.dataset, {offset: String(frame.offset), slice: String(frame.slice)});
    return cell;
  }));
  $("frames").dataset.crop = crop.join(",");
  const dropped = 2 * k + 1 - frames.length;
  $("frames-note").textContent = `The ROI slice and ${k} neighbours on each side, cropped around ` +
    `the box (+${Math.round(100 * margin)} %)` + (dropped ? `; ${dropped} beyond the volume dropped` : "") + ".";
}
