"""A TRIPOD+AI (Collins et al., BMJ 2024) checklist filled from the run where the run knows the
answer, with "[authors: ...]" placeholders where only the authors can. Item wording is a short
paraphrase of each item, not the statement's text; its numbering and grouping follow the statement."""

from __future__ import annotations

from dataclasses import dataclass

from vcpred.cohort.summary import event_counts
from vcpred.evaluate.per_split import external_reason
from vcpred.evaluate.transfer import chosen_sentence
from vcpred.bundle.method import DATA_RULE, clinical_step, finite, loss_text, validation_uses
from vcpred.html import Html, section, tag, text
from vcpred.report.cohort import exclusion_text
from vcpred.report.inputs import ReportInputs


@dataclass(frozen=True)
class Item:
    number: str
    group: str
    topic: str
    asks: str


ITEMS = [
    Item("1", "Title and abstract", "Title", "say that a prediction model is developed or evaluated, for whom, and what it predicts"),
    Item("2", "Title and abstract", "Abstract", "a structured summary following TRIPOD+AI for Abstracts"),
    Item("3a", "Introduction", "Background", "clinical context, diagnostic or prognostic, why this model, existing models"),
    Item("3b", "Introduction", "Background", "target population, intended purpose in the care pathway, intended users"),
    Item("3c", "Introduction", "Background", "known health inequalities between sociodemographic groups"),
    Item("4", "Introduction", "Objectives", "whether the study develops, evaluates or does both"),
    Item("5a", "Methods", "Data", "data sources for development and evaluation, why these, how representative"),
    Item("5b", "Methods", "Data", "dates of data collection: accrual start and end, end of follow-up"),
    Item("6a", "Methods", "Participants", "setting and the number and location of centres"),
    Item("6b", "Methods", "Participants", "eligibility criteria"),
    Item("6c", "Methods", "Participants", "treatments received and how they were handled"),
    Item("7", "Methods", "Data preparation", "pre-processing and quality checks, and whether they were similar across groups"),
    Item("8a", "Methods", "Outcome", "outcome definition, time horizon, how and when assessed, why this outcome"),
    Item("8b", "Methods", "Outcome", "qualifications of outcome assessors when judgement is needed"),
    Item("8c", "Methods", "Outcome", "blinding of outcome assessment"),
    Item("9a", "Methods", "Predictors", "how the candidate predictors were chosen"),
    Item("9b", "Methods", "Predictors", "definition of every predictor, how and when measured, blinding"),
    Item("9c", "Methods", "Predictors", "qualifications of predictor assessors when judgement is needed"),
    Item("10", "Methods", "Sample size", "how the sample size was arrived at and why it suffices"),
    Item("11", "Methods", "Missing data", "how missing data were handled and why data were left out"),
    Item("12a", "Methods", "Analytical methods", "how the data were used and partitioned"),
    Item("12b", "Methods", "Analytical methods", "how predictors were handled (form, scaling, transformation)"),
    Item("12c", "Methods", "Analytical methods", "model type, building steps, hyperparameter tuning, internal validation"),
    Item("12d", "Methods", "Analytical methods", "heterogeneity across clusters (e.g. centres)"),
    Item("12e", "Methods", "Analytical methods", "performance measures and plots, and how models were compared"),
    Item("12f", "Methods", "Analytical methods", "any model updating (e.g. recalibration)"),
    Item("12g", "Methods", "Analytical methods", "how predictions were computed for the evaluation"),
    Item("13", "Methods", "Class imbalance", "class-imbalance methods, why, and any recalibration afterwards"),
    Item("14", "Methods", "Fairness", "approaches to model fairness and their rationale"),
    Item("15", "Methods", "Model output", "the output (probability, class) and how thresholds were chosen"),
    Item("16", "Methods", "Training versus evaluation", "differences between development and evaluation data"),
    Item("17", "Methods", "Ethical approval", "ethics committee and consent or waiver"),
    Item("18a", "Open science", "Funding", "funding and the funders' role"),
    Item("18b", "Open science", "Conflicts of interest", "conflicts of interest of all authors"),
    Item("18c", "Open science", "Protocol", "where the protocol is, or that there was none"),
    Item("18d", "Open science", "Registration", "registration, or that there was none"),
    Item("18e", "Open science", "Data sharing", "availability of the data"),
    Item("18f", "Open science", "Code sharing", "availability of the analysis code"),
    Item("19", "Patient and public involvement", "Patient and public involvement", "any involvement, or none"),
    Item("20a", "Results", "Participants", "participant flow, with and without the outcome; a diagram helps"),
    Item("20b", "Results", "Participants", "characteristics per data source: predictors, events, missing data"),
    Item("20c", "Results", "Participants", "evaluation data compared with development data on key predictors"),
    Item("21", "Results", "Model development", "participants and events in each analysis"),
    Item("22", "Results", "Model specification", "the full model (formula, code, object) and access to it"),
    Item("23a", "Results", "Model performance", "performance with confidence intervals, also in key subgroups"),
    Item("23b", "Results", "Model performance", "heterogeneity of performance across clusters"),
    Item("24", "Results", "Model updating", "results of any model updating"),
    Item("25", "Discussion", "Interpretation", "overall interpretation, including fairness"),
    Item("26", "Discussion", "Limitations", "limitations and their effect on bias, uncertainty, generalisability"),
    Item("27a", "Discussion", "Usability", "how to handle poor-quality or missing inputs in use"),
    Item("27b", "Discussion", "Usability", "user interaction with the model and the expertise needed"),
    Item("27c", "Discussion", "Usability", "next steps towards applicability and generalisability"),
]


