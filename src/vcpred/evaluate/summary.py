"""The selection and the per-site validation AUCs in words: evaluate's console lines and tables.md
(the report builds its own HTML from evaluation.json with the same sentences)."""

from __future__ import annotations

import math

from vcpred.evaluate.selection import FORCED, MARGIN, NestedEstimate, Selection
from vcpred.evaluate.sites import VariantSites
from vcpred.evaluate.transfer import summary_lines


def _auc(value: float) -> str:
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "n/a"


def rule_sentence(selection: Selection) -> str:
    """How the best variant was chosen, and why this one."""
    if selection.rule == FORCED:
        return f"Best variant {selection.winner}: {selection.reason}."
    if selection.rule == MARGIN:
        return (f"Selection rule: keep the reference {selection.reference} unless a challenger's {selection.score} "
                f"is higher by more than one standard error ({selection.uncertainty}); {selection.score} because "
                f"{selection.score_reason}. Result: {selection.reason}.")
    return f"Selection rule: the highest mean internal AUC (--select mean-auc). Result: {selection.reason}."


def optimism_sentence(winner: str, nested: NestedEstimate | None) -> str:
    """The winner's internal AUC beside the nested estimate ('' when --best forced the choice)."""
    if nested is None:
        return ""
    if not math.isfinite(nested.nested_auc):
        return f"{winner}'s mean internal AUC {_auc(nested.selected_auc)}: the nested estimate could not be computed."
    verdict = (f"the selected figure is optimistic by {nested.optimism:.3f}" if nested.optimism > 0 else
               f"no optimism from the selection shows here (difference {nested.optimism:+.3f})")
    return (f"{winner}'s mean internal AUC {_auc(nested.selected_auc)} was measured on the validation patients that "
            f"chose it; choosing without each split's validation patients and scoring the choice on them gives "
            f"{_auc(nested.nested_auc)} (nested estimate): {verdict}.")


def site_line(found: VariantSites) -> str:
    """'pooled 0.742 (n 200, 80 cases); A 0.710, B 0.800, C 0.740 (worst)'."""
    pooled = f"pooled {_auc(found.pooled.auc)} (n {found.pooled.n}, {found.pooled.n_cases} cases)"
    sites = [f"{name} {_auc(m.auc)}" + (" (worst)" if name == found.worst_site else "")
             for name, m in found.sites.items()]
    return "; ".join([pooled, ", ".join(sites)]) if sites else pooled


def console_summary(ev) -> list[str]:
    """evaluate's lines after 'best: ...': the rule's reason, the optimism, each variant's sites, the transfer
    check (the chosen model's sentence first when it is flagged)."""
    lines = [rule_sentence(ev.selection)]
    optimism = optimism_sentence(ev.selection.winner, ev.selection.nested)
    if optimism:
        lines.append(optimism)
    lines.append("out-of-split validation AUC (each development patient's mean over the splits that validated it):")
    width = max((len(label) for label in ev.sites), default=0)
    lines += [f"  {label:<{width}}  {site_line(found)}" for label, found in ev.sites.items()]
    return lines + summary_lines(ev.transfer)


def markdown_sections(ev) -> list[str]:
    """tables.md: the selection and a table of the out-of-split validation AUC per development site."""
    selection = ev.selection
    lines = ["", "## Choosing the best variant", "", rule_sentence(selection)]
    optimism = optimism_sentence(selection.winner, selection.nested)
    lines += ["", optimism] if optimism else []
    lines += ["", "| Variant | score | difference from the reference | SE | in SE |", "|---|---|---|---|---|"]
    for label, score in selection.scores.items():
        reference = selection.scores.get(selection.reference or "", math.nan)
        se = selection.standard_errors.get(label, math.nan)
        difference = score - reference
        cells = [f"**{label}**" if label == selection.winner else label, _auc(score),
                 "reference" if label == selection.reference else _signed(difference), _auc(se),
                 f"{difference / se:.1f}" if math.isfinite(difference) and se and math.isfinite(se) else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    site_names = sorted({name for found in ev.sites.values() for name in found.sites})
    lines += ["", "## Validation AUC per development site (out-of-split)", "",
              "Each development patient's mean probability over the splits that validated it; AUC with DeLong "
              "95 % CI. Worst: the lowest among sites with at least 2 cases and 2 controls.", "",
              "| Variant | pooled | " + " | ".join(site_names) + (" | " if site_names else "") + "worst |",
              "|---|---|" + "---|" * len(site_names) + "---|"]
    for label, found in ev.sites.items():
        cells = [label, _ci(found.pooled)] + [_ci(found.sites[n]) if n in found.sites else "" for n in site_names]
        cells.append(f"{found.worst_site} {_auc(found.worst_site_auc)}" if found.worst_site else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _signed(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "n/a"


def _ci(m) -> str:
    if not math.isfinite(m.auc):
        return f"n/a (n {m.n}, {m.n_cases} cases)"
    return f"{m.auc:.3f} ({m.auc_ci_low:.3f}-{m.auc_ci_high:.3f}), n {m.n}"
