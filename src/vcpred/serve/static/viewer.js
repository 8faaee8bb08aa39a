// The image's controls: mouse (ROI, window/level, pan, height calipers), wheel (slices, Ctrl: zoom),
// keyboard (arrows move the ROI, Ctrl/Alt + arrows resize it, Page Up/Down change slices, Esc stops
// a height), the slider, the zoom, ROI view and reset buttons. Each handler only computes the new state.
import {$, setState, setStatus, state} from "./state.js";
import {dragBox, roiViewOf, roiZoomed, transformPatch, viewGeometry, viewTransform} from "./canvas.js";
import {cancelHeight, caliperClick} from "./heights.js";
import {nudgedBox, roiPatch} from "./roi.js";

export const slicePatch = (index) => ({slice: Math.min(state.shape[0] - 1, Math.max(0, index))});

export function setSlice(index) {
  if (state.volume) setState(slicePatch(index));
}

// The image pixel under the mouse, clipped to the image.
function imagePoint(event) {
  const rect = $("view").getBoundingClientRect(), g = viewGeometry(state);
  const [, rows, cols] = state.shape;
  const col = (event.clientX - rect.left - g.ox) / g.sx, row = (event.clientY - rect.top - g.oy) / g.sy;
  return [Math.min(rows, Math.max(0, Math.round(row))), Math.min(cols, Math.max(0, Math.round(col)))];
}

function toolOf(event) {
  if (event.button === 2) return "wl";
  if (event.shiftKey) return "pan";
  return state.tool;
}

function onMouseDown(event) {
  if (!state.volume) return;
  event.preventDefault();
  $("view").focus({preventScroll: true});
  const point = imagePoint(event), kind = toolOf(event);
  if (kind === "heights") {
    caliperClick(point);
    return;
  }
  setState({drag: {kind, start: point, now: point, x: event.clientX, y: event.clientY,
                   window: {...state.window}, pan: [...viewTransform(state).pan]}});
}

function onMouseMove(event) {
  const drag = state.drag, m = state.measuring;
  if (m && m.start && state.tool === "heights" && state.volume) setState({measuring: {...m, now: imagePoint(event)}});
  if (!drag) return;
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (drag.kind === "roi") setState({drag: {...drag, now: imagePoint(event)}});
  if (drag.kind === "pan")
    setState(transformPatch(state, viewTransform(state).zoom, [drag.pan[0] + dx, drag.pan[1] + dy]));
  if (drag.kind === "wl") {  // right/left: wider/narrower window; up/down: darker/brighter
    const width = Math.max((drag.window.high - drag.window.low) * Math.exp(dx / 200), 1e-3);
    const centre = (drag.window.high + drag.window.low) / 2 + dy * width / 300;
    setState({window: {low: centre - width / 2, high: centre + width / 2}});
  }
}

function onMouseUp(event) {
  const drag = state.drag;
  if (!drag) return;
  if (drag.kind === "roi") {
    const box = dragBox({...drag, now: imagePoint(event)});
    if (box[2] - box[0] >= 4 && box[3] - box[1] >= 4) {
      setState({drag: null, ...roiPatch(state.slice, box)});
      return;
    }
  }
  setState({drag: null});
}

function onWheel(event) {
  if (!state.volume) return;
  event.preventDefault();
  const rect = $("view").getBoundingClientRect();
  if (event.ctrlKey) zoomBy(event.deltaY < 0 ? 1.25 : 0.8, [event.clientX - rect.left, event.clientY - rect.top]);
  else setSlice(state.slice + Math.sign(event.deltaY));
}

