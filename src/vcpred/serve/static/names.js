// How numbers are written on the page.

// Whole percentages: the models' spread is several points wide, so tenths would claim a precision the
// prediction does not have. Numbers read against each other (a probability and its threshold, the two
// ends of a range) keep one decimal where whole numbers would make two different values look equal:
// 29.6 % against a threshold of 30.4 % never reads "30 % (threshold 30 %)".
const whole = (p) => (100 * p).toFixed(0);
const digits = (...ps) => (ps.some((p, i) => ps.some((q, j) => i !== j && p !== q && whole(p) === whole(q))) ? 1 : 0);

export const percent = (p, places = 0) => `${(100 * p).toFixed(places)} %`;

// Each value worded as percent() does, with one decimal for all of them when two would look equal.
export const percents = (...ps) => ps.map((p) => percent(p, digits(...ps)));

// A range as the result panel words each spread: "17-52 %".
export function percentRange(low, high) {
  const places = digits(low, high);
  return `${(100 * low).toFixed(places)}\u2013${(100 * high).toFixed(places)} %`;
}

// The number a clinician knows a slice by: the scanner's InstanceNumber (1-based) when the DICOM gives
// one, else the canonical index; the canonical index (vcpred predict --roi-slice) is in the tooltip.
export function sliceName(state, index) {
  const numbers = state.instanceNumbers;
  return numbers ? `image ${numbers[index]}` : `index ${index}`;
}

export function sliceTooltip(index) {
  return `canonical slice index ${index} (0-based, what vcpred predict --roi-slice and the report use)`;
}
