// Drawing the image: the whole image or the ROI view, the slice in its window, the heat map inside
// the model's crop (filled or as an outline), the ROI and crop boxes, the height calipers, the
// orientation letters, the scale bar, the colour bar and the window's numbers. Everything is drawn
// from the state; nothing here changes it.
import {$, changed} from "./state.js";
import {cropSquare} from "./geometry.js";
import {drawHeights} from "./heights.js";
import {sliceName, sliceTooltip} from "./names.js";

// The ROI view frames the ROI box made square in mm and enlarged by this fraction (1: half the box's
// side each side), so the whole vertebral body, its endplates and the heat map fill the image.
export const ROI_VIEW_MARGIN = 1;

const AUTO_VIEW = Object.freeze({on: null, zoom: 1, pan: [0, 0]});

// The ROI view's state for the volume shown: on (true, framing the box it was asked on), off (false)
// or automatic (null: on while a result has a heat map with signal), with its own zoom and pan. A new
// series starts automatic.
export function roiViewOf(state) {
  const view = state.roiView;
  return view && view.volume === state.volume ? view : {...AUTO_VIEW, volume: state.volume};
}

// The box the ROI view frames, or null when the whole image is shown. The frame stays put while the
// ROI is moved or redrawn (the image does not slide under the mouse).
function roiFrameBox(state) {
  if (!state.volume) return null;
  const view = roiViewOf(state);
  if (view.on === null) return state.result && heatSignal(state) === "signal" ? state.result.roi.box : null;
  return view.on ? view.box : null;
}

export const roiZoomed = (state) => Boolean(roiFrameBox(state));

// The zoom and pan of the view shown: the whole image's (state.zoom, state.pan) or the ROI view's, so
// going back to the whole image finds it as it was left.
export function viewTransform(state) {
  if (!roiZoomed(state)) return {zoom: state.zoom, pan: state.pan};
  const {zoom, pan} = roiViewOf(state);
  return {zoom, pan};
}

// The patch that gives the view shown this zoom and pan.
export function transformPatch(state, zoom, pan) {
  return roiZoomed(state) ? {roiView: {...roiViewOf(state), zoom, pan}} : {zoom, pan};
}

// What the view frames, [top, left, bottom, right] in image pixels: the whole image, or the ROI view.
function viewFrame(state) {
  const [, rows, cols] = state.shape;
  const box = roiFrameBox(state);
  return box ? cropSquare(box, state.spacing, ROI_VIEW_MARGIN) : [0, 0, rows, cols];
}

// Canvas pixels per mm when the frame fills the canvas (physical aspect kept).
function fitScale(frame, spacing, canvas) {
  const [top, left, bottom, right] = frame, [, rowMm, colMm] = spacing;
  return Math.min(canvas.width / ((right - left) * colMm), canvas.height / ((bottom - top) * rowMm));
}

// Where the image lies on the canvas: physical aspect (a pixel is col_mm wide and row_mm high), the
// view's frame fitted to the canvas and centred, then zoomed and panned. sx, sy: canvas pixels per
// image pixel; view: "roi" or "image"; zoom: the magnification against the whole image fitted.
export function viewGeometry(state, canvas = $("view"), transform = viewTransform(state)) {
  const [, rows, cols] = state.shape;
  const [, rowMm, colMm] = state.spacing;
  const frame = viewFrame(state), [top, left, bottom, right] = frame;
  const fit = fitScale(frame, state.spacing, canvas);
  const sx = fit * colMm * transform.zoom, sy = fit * rowMm * transform.zoom;
  const ox = canvas.width / 2 - (left + right) / 2 * sx + transform.pan[0];
  const oy = canvas.height / 2 - (top + bottom) / 2 * sy + transform.pan[1];
  const zoom = fit * transform.zoom / fitScale([0, 0, rows, cols], state.spacing, canvas);
  return {sx, sy, ox, oy, zoom, view: roiZoomed(state) ? "roi" : "image"};
}

