"""Does each variant hold at the external set? (evaluation.json `transfer`, summary.csv `transfer_flag`,
tables.md, evaluate's console, the report and the model card; docs/evaluation.md, "Transfer check").

A variant can rank well on its validation patients and fall apart at a new site (issue 26: on one
synthetic seed the chosen image model had internal 0.831 and external 0.609, clinical values alone
0.811 there). Per variant with an external ensemble AUC, two flags:
- **collapse at the external set**: the drop (mean internal AUC - external ensemble AUC) exceeds
  COLLAPSE_MARGIN (0.10 AUC) and the external AUC's DeLong 95 % upper bound is below the internal
  mean, so chance in a small external set alone does not explain it;
- **below the reference at the external set**: the external AUC is below the reference's (the
  selection rule's reference: the configuration without images unless --reference names another)
  by more than the reference's own DeLong CI half-width.

Reporting only: the external set chooses nothing (selection.py never reads it), so a flag never
changes which variant is chosen; it tells the reader not to trust the internal figure at a new site.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vcpred.jsonio import from_dict

COLLAPSE_MARGIN = 0.10  # AUC: a loss that changes what a model is worth (0.83 -> 0.73), not a rounding difference
COLLAPSE, BELOW_REFERENCE = "collapse", "below-reference"  # summary.csv transfer_flag values
WORDS = {COLLAPSE: "collapse at the external set", BELOW_REFERENCE: "below the reference at the external set"}
REPORTING_ONLY = "reporting only: the external set does not change which variant is chosen"


@dataclass(frozen=True)
class VariantTransfer:
    """One variant: its mean internal AUC over splits, its split ensemble's external AUC with the
    DeLong 95 % CI, the drop between them and the flags it raises (COLLAPSE, BELOW_REFERENCE)."""

    internal_auc: float
    external_auc: float
    external_ci_low: float
    external_ci_high: float
    drop: float  # internal_auc - external_auc
    flags: list[str]


@dataclass(frozen=True)
class Transfer:
    """evaluation.json `transfer`: the rule's numbers and every variant with a defined external AUC."""

    margin: float  # COLLAPSE_MARGIN
    reference: str  # the selection rule's reference variant
    reference_auc: float  # its external ensemble AUC (NaN: undefined, no variant is below it)
    reference_half_width: float  # its DeLong CI half-width (the wider side: the CI is clipped to [0, 1])
    chosen: str  # the best variant (chosen on validation data only)
    variants: dict[str, VariantTransfer]
    note: str = REPORTING_ONLY

    @property
    def flagged(self) -> dict[str, VariantTransfer]:
        return {label: v for label, v in self.variants.items() if v.flags}


def read_transfer(data) -> Transfer | None:
    """evaluation.json `transfer` read back (None when absent: an evaluation written before it existed);
    ValueError when it is not one."""
    return None if data is None else from_dict(Transfer, data, "transfer")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def half_width(auc: float, low: float, high: float) -> float:
    """The DeLong CI's half-width: its wider side (a CI clipped at 0 or 1 is narrower on that side)."""
    return max(auc - low, high - auc) if all(_finite(x) for x in (auc, low, high)) else math.nan


def transfer_check(internal: dict[str, float], external: dict[str, dict], reference: str, chosen: str,
                   margin: float = COLLAPSE_MARGIN) -> Transfer:
    """internal: variant label -> mean internal (validation) AUC over splits; external: variant label ->
    its ensemble's metrics (`auc`, `auc_ci_low`, `auc_ci_high`, as evaluation.json `ensembles`).
    A variant whose external AUC is undefined (too few labelled external patients) is left out."""
    ref = external.get(reference) or {}
    ref_auc = ref.get("auc", math.nan) if _finite(ref.get("auc")) else math.nan
    ref_half = half_width(ref_auc, ref.get("auc_ci_low", math.nan), ref.get("auc_ci_high", math.nan))
    variants = {}
    for label, m in external.items():
        auc, low, high = m.get("auc"), m.get("auc_ci_low"), m.get("auc_ci_high")
        if not _finite(auc):
            continue
        inside = internal.get(label, math.nan)
        drop = inside - auc if _finite(inside) else math.nan
        flags = []
        if _finite(drop) and drop > margin and _finite(high) and high < inside:
            flags.append(COLLAPSE)
        if label != reference and _finite(ref_half) and auc < ref_auc - ref_half:
            flags.append(BELOW_REFERENCE)
        variants[label] = VariantTransfer(inside, auc, low, high, drop, flags)
    return Transfer(margin, reference, ref_auc, ref_half, chosen, variants)