def authors(what: str) -> str:
    return f"[authors: {what}]"


def _sites(cohort, set_name: str) -> list[str]:
    return sorted({r.site for r in cohort.subset(set_name) if r.site})


def _losses(inputs: ReportInputs) -> str:
    """Item 13 from the runs' metrics.json 'loss', image and clinical-only configurations apart."""
    parts = []
    for image, kind in ((True, "image models"), (False, "clinical-only logistic regression")):
        losses = [loss for name, run in inputs.configs.items() if run.image == image
                  for loss in inputs.losses.get(name, [None])]
        if losses:
            parts.append(f"{kind[0].upper()}{kind[1:]}: {loss_text(losses, image=image)}")
    recalibrated = [meta.model_id for _, meta in inputs.models if meta.recalibration]
    after = f" The exported model {', '.join(recalibrated)} was recalibrated afterwards (item 12f)." if recalibrated else ""
    return "; ".join(parts) + " (from each run's metrics.json)." + after


def _external_sites(inputs: ReportInputs) -> list[str]:
    """Sites of the external set with subgroup metrics of the chosen ensemble (evaluation.json)."""
    groups = (inputs.evaluation.get("subgroups") or {}).get(inputs.chosen) or {}
    return sorted(groups.get("site") or {})


def _heterogeneity(inputs: ReportInputs, f: dict) -> str:
    """12d / 23b: per-site metrics of the chosen variant, on the development sites (out-of-split
    validation AUCs, evaluation.json `sites`) and on the external set (subgroups)."""
    return f"{_development_heterogeneity(inputs)} {_external_heterogeneity(inputs, f)}"


def _development_heterogeneity(inputs: ReportInputs) -> str:
    found = inputs.development_sites.get(inputs.chosen)
    if found is None or len(found.sites) < 2:
        return "Development sites: not examined (evaluated without --manifest, or fewer than 2 sites)."
    aucs = ", ".join(f"{site} {one.auc:.3f}" for site, one in sorted(found.sites.items()))
    return (f"Development sites: out-of-split validation AUC of the chosen variant per site ({aucs}; worst "
            f"{found.worst_site}), in the per-site table.")