// The window as a reader writes it: width and level (centre), rounded for reading.
export function windowNumbers({low, high}) {
  const round = (v) => (Math.abs(v) >= 100 ? Math.round(v) : Number(v.toPrecision(3)));
  return {width: round(high - low), level: round((high + low) / 2)};
}

export function greyImage(state, slice) {
  const [, rows, cols] = state.shape;
  const image = new ImageData(cols, rows);
  const {low, high} = state.window;
  const scale = 255 / Math.max(high - low, 1e-6);
  const offset = slice * rows * cols;
  for (let i = 0; i < rows * cols; i++) {
    const v = Math.min(255, Math.max(0, (state.volume[offset + i] - low) * scale));
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  }
  return image;
}

// An image as a canvas (to be drawn scaled onto another).
export function imageCanvas(image) {
  const buffer = document.createElement("canvas");
  Object.assign(buffer, {width: image.width, height: image.height});
  buffer.getContext("2d").putImageData(image, 0, 0);
  return buffer;
}

// matplotlib's "jet", the colour map of the report's heat map.
export function jet(x) {
  const c = (v) => 255 * Math.min(1, Math.max(0, v));
  return [c(1.5 - Math.abs(4 * x - 3)), c(1.5 - Math.abs(4 * x - 2)), c(1.5 - Math.abs(4 * x - 1))];
}

// The heat map's own range; "no signal" when it is zero (or flat) everywhere in the crop: Grad-CAM
// keeps only what raises the logit, so an all-zero map says no region raises the risk.
export function heatSignal(state) {
  if (!state.heat) return "none";
  const [low, high] = state.heatRange;
  return Number.isFinite(high) && high > 0 && high > low ? "signal" : "no-signal";
}

export function finiteRange(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) if (!Number.isNaN(v)) { low = Math.min(low, v); high = Math.max(high, v); }
  return [low, high];
}

function blendHeat(state, image) {
  if (state.heatMode === "outline") return;
  // Colour and opacity grow with the value, stretched to the map's own min..max like the report (the
  // colour bar); NaN (outside the model's crop) is never drawn, nor are the map's lowest values.
  const alpha = state.opacity / 100;
  const [low, high] = state.heatRange;
  for (let i = 0; i < state.heat.length; i++) {
    const h = state.heat[i];
    if (Number.isNaN(h)) continue;
    const t = Math.min(1, Math.max(0, (h - low) / (high - low)));
    const a = alpha * Math.sqrt(t);
    const rgb = jet(t);
    for (let k = 0; k < 3; k++) image.data[4 * i + k] = (1 - a) * image.data[4 * i + k] + a * rgb[k];
  }
}

function showsHeat(state) {
  return Boolean(state.heat && heatSignal(state) === "signal" && state.overlay && state.result &&
    state.slice === state.result.roi.slice);
}

// The outline mode: the edges between pixels at or above a level of the map and those below it (or
// outside the crop), at 30, 60 and 90 % of the map's range, in the level's colour (blue, yellow, red:
// none the ROI box's green); the lines are twice as opaque as the slider says (thin lines at 35 % are
// hard to see).
export const OUTLINE_LEVELS = [0.3, 0.6, 0.9];

function drawOutline(state, ctx, g) {
  const [, rows, cols] = state.shape, [low, high] = state.heatRange, heat = state.heat;
  ctx.save();
  ctx.globalAlpha = Math.min(1, 2 * state.opacity / 100);
  ctx.lineWidth = 2;
  for (const level of OUTLINE_LEVELS) {
    const cut = low + level * (high - low);
    const inside = (r, c) => r >= 0 && c >= 0 && r < rows && c < cols && heat[r * cols + c] >= cut;
    const [red, green, blue] = jet(level);
    ctx.strokeStyle = `rgb(${red}, ${green}, ${blue})`;
    ctx.beginPath();
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        if (!inside(r, c)) continue;
        const x = g.ox + c * g.sx, y = g.oy + r * g.sy, x1 = x + g.sx, y1 = y + g.sy;
        for (const [dr, dc, ax, ay, bx, by] of [[-1, 0, x, y, x1, y], [1, 0, x, y1, x1, y1],
                                                [0, -1, x, y, x, y1], [0, 1, x1, y, x1, y1]]) {
          if (inside(r + dr, c + dc)) continue;
          ctx.moveTo(ax, ay);
          ctx.lineTo(bx, by);
        }
      }
    }
    ctx.stroke();
  }
  ctx.restore();
}

