"""Keeping server paths and study ids out of what the server says and writes: error messages,
prediction.json and the report name files relative to the study (`upload/IM0001.dcm`) or to the
local folder (`P001/IM0001.dcm`), never by their absolute path; the random study id (the URL's
handle and predict's internal patient id) becomes "this study"."""

from __future__ import annotations

import os
from pathlib import Path


class Scrubber:
    def __init__(self, folders: list[tuple[Path | None, str]], ids: tuple[str, ...] = ()):
        pairs: list[tuple[str, str]] = []
        for folder, name in folders:
            if folder is None:
                continue
            forms = {str(folder), os.path.abspath(folder), str(Path(folder).resolve())}
            for form in forms:
                pairs += [(form.rstrip(os.sep) + os.sep, ""), (form.rstrip(os.sep), name)]
        for study_id in ids:
            pairs += [(f"patient {study_id!r}: ", ""), (study_id, "this study")]
        self.pairs = sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)  # the longest path first

    def text(self, value: str) -> str:
        for secret, shown in self.pairs:
            value = value.replace(secret, shown)
        return value

    def deep(self, value):
        """Every string in a JSON-like value (dicts, lists, tuples) scrubbed; keys too."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.deep(v) for v in value)
        return value


def scrubber(store, data_dir: Path | None, study=None) -> Scrubber:
    """For one request: the study's folder, the server's private root and --data-dir."""
    folders = [(study.folder if study is not None else None, "the study"), (store.root, "the server's folder"),
               (data_dir, "the local folder")]
    return Scrubber(folders, (study.id,) if study is not None else ())
