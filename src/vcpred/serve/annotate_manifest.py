"""Rewriting one patient's ROI cells (and its series_<sequence> or exclude cell) in a manifest and nothing else.

The manifest is edited as bytes: each record's cells are located (quotes, doubled quotes, line
breaks inside quotes, spaces after the comma as `read_manifest_table` reads them) and only the five
roi_* cells of one row, or its series or exclude cell, are replaced (a value the CSV must quote, such
as a reason with a comma, is quoted), so every other cell, the column and row order, the quoting,
the line endings and a byte-order mark stay byte for byte. A save refuses a file changed by another
program since it was read, keeps the original once as MANIFEST.bak (never overwritten) and writes
atomically (hashing.atomic_write) with the file's permissions.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vcpred.cohort.manifest import ROI_COLUMNS
from vcpred.errors import ManifestError
from vcpred.hashing import atomic_write
from vcpred.serve.errors import ServeError

BACKUP_SUFFIX = ".bak"


class ManifestChanged(ServeError):
    """The file on disk is not what this session read or last wrote."""

    status = 409


@dataclass(frozen=True)
class Record:
    """One CSV record: the line it starts on (header = 1) and each cell's [start, end) in the bytes."""

    line: int
    cells: list[tuple[int, int]]
    end: int


def _line_break(data: bytes, i: int) -> int:
    """Length of the line break at i (\\r\\n, \\n or a lone \\r), 0 when there is none."""
    if data[i:i + 2] == b"\r\n":
        return 2
    return 1 if data[i:i + 1] in (b"\n", b"\r") else 0


def records(data: bytes) -> list[Record]:
    """Every record of a comma-separated file, blank ones included (their one cell is empty)."""
    found, i, line, n = [], 0, 1, len(data)
    while i < n:
        start_line, cells, cell_start, quoted = line, [], i, False
        while i < n:
            if quoted:
                if data[i:i + 2] == b'""':
                    i += 2
                elif data[i:i + 1] == b'"':
                    quoted, i = False, i + 1
                else:
                    step = _line_break(data, i)  # a line break inside quotes is still a line
                    line += step > 0
                    i += step or 1
                continue
            if data[i:i + 1] == b",":
                cells.append((cell_start, i))
                i = cell_start = i + 1
            elif data[i:i + 1] == b'"' and not data[cell_start:i].strip(b" "):  # skipinitialspace
                quoted, i = True, i + 1
            elif _line_break(data, i):
                break
            else:
                i += 1
        cells.append((cell_start, i))
        found.append(Record(start_line, cells, i))
        if i < n:
            i, line = i + _line_break(data, i), line + 1
    return found


def _read_cells(text: str) -> list[str]:
    """Cells of CSV text as the csv module reads them, stripped (as read_manifest_table does)."""
    return [c.strip() for c in next(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True), [""])]


def parsed(data: bytes, record: Record) -> list[str]:
    """The record's cells as the manifest reader reads them."""
    return _read_cells(data[record.cells[0][0]:record.end].decode("utf-8-sig"))


def located(data: bytes, record: Record) -> list[str | None]:
    """Each located cell read on its own (None where a span does not hold exactly one cell)."""
    alone = [_read_cells(data[start:end].decode("utf-8-sig")) for start, end in record.cells]
    return [cells[0] if len(cells) == 1 else None for cells in alone]


class ManifestFile:
    """The manifest's bytes as last read or written, and where each CSV row's ROI cells are."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.target = self.path.resolve()  # a manifest reached through a link is written where it lives
        self.backup = self.target.with_name(self.target.name + BACKUP_SUFFIX)
        self.data = self.path.read_bytes()
        self.records = [r for r in records(self.data) if any(parsed(self.data, r))]
        if not self.records:
            raise ManifestError(f"manifest {self.path} is empty (no header row)")
        self.header = parsed(self.data, self.records[0])
        self.columns = [self.header.index(name) for name in ROI_COLUMNS]

    def check_rows(self, frame) -> None:
        """Refuse a file whose cells this module does not locate exactly as the manifest reader
        reads them (frame: read_manifest_table's cells, indexed by CSV row)."""
        header = parsed(self.data, self.records[0])
        positions = [header.index(name) for name in frame.columns]
        mine = {}
        for record in self.records[1:]:
            cells = parsed(self.data, record)
            if located(self.data, record) != cells or len(cells) != len(header):
                mine = None
                break
            mine[record.line] = [cells[p] for p in positions]
        theirs = {int(line): list(cells) for line, cells in zip(frame.index, frame.itertuples(index=False))}
        if mine != theirs:
            raise ManifestError(f"manifest {self.path}: vcpred annotate cannot locate every cell of this file as "
                                "the manifest reader does, so it will not rewrite it; save it again as plain CSV "
                                "(UTF-8, commas) and retry")

    def roi_cells(self, line: int) -> list[str]:
        cells = parsed(self.data, self._record(line))
        return [cells[c] for c in self.columns]

    def _record(self, line: int) -> Record:
        return next(r for r in self.records if r.line == line)

    def with_roi(self, line: int, values: list[str]) -> bytes:
        """The bytes with the five ROI cells of the row starting on `line` replaced by values."""
        return self.with_cells(line, dict(zip(self.columns, values)))

    def with_cells(self, line: int, values: dict[int, str]) -> bytes:
        """The bytes with the cells (by column position) of the row starting on `line` replaced by values
        (one line of text each, without surrounding spaces: quoted where the CSV needs it)."""
        record, data = self._record(line), self.data
        for column, value in sorted(values.items(), reverse=True):  # right to left: offsets hold
            start, end = record.cells[column]
            data = data[:start] + cell_bytes(value) + data[end:]
        return data

    def save_roi(self, line: int, values: list[str]) -> None:
        """Write the row's new ROI cells (see save_cells)."""
        self.save_cells(line, dict(zip(self.columns, values)))

    def save_cells(self, line: int, values: dict[int, str]) -> None:
        """Write the row's new cells (by column position): refused when the file changed since it was
        read; the original is kept once as MANIFEST.bak; the write is atomic."""
        try:
            current = self.target.read_bytes()
            mode = stat.S_IMODE(self.target.stat().st_mode)
        except OSError as exc:
            raise ManifestChanged(f"the manifest cannot be read any more ({exc.strerror}); nothing was saved") from None
        if current != self.data:
            raise ManifestChanged("the manifest was changed by another program since vcpred annotate read it; nothing "
                                  "was saved: stop vcpred annotate (Ctrl+C) and start it again")
        new = self.with_cells(line, values)
        if not self.backup.exists():
            atomic_write(self.backup, lambda temporary: _write(temporary, current, mode))
        atomic_write(self.target, lambda temporary: _write(temporary, new, mode))
        self.data = new
        self.records = [r for r in records(new) if any(parsed(new, r))]


def cell_bytes(value: str) -> bytes:
    """A cell's UTF-8 bytes, quoted (quotes doubled) when it holds a comma or a quote, so that the
    manifest reader reads back exactly `value`."""
    if "," in value or '"' in value:
        value = '"' + value.replace('"', '""') + '"'
    return value.encode("utf-8")


def _write(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)