// The box being dragged with the mouse, [r0, c0, r1, c1].
export function dragBox(drag) {
  const [ra, ca] = drag.start, [rb, cb] = drag.now;
  return [Math.min(ra, rb), Math.min(ca, cb), Math.max(ra, rb), Math.max(ca, cb)];
}

function strokeBox(ctx, g, box, colour, dashed) {
  const [r0, c0, r1, c1] = box;
  ctx.save();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.setLineDash(dashed ? [6, 4] : []);
  ctx.strokeRect(g.ox + c0 * g.sx, g.oy + r0 * g.sy, (c1 - c0) * g.sx, (r1 - r0) * g.sy);
  ctx.restore();
}

// The box being drawn; the ROI (solid on its slice, dashed on the slices the model also reads); the
// crop the model saw, as the server reports it (dashed white), with the result.
function drawBoxes(state, ctx, g) {
  if (state.drag && state.drag.kind === "roi") strokeBox(ctx, g, dragBox(state.drag), "#ffd54f", true);
  if (!state.roi) return;
  const offset = state.slice - state.roi.slice;
  if (offset === 0) strokeBox(ctx, g, state.roi.box, "#4caf50", false);
  else if (Math.abs(offset) <= state.model.k) strokeBox(ctx, g, state.roi.box, "#4caf50", true);
  if (state.result && offset === 0) strokeBox(ctx, g, state.result.crop_box, "#ffffff", true);
}

// Canonical sagittal display: anterior left, posterior right, superior up, inferior down.
function drawOrientation(ctx, canvas) {
  const w = canvas.width, h = canvas.height;
  ctx.save();
  ctx.font = "bold 15px system-ui, Arial, sans-serif";
  ctx.fillStyle = "#ffeb3b";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const [letter, x, y] of [["S", w / 2, 12], ["I", w / 2, h - 12], ["A", 12, h / 2], ["P", w - 12, h / 2]])
    ctx.fillText(letter, x, y);
  ctx.restore();
}

// A bar of a round length (5, 10, 20, 50 or 100 mm) near 1/6 of the canvas, in the row direction's
// mm; answers the length.
function drawScaleBar(state, ctx, canvas, g) {
  const pxPerMm = g.sx / state.spacing[2];
  const target = canvas.width / 6 / pxPerMm;
  const mm = [5, 10, 20, 50, 100].reduce((best, v) => Math.abs(v - target) < Math.abs(best - target) ? v : best);
  const length = mm * pxPerMm, x = 14, y = canvas.height - 16;
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x + length, y);
  ctx.moveTo(x, y - 5);
  ctx.lineTo(x, y + 5);
  ctx.moveTo(x + length, y - 5);
  ctx.lineTo(x + length, y + 5);
  ctx.stroke();
  ctx.font = "12px system-ui, Arial, sans-serif";
  ctx.fillText(`${mm} mm`, x, y - 8);
  ctx.restore();
  return mm;
}

// The colour bar on the image (top right) while the heat map is drawn: low (blue) to high (red).
function drawColorBar(ctx, canvas) {
  const width = 12, height = Math.min(120, canvas.height / 4), x = canvas.width - 30, y = 30;
  ctx.save();
  for (let i = 0; i < height; i++) {
    const [r, gr, b] = jet(1 - i / height);
    ctx.fillStyle = `rgb(${r}, ${gr}, ${b})`;
    ctx.fillRect(x, y + i, width, 1);
  }
  ctx.strokeStyle = "#fff";
  ctx.strokeRect(x, y, width, height);
  ctx.fillStyle = "#fff";
  ctx.font = "11px system-ui, Arial, sans-serif";
  ctx.textAlign = "right";
  ctx.fillText("high", x - 3, y + 8);
  ctx.fillText("low", x - 3, y + height);
  ctx.restore();
}

