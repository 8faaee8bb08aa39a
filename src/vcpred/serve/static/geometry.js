// The page's only copy of the pipeline's frame and crop geometry (imaging/preprocess.py: SelectFrames
// and CropROI.box), so the frames shown are exactly what the model will see. Every module that needs
// it imports it from here (tests/test_serve_modules.py checks that the page follows this file).
// tests/test_serve_geometry.py runs these functions in Chromium on vectors computed by the Python
// code, so the two cannot drift apart.

// Python's round(): halves go to the even neighbour (Math.round would take 2.5 to 3, Python to 2).
export function roundHalfEven(x) {
  const floor = Math.floor(x), fraction = x - floor;
  if (fraction !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

// SelectFrames: the ROI slice and k neighbours each side; "replicate" reuses the edge slice beyond
// the volume, "keep" drops those frames.
export function selectFrames(slices, roiSlice, k, edge) {
  const frames = [];
  for (let offset = -k; offset <= k; offset++) {
    const index = roiSlice + offset;
    const inside = index >= 0 && index < slices;
    if (inside || edge === "replicate")
      frames.push({offset, slice: Math.min(Math.max(index, 0), slices - 1), edge: !inside});
  }
  return frames;
}

// CropROI.box: the box enlarged by the margin and made square in millimetres, in whole pixels
// [top, left, bottom, right] (may reach outside the image, where the pipeline pads with zeros).
export function cropSquare(box, spacing, margin) {
  const [r0, c0, r1, c1] = box, [, rowMm, colMm] = spacing;
  const side = Math.max((r1 - r0) * rowMm, (c1 - c0) * colMm) * (1 + margin);
  const rows = Math.max(1, roundHalfEven(side / rowMm)), cols = Math.max(1, roundHalfEven(side / colMm));
  const top = Math.floor((r0 + r1 - rows) / 2 + 0.5), left = Math.floor((c0 + c1 - cols) / 2 + 0.5);
  return [top, left, top + rows, left + cols];
}
