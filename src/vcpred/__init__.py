"""vcpred: predict vertebral collapse after an osteoporotic vertebral compression fracture.

Research use only, not a medical device.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "Research use only, not a medical device."