// The window in numbers at the bottom right, as on a workstation.
function drawWindow(state, ctx, canvas) {
  const {width, level} = windowNumbers(state.window);
  ctx.save();
  ctx.fillStyle = "#fff";
  ctx.font = "12px system-ui, Arial, sans-serif";
  ctx.textAlign = "right";
  ctx.fillText(`W ${width} L ${level}`, canvas.width - 8, canvas.height - 10);
  ctx.restore();
}

// The colour legend under the heat-map toggle (drawn once).
export function drawLegend() {
  const canvas = $("colorbar-canvas"), ctx = canvas.getContext("2d");
  for (let i = 0; i < canvas.width; i++) {
    const [r, g, b] = jet(i / (canvas.width - 1));
    ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(i, 0, 1, canvas.height);
  }
}

// The reading tools and the frames strip keep this much width beside the image when that costs the
// image at most a fifth of its side; otherwise they go below it.
const SIDE_PX = 240;

// As large as the window allows: the viewer column's width and the height left below the toolbar,
// so the image and the result column fit the window without scrolling.
function fitCanvas() {
  const wrap = $("canvas-wrap"), canvas = $("view"), panel = wrap.parentElement, style = getComputedStyle(panel);
  const width = panel.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const top = wrap.getBoundingClientRect().top + window.scrollY;
  const height = window.innerHeight - top - 10;
  const full = Math.min(width, height, 1000), beside = width - SIDE_PX >= 0.8 * full;
  const side = Math.max(200, Math.floor(beside ? Math.min(full, width - SIDE_PX) : full));
  if (canvas.width !== side) {
    Object.assign(canvas, {width: side, height: side});
    wrap.style.width = wrap.style.height = `${side}px`;
  }
}

const fitChanged = changed();

// The view of the image: the canvas fitted to the window (when the window or the volume changes),
// the slice drawn, and the slice slider and label.
export function renderImage(state) {
  const canvas = $("view"), ctx = canvas.getContext("2d"), slider = $("slice");
  if (fitChanged(state.viewport, state.volume)) fitCanvas();
  slider.disabled = !state.volume;
  if (!state.volume) {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    return;
  }
  const [slices, rows, cols] = state.shape;
  Object.assign(slider, {max: String(slices - 1), value: String(state.slice)});
  const image = greyImage(state, state.slice);
  const overlay = showsHeat(state);
  if (overlay) blendHeat(state, image);
  const g = viewGeometry(state, canvas);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = g.zoom < 2;
  ctx.drawImage(imageCanvas(image), g.ox, g.oy, cols * g.sx, rows * g.sy);
  if (overlay && state.heatMode === "outline") drawOutline(state, ctx, g);
  drawBoxes(state, ctx, g);
  drawHeights(state, ctx, g);
  drawOrientation(ctx, canvas);
  canvas.dataset.scaleMm = String(drawScaleBar(state, ctx, canvas, g));
  if (overlay) drawColorBar(ctx, canvas);
  drawWindow(state, ctx, canvas);
  const signal = heatSignal(state);
  canvas.dataset.overlay = overlay ? "drawn" : signal === "no-signal" ? "no-signal" : state.heat ? "hidden" : "none";
  canvas.dataset.slice = String(state.slice);
  Object.assign(canvas.dataset, {view: g.view, zoom: g.zoom.toFixed(3), heat: overlay ? state.heatMode : ""});
  const label = $("slice-label");
  label.textContent = `${sliceName(state, state.slice)} (${state.slice + 1} of ${slices})` +
    (state.roi && state.slice === state.roi.slice ? " · ROI slice" : "");
  label.title = sliceTooltip(state.slice);
  slider.title = label.title;
}