def _external_heterogeneity(inputs: ReportInputs, f: dict) -> str:
    sites = _external_sites(inputs)
    if len(sites) > 1:
        return f"External set: per-site metrics of the chosen ensemble ({', '.join(sites)}) in the subgroup table."
    if len(sites) == 1:
        return f"External set: one site ({sites[0]}), so no heterogeneity to examine there."
    reason = ("evaluated without --manifest, so no subgroup metrics" if not f["subgroups"]
              else "no site recorded for the external patients")
    return f"External set: not examined ({reason})."


def _updating(inputs: ReportInputs) -> str:
    """12f / 24: updating only when an exported model records a recalibration (none does today)."""
    recalibrated = [meta.model_id for _, meta in inputs.models if meta.recalibration]
    if recalibrated:
        return f"Recalibration recorded by {', '.join(recalibrated)}; see their model cards."
    return ("No updating and no recalibration: the runs and the evaluation do none, and no exported model given "
            "to this report records one.")


def _validation_choices(inputs: ReportInputs, f: dict) -> str:
    """12a: what validation data chose, and that the external set chose nothing."""
    uses, others = validation_uses(early_stopping=f["images"], best=inputs.evaluation.get("best"),
                                   rule=f["comp"].best_rule or None, step=clinical_step(inputs.summary))
    return "Validation patients chose " + "; ".join(uses) + ". " + " ".join(others)


def _facts(inputs: ReportInputs) -> dict:
    """The numbers the answers quote, computed once."""
    cohort, ev = inputs.cohort, inputs.evaluation
    dev = event_counts([r.label for r in cohort.subset("development")])
    ext = event_counts([r.label for r in cohort.subset("external")])
    splits = inputs.splits or {}
    ensemble = ev.get("ensembles", {}).get(inputs.chosen, {})
    first = next(iter(inputs.configs.values()))
    chosen_configuration = inputs.summary.loc[inputs.summary["variant"] == inputs.chosen, "configuration"].iloc[0]
    groups = (ev.get("subgroups") or {}).get(inputs.chosen) or {}
    return {"chosen_clinical": inputs.configs[chosen_configuration].clinical_columns,
            "dev": dev, "ext": ext, "excluded": exclusion_text(cohort),
            "sites": sorted({r.site for r in cohort.records if r.site}),
            "dev_sites": _sites(cohort, "development"), "ext_sites": _sites(cohort, "external"),
            "clinical": list(cohort.clinical_columns), "n_splits": splits.get("n_splits", "n/a"),
            "val": splits.get("val_fraction", "n/a"), "seed": splits.get("seed", "n/a"), "ens": ensemble,
            "undefined_threshold": inputs.undefined_threshold(),
            "site_splits": splits.get("strategy") == "leave-one-site-out",
            "configs": list(inputs.configs), "commit": first.environment.get("git_commit"),
            "comp": inputs.comparisons, "subgroups": bool(groups), "subgroup_columns": list(groups),
            "images": any(run.image for run in inputs.configs.values()),
            "synthetic": inputs.synthetic, "evidence": inputs.training_data["evidence"]}


def _number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if finite(value) else "n/a"


def _sites_text(f: dict) -> str:
    return (f"development sites {', '.join(f['dev_sites']) or 'not recorded'}; external sites "
            f"{', '.join(f['ext_sites']) or 'not recorded'}")


def _introduction(f: dict) -> dict[str, tuple[str, str]]:
    if f["synthetic"]:
        population = (f"No target population is represented: the data are a synthetic cohort from `vcpred synth` "
                      f"({f['evidence']}), not patients. Intended (for a real cohort): adults with an acute "
                      "osteoporotic vertebral compression fracture at their first MRI; users: researchers. ")
    else:
        population = ("Intended: adults with an acute osteoporotic vertebral compression fracture at their first MRI; "
                      "purpose: flag risk of vertebral collapse early; users: spine clinicians in research (the "
                      "manifest does not record eligibility). ")
    return {
        "1": (authors("title naming development and external evaluation, the OVCF population and vertebral collapse"), ""),
        "2": (authors("structured abstract"), ""),
        "3a": (authors("clinical context (prognostic) and existing models"), ""),
        "3b": (population + authors("care pathway"), "#card"),
        "3c": (authors("known inequalities"), ""),
        "4": (f"Development with internal validation over {f['n_splits']} splits and evaluation on a held-out "
              f"external set; {len(f['configs'])} configurations compared.", "#comparison"),
    }


