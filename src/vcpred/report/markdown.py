"""The small markdown subset MODEL_CARD.md uses, as HTML: headings, paragraphs, bullet lists,
pipe tables, **bold**, _italic_ and `code`. A line is escaped before its inline markup is added (`inline`
gives builder Html); blocks are made with the vcpred.html builder."""

from __future__ import annotations

import re
from html import escape

from vcpred.html import Html, bullet_list, join, table, tag

INLINE = [(re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"), (re.compile(r"`(.+?)`"), r"<code>\1</code>"),
          (re.compile(r"(?<!\w)_(.+?)_(?!\w)"), r"<em>\1</em>")]


def inline(line: str) -> Html:
    """A line's text, escaped first, then its **bold**, `code` and _italic_ as markup."""
    out = escape(line)
    for pattern, replacement in INLINE:
        out = pattern.sub(replacement, out)
    return Html(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> Html:
    header, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    return table([inline(c) for c in header], [[inline(c) for c in row] for row in body], cls="numbers")


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
    parts: list[Html] = []
    for kind, lines in _blocks(text):
        if kind == "heading":
            level = min(6, len(lines[0]) - len(lines[0].lstrip("#")) + heading_offset)
            parts.append(tag(f"h{level}", inline(lines[0].lstrip("#").strip())))
        elif kind == "bullet":
            parts.append(bullet_list(inline(line[2:]) for line in lines))
        elif kind == "table":
            parts.append(_table(lines))
        elif kind == "paragraph":
            parts.append(tag("p", inline(" ".join(lines))))
    return join(parts, "\n")