def _n(value: float) -> str:
    return f"{value:.3f}" if _finite(value) else "n/a"


def rule_sentence(transfer: Transfer) -> str:
    """The rule in one sentence, with its margin and the reference's numbers."""
    reference = (f"the reference {transfer.reference}'s ({_n(transfer.reference_auc)}) by more than its DeLong CI "
                 f"half-width ({_n(transfer.reference_half_width)})" if _finite(transfer.reference_half_width)
                 else f"the reference {transfer.reference}'s (undefined here, so this flag is not raised)")
    return (f"Transfer check ({transfer.note}): a variant collapses at the external set when its mean internal "
            f"AUC minus its external ensemble AUC exceeds {transfer.margin:.2f} and the external AUC's DeLong "
            f"95 % upper bound is below the internal mean (chance alone does not explain the drop); it is below "
            f"the reference at the external set when its external AUC is below {reference}.")


def flag_sentence(label: str, v: VariantTransfer, transfer: Transfer) -> str:
    """'NAME: collapse at the external set (external 0.609 (0.52-0.70), internal 0.831, drop 0.222); ...'."""
    parts = []
    if COLLAPSE in v.flags:
        parts.append(f"{WORDS[COLLAPSE]} (external ensemble AUC {_n(v.external_auc)}, DeLong 95 % CI "
                     f"{_n(v.external_ci_low)}-{_n(v.external_ci_high)}; mean internal AUC {_n(v.internal_auc)}; "
                     f"drop {_n(v.drop)} > {transfer.margin:.2f})")
    if BELOW_REFERENCE in v.flags:
        parts.append(f"{WORDS[BELOW_REFERENCE]} (external ensemble AUC {_n(v.external_auc)} against "
                     f"{transfer.reference}'s {_n(transfer.reference_auc)} minus its CI half-width "
                     f"{_n(transfer.reference_half_width)} = {_n(transfer.reference_auc - transfer.reference_half_width)})")
    return f"{label}: " + "; ".join(parts)


def chosen_sentence(transfer: Transfer, subject: str = "The chosen model") -> str:
    """Said first when the chosen variant (transfer.chosen; on a model card, the exported one: `subject`)
    is flagged; '' when it is not."""
    v = transfer.variants.get(transfer.chosen)
    if v is None or not v.flags:
        return ""
    what = []
    if COLLAPSE in v.flags:
        what.append(f"it collapses at the external set (drop {_n(v.drop)} > {transfer.margin:.2f}, beyond its CI)")
    if BELOW_REFERENCE in v.flags:
        what.append(f"it is below the reference {transfer.reference} there ({_n(transfer.reference_auc)}, CI "
                    f"half-width {_n(transfer.reference_half_width)})")
    return (f"{subject}'s external AUC is {_n(v.external_auc)} (DeLong 95 % CI {_n(v.external_ci_low)}-"
            f"{_n(v.external_ci_high)}), its internal {_n(v.internal_auc)} ({transfer.chosen}, mean over splits): "
            f"{' and '.join(what)}. Its internal AUC does not carry over to a site like the external one. The "
            "external set chooses nothing: this check reports, it does not change which variant is chosen.")


def summary_lines(transfer: Transfer | None) -> list[str]:
    """The check in words: the chosen model's sentence first when flagged, then one line per flagged
    variant (or that none is), then the rule."""
    if transfer is None:
        return []
    chosen = chosen_sentence(transfer)
    flagged = [flag_sentence(label, v, transfer) for label, v in transfer.flagged.items()]
    return [*([chosen] if chosen else []), *(flagged or [none_sentence(transfer)]), rule_sentence(transfer)]


def none_sentence(transfer: Transfer) -> str:
    """What is said when no variant is flagged: that none is, or that none could be checked."""
    if not transfer.variants:
        return ("No variant has a defined external ensemble AUC (too few labelled external cases or controls), "
                "so none could be checked for a collapse at the external set.")
    return f"No variant collapses at the external set or falls below the reference {transfer.reference} there."


def for_variant(transfer: Transfer | None, label: str) -> VariantTransfer | None:
    return None if transfer is None else transfer.variants.get(label)


def flag_text(v: VariantTransfer | None) -> str:
    """summary.csv `transfer_flag`: 'collapse', 'below-reference', both joined by ';', or ''."""
    return ";".join(v.flags) if v is not None else ""
