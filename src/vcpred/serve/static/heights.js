// Height calipers: the anterior, middle and posterior heights of the vertebral body, each measured by
// clicking its two ends on one slice (the ROI slice when there is a ROI), in mm from the series' pixel
// spacing; the height-loss ratio (the smallest height over the larger of the anterior and posterior
// ones) and the grade it gives on Genant's semiquantitative scale (Genant et al., J Bone Miner Res
// 1993;8:1137-48): reduction under 20 % grade 0, 20-25 % grade 1, 25-40 % grade 2, over 40 % grade 3.
import {$, changed, setState, setStatus, state} from "./state.js";
import {sliceName} from "./names.js";

export const HEIGHTS = ["anterior", "middle", "posterior"];

const PROMPTS = {
  anterior: "anterior height: click the top, then the bottom of the body's front edge",
  middle: "middle height: click the middle of the upper endplate, then of the lower endplate",
  posterior: "posterior height: click the top, then the bottom of the body's back edge",
};

const GRADES = ["grade 0 (normal, under 20 %)", "grade 1 (mild, 20-25 %)", "grade 2 (moderate, 25-40 %)",
                "grade 3 (severe, over 40 %)"];

// The distance between two image points [row, col] in mm (rows and columns have their own spacing).
export function heightMm([r0, c0], [r1, c1], spacing) {
  const [, rowMm, colMm] = spacing;
  return Math.hypot((r1 - r0) * rowMm, (c1 - c0) * colMm);
}

// Genant's grade of a height reduction (a fraction): the boundaries belong to the lower grade's
// upper neighbour as the scale reads them (20 % is grade 1, 25 % grade 2, 40 % still grade 2).
export function genantGrade(reduction) {
  if (reduction < 0.20) return 0;
  if (reduction < 0.25) return 1;
  if (reduction <= 0.40) return 2;
  return 3;
}

// {anterior, middle, posterior} in mm -> the smallest over the larger reference (anterior or
// posterior), the reduction and the grade.
export function heightLoss(mm) {
  const reference = mm.anterior >= mm.posterior ? "anterior" : "posterior";
  const smallest = HEIGHTS.reduce((low, name) => (mm[name] < mm[low] ? name : low));
  const ratio = mm[smallest] / mm[reference];
  return {reference, smallest, ratio, reduction: 1 - ratio, grade: genantGrade(1 - ratio)};
}

// The heights of the volume shown (a new series or study starts without any).
export function currentHeights(state) {
  return state.heights && state.heights.volume === state.volume ? state.heights : null;
}

// The measured heights in mm (null for those not measured yet).
export function heightsMm(state) {
  const heights = currentHeights(state);
  return Object.fromEntries(HEIGHTS.map((name) => [name, heights && heights[name]
    ? heightMm(...heights[name], state.spacing) : null]));
}

// Start measuring one height: on the ROI slice when there is a ROI, else on the slice shown; heights
// measured on another slice are cleared (the three belong to one slice).
export function startHeight(which) {
  if (!state.volume) return;
  const slice = state.roi ? state.roi.slice : state.slice;
  const kept = currentHeights(state);
  const heights = kept && kept.slice === slice ? kept : {volume: state.volume, slice};
  const back = state.tool === "heights" && state.measuring ? state.measuring.back : state.tool;
  setState({slice, heights, tool: "heights", measuring: {which, start: null, now: null, back}});
}

