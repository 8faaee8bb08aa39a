"""Choosing one of a patient's DICOM series by what a person can type (docs/manifest.md, "Choosing a
series"): `cohort init --series`, the manifest's `series_<sequence>` cell, `--series SEQUENCE=...`.

A choice is tried as, in this order (the first kind that matches any series decides):
1. a SeriesInstanceUID;
2. a reference `DATE#N` or `#N`: the series whose SeriesNumber is N (of the study dated DATE,
   written YYYYMMDD or YYYY-MM-DD): the first word of each line a candidate list prints;
3. the whole SeriesDescription, case-insensitive;
4. a pattern: with `*`, `?` or `[` a shell-style glob on the whole description, case-insensitive, in
   its order (`*t2*sag*` matches "T2_TSE_SAG", not "SAG T2"); otherwise words in any order: every
   word of the pattern is a word of the description (`t2 sag` matches "SAG T2", "SAG T2 FSE" and
   "T2_SAG").

Words (description_words): the text lowercased and cut at every character that is neither a letter
nor a digit, so spaces, `_`, `-`, `.`, `/`, `+` and brackets all separate words and a letter next to a
digit does not ("T2SAG" is one word, "t2sag").

Lists show each series as `REFERENCE  study DATE, series N, 'DESCRIPTION', PLANE, K slices`, the
reference being the shortest text that chooses it (reference()), so a baseline and a follow-up whose
series are numbered alike are told apart by their dates.

No file is read here (cohort sits below imaging in the layers): SeriesInfo.of takes the slice headers
vcpred.imaging.dicom lists, and `cohort init` and the DICOM reader both choose by these rules.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

GLOB_CHARACTERS = "*?["
# DATE#N or #N: the study date (8 digits, dashes allowed) and the SeriesNumber.
REFERENCE = re.compile(r"^(?:(\d{4}-?\d{2}-?\d{2}))?#(\d+)$")
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
    """Step 4 of the module docstring: a glob in its order, or every word of the pattern in any order."""
    if is_glob(pattern):
        return fnmatch.fnmatchcase(description.lower(), pattern.lower())
    wanted, present = description_words(pattern), set(description_words(description))
    return bool(wanted) and all(w in present for w in wanted)


def by_reference(choice: str, series: list[SeriesInfo]) -> list[SeriesInfo] | None:
    """The series a `DATE#N` / `#N` reference names; None when the choice is not a reference."""
    found = REFERENCE.match(choice)
    if found is None:
        return None
    date, number = (found.group(1) or "").replace("-", ""), int(found.group(2))
    return [s for s in series if s.number == number and (not date or s.study_date == date)]


def resolve(choice: str, series: list[SeriesInfo]) -> list[SeriesInfo]:
    """Every series the choice names, by the first rule of the module docstring that names any."""
    choice = choice.strip()
    for rule in (lambda: [s for s in series if s.uid == choice],
                 lambda: by_reference(choice, series) or [],
                 lambda: [s for s in series if s.description.lower() == choice.lower()],
                 lambda: [s for s in series if matches(choice, s.description)]):
        found = rule()
        if found:
            return found
    return []


def reference(one: SeriesInfo, among: list[SeriesInfo]) -> str:
    """The shortest text that chooses `one` among the series of its folder or zip: `DATE#N`, `#N`
    without a study date, the UID when no SeriesNumber (or the reference names two series)."""
    if one.number is not None:
        short = f"{one.study_date}#{one.number}" if one.study_date else f"#{one.number}"
        if resolve(short, among) == [one]:
            return short
    return one.uid


def listing(shown: list[SeriesInfo], among: list[SeriesInfo]) -> list[str]:
    """One line per series, to print: the reference that chooses it, then its summary (aligned)."""
    refs = [reference(s, among) for s in shown]
    width = max(map(len, refs), default=0)
    return [f"{r.ljust(width)}  {s.summary()}" for r, s in zip(refs, shown)]


def inline(shown: list[SeriesInfo], among: list[SeriesInfo]) -> str:
    """The same, on one line (an error message)."""
    return "; ".join(f"{reference(s, among)} ({s.summary()})" for s in shown)


def unmatched(choice: str, matched: list[SeriesInfo], among: list[SeriesInfo], where: str) -> str:
    """Why `choice` chose no single series, listing the ones it matched or else every series of `where`."""
    if matched:
        return f"{len(matched)} series match {choice!r}: {inline(matched, among)}"
    return f"no series matches {choice!r}; the series {where}: {inline(among, among)}"
