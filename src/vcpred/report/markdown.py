"""The small markdown subset MODEL_CARD.md uses, as HTML: headings, paragraphs, bullet lists,
pipe tables, **bold**, _italic_ and `code`. Text is escaped before any markup is added."""

from __future__ import annotations

import re
from html import escape

from vcpred.report.html import Html

INLINE = [(re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"), (re.compile(r"`(.+?)`"), r"<code>\1</code>"),
          (re.compile(r"(?<!\w)_(.+?)_(?!\w)"), r"<em>\1</em>")]


def inline(line: str) -> str:
    out = escape(line)
    for pattern, replacement in INLINE:
        out = pattern.sub(replacement, out)
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    header, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{inline(c)}</th>" for c in header)
    rows = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in body)
    return f'<table class="numbers"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """Consecutive lines of one kind: heading, bullet, table, paragraph (blank lines split)."""
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        kind = ("blank" if not line.strip() else "heading" if line.startswith("#") else
                "bullet" if line.startswith("- ") else "table" if line.lstrip().startswith("|") else "paragraph")
        if blocks and blocks[-1][0] == kind and kind != "heading":
            blocks[-1][1].append(line)
        else:
            blocks.append((kind, [line]))
    return blocks


def markdown_html(text: str, heading_offset: int = 2) -> Html:
    """HTML of markdown text; '#' becomes h(1 + heading_offset) so a card nests under a section."""
    parts = []
    for kind, lines in _blocks(text):
        if kind == "heading":
            level = min(6, len(lines[0]) - len(lines[0].lstrip("#")) + heading_offset)
            parts.append(f"<h{level}>{inline(lines[0].lstrip('#').strip())}</h{level}>")
        elif kind == "bullet":
            parts.append("<ul>" + "".join(f"<li>{inline(line[2:])}</li>" for line in lines) + "</ul>")
        elif kind == "table":
            parts.append(_table(lines))
        elif kind == "paragraph":
            parts.append(f"<p>{inline(' '.join(lines))}</p>")
    return Html("\n".join(parts))