def _data(f: dict) -> dict[str, tuple[str, str]]:
    dev, ext = f["dev"], f["ext"]
    origin = (f"Synthetic data generated by `vcpred synth` ({f['evidence']}). " if f["synthetic"] else "")
    roi = ("ROI boxes and slices come from the generator (the known lesion position), not from a reader."
           if f["synthetic"] else "ROI box and slice given in the manifest, placed by a reader. "
           + authors("who placed them, qualifications"))
    label = ("Binary label drawn by the generator from its known true risk (truth.csv); no assessor."
             if f["synthetic"] else "Binary label: vertebral collapse (1) or not (0), as given in the manifest. "
             + authors("definition (height-loss threshold), time horizon, assessment"))
    return {
        "5a": (f"{origin}One manifest: development set {dev.patients} patients, external set {ext.patients} patients; "
               f"{_sites_text(f)}. " + ("" if f["synthetic"] else authors("data sources and representativeness")),
               "#cohort"),
        "5b": (authors("accrual dates and end of follow-up"), ""),
        "6a": (f"{len(f['sites'])} site(s) recorded: {_sites_text(f)}. "
               + ("" if f["synthetic"] else authors("setting and location")), "#cohort"),
        "6b": (authors("eligibility criteria"), ""),
        "6c": (authors("treatments received (brace, vertebroplasty, ...) and their handling"), ""),
        "7": ("Recorded: N4, ROI crop with margin, frames, normalisation, resizing; one parameter set for every "
              "patient and set (the prepared store's index).", "#preprocessing"),
        "8a": (label, "#cohort"),
        "8b": (("Not applicable: synthetic labels." if f["synthetic"] else authors("who assessed the outcome")), ""),
        "8c": (("Not applicable: synthetic labels." if f["synthetic"] else authors("blinding of outcome assessment")),
               ""),
        "9a": (f"Sagittal MRI frames around the fractured vertebra; the chosen model's clinical values: "
               f"{', '.join(f['chosen_clinical']) or 'none'} (manifest columns: {', '.join(f['clinical']) or 'none'}). "
               + authors("why these"), "#preprocessing"),
        "9b": (authors("definitions and timing of each predictor and of the MRI"), ""),
        "9c": (roi, ""),
        "10": (f"All available patients ({dev.patients} development with {dev.events} events, {ext.patients} external "
               f"with {ext.events} events; {f['excluded']}). " + authors("justification of the sample size"),
               "#cohort"),
        "11": ("Missing clinical values: training median (numeric) plus a missing indicator (every column); no "
               "patient left out for missing values; counts per column shown.", "#cohort"),
    }


