"""A model variant: one configuration evaluated without or with augmented prediction (AP)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from vcpred.evaluate.errors import EvaluationError

AP_SUFFIX = " + AP"


@dataclass(frozen=True, order=True)
class Variant:
    configuration: str
    ap: bool
    clinical: bool = False

    @property
    def label(self) -> str:
        """How tables name it, like the study: 'NAME' or 'NAME + AP'."""
        return self.configuration + (AP_SUFFIX if self.ap else "")


def parse_variant(text: str, variants: list[Variant], option: str = "--best") -> Variant:
    """`--best` (or `--reference`) value: 'NAME' (no AP) or 'NAME+AP' / 'NAME + AP' (case of 'AP' ignored)."""
    match = re.fullmatch(r"(.+?)\s*\+\s*ap", text.strip(), flags=re.IGNORECASE)
    name, ap = (match.group(1), True) if match else (text.strip(), False)
    for variant in variants:
        if variant.configuration == name and variant.ap == ap:
            return variant
    known = ", ".join(sorted({v.label for v in variants}))
    raise EvaluationError(f"{option} {text!r} matches no evaluated variant; choose one of: {known}")
