"""`vcpred validate`: score an exported model on a labelled cohort (external validation) and,
optionally, update it by logistic recalibration on that cohort (docs/validate.md).

Not to be confused with `vcpred.cohort.validate`, which checks a manifest's rows.
Research use only, not a medical device.
"""
