"""Choosing one of a patient's DICOM series by what a person can type (docs/manifest.md, "Choosing a
series"): `cohort init --series`, the manifest's `series_<sequence>` cell, `--series SEQUENCE=...`.

A choice is tried as, in this order (the first kind that matches any series decides):
1. a SeriesInstanceUID;
2. the whole SeriesDescription, case-insensitive;
3. a pattern: with `*`, `?` or `[` a shell-style glob on the whole description, case-insensitive, in
   its order (`*t2*sag*` matches "T2_TSE_SAG", not "SAG T2"); otherwise words in any order: every
   word of the pattern is a word of the description (`t2 sag` matches "SAG T2", "SAG T2 FSE" and
   "T2_SAG").

Words (description_words): the text lowercased and cut at every character that is neither a letter
nor a digit, so spaces, `_`, `-`, `.`, `/`, `+` and brackets all separate words and a letter next to a
digit does not ("T2SAG" is one word, "t2sag").

Headers are read by vcpred.imaging (below nothing here): SeriesInfo.of takes the slices of one series
as vcpred.imaging.dicom lists them, so that both the cohort's listing and the reader use these rules.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

GLOB_CHARACTERS = "*?["
NOT_WORD = re.compile(r"[\W_]+")  # \W: neither a letter nor a digit (nor _, cut as well)


@dataclass(frozen=True)
class SeriesInfo:
    """One series as a person tells it apart: study date, series number, description, plane, slices."""

    uid: str
    description: str
    plane: str
    slices: int
    study_uid: str
    study_date: str  # YYYYMMDD as in the header, "" when missing
    number: int | None = None  # SeriesNumber

    @classmethod
    def of(cls, uid: str, items: list) -> "SeriesInfo":
        """From the slice headers of one series (vcpred.imaging.dicom.SliceHeader: .dataset, .description,
        .plane), no pixels read."""
        first = items[0].dataset
        return cls(uid, items[0].description, items[0].plane, len(items), str(first.get("StudyInstanceUID", "")),
                   str(first.get("StudyDate", "") or "").strip(), _whole_number(first.get("SeriesNumber")))

    @property
    def date_shown(self) -> str:
        d = self.study_date
        return f"{d[:4]}-{d[4:6]}-{d[6:]}" if len(d) == 8 and d.isdigit() else d

    def __str__(self) -> str:
        return f"{self.uid} {self.description!r} ({self.plane}, {self.slices} slices)"

    def summary(self) -> str:
        date = f"study {self.date_shown}" if self.study_date else "no study date"
        number = f"series {self.number}" if self.number is not None else "no series number"
        return f"{date}, {number}, {self.description!r}, {self.plane}, {self.slices} slices"


def _whole_number(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def sort_key(series: SeriesInfo) -> tuple:
    """Oldest study first, then the scanner's series order."""
    return (series.study_date, series.study_uid, series.number is None, series.number or 0, series.description,
            series.uid)


def description_words(text: str) -> list[str]:
    """The words of a description or pattern (module docstring)."""
    return [w for w in NOT_WORD.split(text.lower()) if w]


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in GLOB_CHARACTERS)


def matches(pattern: str, description: str) -> bool:
    """Step 3 of the module docstring: a glob in its order, or every word of the pattern in any order."""
    if is_glob(pattern):
        return fnmatch.fnmatchcase(description.lower(), pattern.lower())
    wanted, present = description_words(pattern), set(description_words(description))
    return bool(wanted) and all(w in present for w in wanted)


def resolve(choice: str, series: list[SeriesInfo]) -> list[SeriesInfo]:
    """Every series the choice names, by the first rule of the module docstring that names any."""
    choice = choice.strip()
    for rule in (lambda: [s for s in series if s.uid == choice],
                 lambda: [s for s in series if s.description.lower() == choice.lower()],
                 lambda: [s for s in series if matches(choice, s.description)]):
        found = rule()
        if found:
            return found
    return []
