// How numbers are written on the page.

export const percent = (p) => `${(100 * p).toFixed(1)} %`;

// The number a clinician knows a slice by: the scanner's InstanceNumber (1-based) when the DICOM gives
// one, else the canonical index; the canonical index (vcpred predict --roi-slice) is in the tooltip.
export function sliceName(state, index) {
  const numbers = state.instanceNumbers;
  return numbers ? `image ${numbers[index]}` : `index ${index}`;
}

export function sliceTooltip(index) {
  return `canonical slice index ${index} (0-based, what vcpred predict --roi-slice and the report use)`;
}
