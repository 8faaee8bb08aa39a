// vcpred annotate's review pass: every patient of the manifest as a card (its thumbnail: the ROI slice
// with the saved box and the box enlarged, drawn by the server; its id, level, label, slice index and
// exclusion reason), PAGE_SIZE cards to a page, so that a reader checks every box before
// `vcpred cohort check`. Only the page shown has images, loaded lazily (each costs the server one read
// of the patient's image). A card opens its patient in the editor. Text from the manifest is set as
// text, never as HTML.
import {$, changed, make} from "./state.js";

export const PAGE_SIZE = 24;

// The editor's patient opener and the review's page setter (annotate.js).
let openPatient = null, showPage = null;

export function wireReview(open, setPage) {
  openPatient = open;
  showPage = setPage;
  $("review-open").addEventListener("click", () => showPage(0));
  $("review-close").addEventListener("click", () => showPage(null));
  $("review-previous").addEventListener("click", () => showPage(shownPage - 1));
  $("review-next").addEventListener("click", () => showPage(shownPage + 1));
}

// #patient=N (1 = the first patient) opens that patient: the cards' links, in this tab or another.
export const patientLink = (index) => `#patient=${index + 1}`;

export function linkedPatient(count) {
  const found = /^#patient=(\d+)$/.exec(window.location.hash);
  const index = found ? Number(found[1]) - 1 : -1;
  return index >= 0 && index < count ? index : null;
}

function goTo(event, index) {
  event.preventDefault();
  showPage(null);
  openPatient(index);
}

function thumbnail(patient, index) {
  // loading before src: the image is asked for only when its card comes near the window.
  const image = make("img", {loading: "lazy", decoding: "async", alt: `the ROI of ${patient.patient_id}`});
  image.src = `/api/annotate/patients/${index}/thumbnail?version=${patient.version}`;
  image.addEventListener("error", () => image.replaceWith(
    make("span", {className: "no-roi error"}, "no thumbnail: open the patient to see why")));
  return image;
}

function card(patient, index) {
  const link = (...children) => {
    const anchor = make("a", {href: patientLink(index)}, ...children);
    anchor.addEventListener("click", (event) => goTo(event, index));
    return anchor;
  };
  const picture = patient.roi ? thumbnail(patient, index)
    : make("span", {className: "no-roi"}, patient.partly_filled ? "ROI partly filled" : "no ROI saved");
  const facts = [patient.label ? `label ${patient.label}` : "no label",
                 patient.roi ? `slice index ${patient.roi.slice}` : ""].filter(Boolean).join(" · ");
  const item = make("li", {className: patient.exclude ? "excluded" : ""}, link(picture),
                    make("p", {className: "review-head"}, link(make("span", {className: "review-id"}, patient.patient_id)),
                         make("span", {className: patient.level ? "review-level" : "review-level none"},
                              patient.level || "level not recorded")),
                    make("p", {className: "small"}, facts));
  if (patient.exclude) item.append(make("p", {className: "small"}, `excluded: ${patient.exclude}`));
  item.dataset.index = String(index);
  return item;
}

let shownPage = 0;
const cardsChanged = changed();

// review: the page shown (0-based), or null while the editor is shown.
export function renderReview(review, patients) {
  const open = review !== null;
  document.body.dataset.review = open ? "open" : "";
  $("review-panel").hidden = !open;
  if (!open) {
    cardsChanged(null);  // the cards are made again when the review is opened again
    $("review-grid").replaceChildren();
    return;
  }
  const pages = Math.max(1, Math.ceil(patients.length / PAGE_SIZE));
  shownPage = Math.min(Math.max(0, review), pages - 1);
  const first = shownPage * PAGE_SIZE, last = Math.min(patients.length, first + PAGE_SIZE);
  $("review-page").textContent = `page ${shownPage + 1} of ${pages} (patients ${first + 1} to ${last} of ` +
    `${patients.length})`;
  $("review-previous").disabled = shownPage <= 0;
  $("review-next").disabled = shownPage >= pages - 1;
  if (cardsChanged(shownPage, patients))
    $("review-grid").replaceChildren(...patients.slice(first, last).map((p, i) => card(p, first + i)));
}
