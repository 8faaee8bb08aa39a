"""How the best variant was chosen (evaluation.json `selection`): the rule, its reference, every
variant's score and margin, the optimism of the winner's internal AUC; and the out-of-split validation
AUC per development site (`sites`) the worst-site score reads. Shown in the comparison section."""

from __future__ import annotations

import math

from vcpred.evaluate.selection import Selection
from vcpred.evaluate.sites import SiteAUC, VariantSites
from vcpred.evaluate.summary import optimism_sentence, rule_sentence
from vcpred.evaluate.transfer import chosen_sentence
from vcpred.html import Html, join, note, table, tag
from vcpred.report.inputs import ReportInputs


def _number(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "n/a"


def _signed(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "n/a"


def scores_table(selection: Selection) -> Html:
    """One row per variant: its score, its difference from the reference, the SE of that difference
    and the difference in SE; the winner in bold."""
    reference = selection.scores.get(selection.reference or "", math.nan)
    rows = []
    for label, score in selection.scores.items():
        se = selection.standard_errors.get(label, math.nan)
        difference = score - reference
        in_se = difference / se if math.isfinite(difference) and math.isfinite(se) and se > 0 else math.nan
        rows.append([tag("strong", label) if label == selection.winner else label, _number(score, 4),
                     "reference" if label == selection.reference else _signed(difference), _number(se),
                     _number(in_se, 1)])
    return table(["variant", selection.score, "difference from the reference", "SE of the difference",
                  "difference in SE"], rows, cls="numbers",
                 caption=f"Scores the rule compared ({selection.score}); SE: {selection.uncertainty or 'not used'}")


def selection_block(inputs: ReportInputs) -> Html:
    """The rule, its reference, the winner's margin and the optimism line (a note for old evaluations)."""
    selection = inputs.selection
    if selection is None:
        return join([tag("h3", "Choosing the best variant"),
                     note("This evaluation records no selection rule (written by an earlier vcpred, which took the "
                          "highest mean internal AUC); evaluate again to see the rule, its margin and the "
                          "per-site validation AUCs.")])
    optimism = optimism_sentence(selection.winner, selection.nested)
    return join([tag("h3", "Choosing the best variant"), tag("p", rule_sentence(selection)),
                 tag("p", optimism) if optimism else "", _transfer(inputs), scores_table(selection)])


def _transfer(inputs: ReportInputs) -> Html | str:
    """When the chosen variant collapses at the external set or falls below the reference there: said
    beside its choice, with a link to the transfer check (evaluate/transfer.py)."""
    transfer = inputs.transfer
    sentence = chosen_sentence(transfer) if transfer is not None else ""
    return tag("p", sentence, " ", tag("a", "Transfer check", href="#transfer"), ".", cls="notice") if sentence else ""


def _cell(m: SiteAUC | None) -> str:
    if m is None:
        return ""
    if not math.isfinite(m.auc):
        return f"n/a ({m.n} patients, {m.n_cases} events)"
    return f"{m.auc:.3f} ({m.auc_ci_low:.3f}-{m.auc_ci_high:.3f})"


def development_sites_table(sites: dict[str, VariantSites], chosen: str) -> Html:
    """One row per variant: the pooled out-of-split AUC, one column per development site, the worst site."""
    names = sorted({name for found in sites.values() for name in found.sites})
    first = next(iter(sites.values()))
    header = [f"pooled ({first.pooled.n} patients, {first.pooled.n_cases} events)"]
    header += [f"site {n} ({first.sites[n].n}, {first.sites[n].n_cases})" if n in first.sites else f"site {n}"
               for n in names]
    rows = [[tag("strong", label) if label == chosen else label, _cell(found.pooled),
             *(_cell(found.sites.get(n)) for n in names),
             f"{found.worst_site}: {_number(found.worst_site_auc)}" if found.worst_site else "n/a"]
            for label, found in sites.items()]
    return table(["variant", *header, "worst site"], rows, cls="numbers",
                 caption="Validation AUC (DeLong 95 % CI) from out-of-split predictions: each development patient's "
                         "mean probability over the split models that did not train on it. Worst site: the lowest "
                         "among sites with at least 2 cases and 2 controls (needs 2 such sites)")


def development_sites_block(inputs: ReportInputs) -> Html:
    sites = inputs.development_sites
    heading = tag("h3", "Validation AUC per development site (out-of-split)")
    if not sites:
        return join([heading, note("No per-site validation AUCs: this evaluation was written by an earlier vcpred; "
                                   "evaluate again (with --manifest for the sites).")])
    known = any(found.sites for found in sites.values())
    missing = "" if known else note("Development sites unknown: evaluate with --manifest to split this by site.")
    return join([heading, development_sites_table(sites, inputs.chosen), missing])