def _analysis(inputs: ReportInputs, f: dict, model: str) -> dict[str, tuple[str, str]]:
    comp = f["comp"]
    best = {DATA_RULE: "the best variant by the highest mean internal (validation) AUC",
            "chosen with --best": "the best variant chosen by the user (--best)"}.get(
        comp.best_rule, f"the best variant by {comp.best_rule}" if comp.best_rule else "the best variant by a rule "
                                                                                      "not recorded")
    columns = ", ".join(c.replace("_", " ") for c in f["subgroup_columns"])
    images = (" Image models: fixed settings per configuration (epochs, batch size, learning rate, patience, "
              "augmentation), early stopping on validation AUC." if f["images"] else "")
    return {
        "12a": ((f"Leave-one-site-out (internal-external) cross-validation: {f['n_splits']} splits, one per "
                 "development site, each validating on that site's patients and training on the other sites. "
                 if f["site_splits"] else
                 f"{f['n_splits']} random patient-level splits of the development set (validation fraction "
                 f"{f['val']}, seed {f['seed']}), stratified by outcome. ") + _validation_choices(inputs, f),
                "#comparison"),
        "12b": ("Images: preprocessing record; numeric clinical values median-imputed and standardised on the "
                "training split; categorical values one-hot encoded; a missing indicator per column.",
                "#preprocessing"),
        "12c": (f"Model types per configuration (backbone, weights, fine-tuning method; logistic regression for "
                f"clinical only) in the configurations table.{images} No automatic hyperparameter tuning: only the "
                f"{len(f['configs'])} configuration(s) given were compared, {best}. Internal validation over "
                f"{f['n_splits']} splits.", "#preprocessing"),
        "12d": (_heterogeneity(inputs, f), "#performance"),
        "12e": (f"AUC with DeLong CI, sensitivity and specificity at Youden's threshold, calibration slope and "
                f"intercept, Brier score, decision curves; comparisons with the best by paired DeLong on the split "
                f"ensembles (external) and the corrected resampled t-test (Nadeau-Bengio) over splits (internal), "
                f"Holm over {comp.n_comparisons} comparisons.", "#comparison"),
        "12f": (_updating(inputs), ""),
        "12g": ("Per split model on the prepared frames (predictions tables); the ensemble is the mean of the split "
                f"models' probabilities; {model}.", "#gallery"),
        "13": (_losses(inputs), "#preprocessing"),
        "14": ((f"Subgroup metrics ({columns}) of the chosen ensemble reported; no fairness constraint."
                if f["subgroups"] else "No fairness analysis (no subgroup metrics in this evaluation)."),
               "#performance"),
        "15": ((f"A probability of collapse (ensemble mean) and a category at the development threshold "
                f"{_number(f['ens'].get('threshold'))} (median of the split models' Youden thresholds on "
                "validation patients).") if not f["undefined_threshold"] else
               f"A probability of collapse (ensemble mean); no category: the development threshold is "
               f"{f['undefined_threshold']}.", "#card"),
        "16": ("Same preprocessing and predictors; sites and prevalence per set in the cohort table. "
               + ("" if f["synthetic"] else authors("differences in setting or eligibility")), "#cohort"),
    }


def _open_science(f: dict) -> dict[str, tuple[str, str]]:
    return {
        "17": (("Not applicable: synthetic data, no patients." if f["synthetic"]
                else authors("ethics committee and consent")), ""),
        "18a": (authors("funding"), ""),
        "18b": (authors("conflicts of interest"), ""),
        "18c": (authors("protocol"), ""),
        "18d": (authors("registration"), ""),
        "18e": (authors("data availability"), ""),
        "18f": (f"vcpred (git commit {f['commit'] or 'not recorded'}); configurations in each run's config.yaml. "
                + authors("repository link"), "#preprocessing"),
        "19": (authors("patient and public involvement"), ""),
    }


def _results(inputs: ReportInputs, f: dict, model: str) -> dict[str, tuple[str, str]]:
    dev, ext, ens = f["dev"], f["ext"], f["ens"]
    auc = (f"{_number(ens.get('auc'))} (DeLong 95 % CI {_number(ens.get('auc_ci_low'))}-"
           f"{_number(ens.get('auc_ci_high'))})" if finite(ens.get("auc")) else f"n/a ({external_reason(ens)})")
    subgroups = (" Subgroups: AUC with DeLong CIs, sensitivity and specificity without." if f["subgroups"]
                 else " No subgroup metrics.")
    return {
        "20a": (f"Participant flow diagram; {f['excluded']}, listed by reason below it.", "#cohort"),
        "20b": ("Patients, events, prevalence per set and site; missing values per column; characteristics.", "#cohort"),
        "20c": ("Characteristics table: development and external side by side.", "#cohort"),
        "21": (f"Development {dev.labelled} labelled ({dev.events} events); external {ext.labelled} labelled "
               f"({ext.events} events); per-split train/validation counts in the flow.", "#cohort"),
        "22": (model + "; bundle with weights, preprocessing and thresholds.", "#card"),
        "23a": (f"Chosen model {inputs.chosen}: external ensemble AUC {auc}. CIs only for AUC: each ensemble's "
                "external AUC (DeLong 95 % CI); the split models' AUC, sensitivity and specificity are mean (SD) "
                "over splits, not CIs; the ensembles' sensitivity, specificity, calibration slope and intercept "
                "and Brier score have no CIs." + subgroups + _transfer(inputs), "#performance"),
        "23b": (_heterogeneity(inputs, f), "#performance"),
        "24": (_updating(inputs), ""),
    }