// Zoom keeping the image point under `anchor` (canvas pixels) in place: the mouse for Ctrl+wheel,
// the ROI's centre (or the canvas centre) for the buttons.
function zoomBy(factor, anchor = null) {
  if (!state.volume) return;
  const canvas = $("view"), before = viewGeometry(state, canvas), {zoom: now, pan} = viewTransform(state);
  if (!anchor && state.roi) {
    const [r0, c0, r1, c1] = state.roi.box;
    anchor = [before.ox + (c0 + c1) / 2 * before.sx, before.oy + (r0 + r1) / 2 * before.sy];
  }
  anchor = anchor || [canvas.width / 2, canvas.height / 2];
  const col = (anchor[0] - before.ox) / before.sx, row = (anchor[1] - before.oy) / before.sy;
  const zoom = Math.min(16, Math.max(0.5, now * factor));
  const after = viewGeometry(state, canvas, {zoom, pan});
  setState(transformPatch(state, zoom, [pan[0] + anchor[0] - (after.ox + col * after.sx),
                                        pan[1] + anchor[1] - (after.oy + row * after.sy)]));
}

// The ROI view (the ROI with a margin, fitted to the image) and back to the whole image as it was.
function toggleRoiView() {
  const zoomed = roiZoomed(state);
  if (!state.volume || (!zoomed && !state.roi)) return;
  setState({roiView: {volume: state.volume, on: !zoomed, box: zoomed ? null : state.roi.box, zoom: 1, pan: [0, 0]}});
}

const MOVES = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};

// Keyboard on the focused image: arrows move the box (Shift: 5 pixels), Ctrl/Alt + arrows move its
// lower-right corner (resize), Page Up/Down change the slice. Without a box the arrows only say how to
// make one: a box is always drawn or typed on purpose, never a default that could be saved unseen.
function onKey(event) {
  if (!state.volume) return;
  if (event.key === "Escape") cancelHeight();
  if (event.key === "PageUp" || event.key === "PageDown") {
    event.preventDefault();
    setSlice(state.slice + (event.key === "PageDown" ? 1 : -1));
    return;
  }
  if (!(event.key in MOVES)) return;
  event.preventDefault();
  const [, rows, cols] = state.shape;
  if (!state.roi) {
    setStatus("draw the ROI box with the mouse (or type it below) first; the arrow keys then move it", true);
    return;
  }
  const step = event.shiftKey ? 5 : 1, move = MOVES[event.key].map((v) => v * step);
  setState(roiPatch(state.roi.slice, nudgedBox(state.roi.box, move, event.ctrlKey || event.altKey, rows, cols)));
}

export function wireViewer() {
  const canvas = $("view");
  canvas.addEventListener("mousedown", onMouseDown);
  window.addEventListener("mousemove", onMouseMove);
  window.addEventListener("mouseup", onMouseUp);
  canvas.addEventListener("wheel", onWheel, {passive: false});
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("keydown", onKey);
  $("slice").addEventListener("input", () => setSlice(Number($("slice").value)));
  for (const radio of document.querySelectorAll("input[name=tool]"))
    radio.addEventListener("change", () => setState({tool: radio.value, measuring: null}));
  $("zoom-in").addEventListener("click", () => zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => zoomBy(0.8));
  $("zoom-roi").addEventListener("click", toggleRoiView);
  $("reset-view").addEventListener("click", () =>
    setState({zoom: 1, pan: [0, 0], window: state.defaultWindow && {...state.defaultWindow},
              roiView: {...roiViewOf(state), on: false}}));
  window.addEventListener("resize", () => setState({viewport: [window.innerWidth, window.innerHeight]}));
}

// The left-button tool the state holds (none of the three while a height is measured), and the ROI
// view's button: pressed while the ROI view is shown.
export function renderTools(state) {
  for (const radio of document.querySelectorAll("input[name=tool]")) radio.checked = radio.value === state.tool;
  const button = $("zoom-roi"), zoomed = roiZoomed(state);
  button.disabled = !state.volume || (!zoomed && !state.roi);
  button.setAttribute("aria-pressed", String(zoomed));
  button.title = zoomed ? "back to the whole image" : "zoom to the ROI (with a margin)";
}
