"""Synthetic OVCF cohort with a known true risk of vertebral collapse (`vcpred synth`).

See docs/synthetic.md for the anatomy, lesion and risk model, coordinates and outputs.
"""

from vcpred.synth.generate import FORMATS, SUPPORTED_SEQUENCES, SynthResult, generate_cohort

__all__ = ["FORMATS", "SUPPORTED_SEQUENCES", "SynthResult", "generate_cohort"]