def _transfer(inputs: ReportInputs) -> str:
    """23a: said when the chosen model collapses at the external set or falls below the reference there."""
    sentence = chosen_sentence(inputs.transfer) if inputs.transfer is not None else ""
    return f" Transfer check: {sentence}" if sentence else ""


def _discussion(f: dict) -> dict[str, tuple[str, str]]:
    synthetic = "Trained and evaluated on synthetic data: no conclusion about patients. " if f["synthetic"] else ""
    return {
        "25": (synthetic + authors("interpretation, including fairness"), ""),
        "26": (synthetic + "Known limits listed in the model card; most confident errors listed. "
               + authors("limitations"), "#failures"),
        "27a": ("`vcpred predict` refuses missing clinical values unless --allow-missing, then imputes the training "
                "medians with a warning; images that cannot be read are refused.", "#card"),
        "27b": ("The user gives the MRI, the ROI slice and box, and clinical values; a clinician reviews the "
                "output.", "#card"),
        "27c": (authors("next steps"), ""),
    }


def answers(inputs: ReportInputs) -> dict[str, tuple[str, str]]:
    """item number -> (answer, where in this report)."""
    f = _facts(inputs)
    model = (f"exported model {inputs.bundle.model_id} in {inputs.model_dir}" if inputs.bundle
             else "no exported model given to this report")
    return {**_introduction(f), **_data(f), **_analysis(inputs, f, model), **_open_science(f),
            **_results(inputs, f, model), **_discussion(f)}


def _answer_cell(answer: str) -> Html:
    """The run's answer, with any [authors: ...] placeholder marked so it stands out (also in print)."""
    known, marker, rest = answer.partition("[authors:")
    return tag("td", known, tag("span", marker + rest, cls="placeholder") if marker else "")


def _row(item: Item, answer: str, where: str, titles: dict[str, str]) -> Html:
    link = tag("a", titles.get(where.lstrip("#"), where), href=where) if where else ""
    return tag("tr", tag("td", item.number), tag("td", item.topic), tag("td", item.asks), _answer_cell(answer),
               tag("td", link))


def tripod_section(inputs: ReportInputs, titles: dict[str, str] | None = None) -> Html:
    """titles: section anchor -> title, for the 'in this report' links."""
    filled = answers(inputs)
    rows, group = [], None
    for item in ITEMS:
        if item.group != group:
            group = item.group
            rows.append(tag("tr", tag("th", group, colspan=5), cls="group"))
        rows.append(_row(item, *filled[item.number], titles or {}))
    only_authors = sum(a.startswith("[authors:") for a, _ in filled.values())
    partly = sum("[authors:" in a for a, _ in filled.values()) - only_authors
    head = tag("thead", tag("tr", *(tag("th", h) for h in ("item", "topic", "the item asks for", "this run", "in this report"))))
    return section("tripod", "TRIPOD+AI checklist",
                   tag("p", text(f"{len(ITEMS)} items of TRIPOD+AI (Collins et al., BMJ 2024;385:e078378), paraphrased. "
                                 f"Filled from the run where it knows the answer: {len(ITEMS) - only_authors - partly} "
                                 f"items completely, {partly} partly; {only_authors} are left to the authors "
                                 "([authors: ...] placeholders, highlighted).")),
                   tag("table", head, tag("tbody", *rows), cls="checklist"))