// A click of the heights tool at the image point: the height's first end, or its second (the height is
// then measured and the next one not yet measured is asked for, or the tool goes back).
export function caliperClick(point) {
  const m = state.measuring;
  if (!m) return;
  // Measuring went on while another series was opened: the heights start again on the slice shown.
  const heights = currentHeights(state) || {volume: state.volume, slice: state.slice};
  if (state.slice !== heights.slice) {
    setStatus(`the heights are measured on ${sliceName(state, heights.slice)}: go back to it, or clear them`, true);
    return;
  }
  if (!m.start) {
    setState({heights, measuring: {...m, start: point, now: point}});
    return;
  }
  if (point[0] === m.start[0] && point[1] === m.start[1]) {
    setStatus(`click the other end of the ${m.which} height (the same point twice measures nothing)`, true);
    return;
  }
  const measured = {...heights, [m.which]: [m.start, point]};
  const next = HEIGHTS.find((name) => !measured[name]);
  setState(next ? {heights: measured, measuring: {which: next, start: null, now: null, back: m.back}}
    : {heights: measured, measuring: null, tool: m.back});
}

export function cancelHeight() {
  if (state.measuring) setState({measuring: null, tool: state.measuring.back});
}

// The heights on their slice: a line with end ticks and its initial; the height being measured runs
// from its first end to the mouse.
export function drawHeights(state, ctx, g) {
  const heights = currentHeights(state);
  if (!heights || heights.slice !== state.slice) return;
  const at = ([r, c]) => [g.ox + c * g.sx, g.oy + r * g.sy];
  const lines = HEIGHTS.filter((name) => heights[name]).map((name) => [name, heights[name]]);
  const m = state.measuring;
  if (m && m.start) lines.push([m.which, [m.start, m.now || m.start]]);
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = "#ff40ff";  // magenta: no colour of the heat map or the boxes
  ctx.lineWidth = 2;
  ctx.font = "bold 13px system-ui, Arial, sans-serif";
  for (const [name, [a, b]] of lines) {
    const [x0, y0] = at(a), [x1, y1] = at(b);
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    for (const [x, y] of [[x0, y0], [x1, y1]]) {
      ctx.moveTo(x - 5, y);
      ctx.lineTo(x + 5, y);
    }
    ctx.stroke();
    ctx.fillText(name.charAt(0).toUpperCase(), Math.max(x0, x1) + 6, (y0 + y1) / 2 + 4);
  }
  ctx.restore();
}

const mmText = (mm) => `${mm.toFixed(1)} mm`;

function lossText(mm) {
  if (HEIGHTS.some((name) => mm[name] === null)) return "";
  const loss = heightLoss(mm);
  return `Height loss ${(100 * loss.reduction).toFixed(0)} % (${loss.smallest} ${mmText(mm[loss.smallest])} / ` +
    `${loss.reference} ${mmText(mm[loss.reference])}): Genant ${GRADES[loss.grade]}.`;
}

const panelChanged = changed();

export function renderHeights(state) {
  $("heights-panel").hidden = !state.volume;
  if (!panelChanged(state.heights, state.measuring, state.volume, state.spacing)) return;
  const mm = heightsMm(state), heights = currentHeights(state), m = state.tool === "heights" && state.measuring;
  for (const name of HEIGHTS) {
    const cell = $(`height-${name}`);
    cell.textContent = mm[name] === null ? "-" : mmText(mm[name]);
    cell.dataset.mm = mm[name] === null ? "" : mm[name].toFixed(2);
    $(`measure-${name}`).setAttribute("aria-pressed", String(Boolean(m && m.which === name)));
  }
  $("heights-prompt").textContent = m ? `${m.start ? "Now the second end of the " : "Click the "}${PROMPTS[m.which]}` +
    " (Esc stops)." : heights ? `Measured on ${sliceName(state, heights.slice)}.` : "";
  const loss = $("height-loss");
  loss.textContent = lossText(mm);
  loss.dataset.grade = loss.textContent ? String(heightLoss(mm).grade) : "";
  $("clear-heights").disabled = !heights;
}

export function wireHeights() {
  for (const name of HEIGHTS) $(`measure-${name}`).addEventListener("click", () => startHeight(name));
  $("clear-heights").addEventListener("click", () =>
    setState({heights: null, measuring: null, tool: state.measuring ? state.measuring.back : state.tool}));
}
