"""A tiny HTML builder: every text goes through html.escape; markup is only made here.

`Html` marks a string as already-safe markup, so helpers can nest (a table cell may hold a link)
without escaping it twice. Anything else given to a helper is text and is escaped.
"""

from __future__ import annotations

import base64
from html import escape


class Html(str):
    """Markup that is already safe (built by these helpers)."""


def text(value) -> Html:
    """Escaped text of any value (Html stays as it is)."""
    return value if isinstance(value, Html) else Html(escape(str(value)))


def join(parts, sep: str = "") -> Html:
    return Html(sep.join(text(p) for p in parts))


def tag(name: str, *children, cls: str | None = None, **attrs) -> Html:
    """<name attrs>children</name>; attribute values escaped; `cls` becomes class."""
    if cls:
        attrs["class"] = cls
    rendered = "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"'
                       for k, v in attrs.items() if v is not None)
    return Html(f"<{name}{rendered}>{join(children)}</{name}>")


def table(header: list, rows: list[list], *, cls: str | None = None, caption=None,
          header_rows: list[list] | None = None) -> Html:
    """A table; header_rows: extra header rows above `header` as [(cell, colspan), ...]."""
    head = [tag("tr", *(tag("th", cell, colspan=span if span > 1 else None) for cell, span in group))
            for group in header_rows or []]
    head.append(tag("tr", *(tag("th", cell) for cell in header)))
    body = [tag("tr", *(tag("td", cell) for cell in row)) for row in rows]
    return tag("table", tag("caption", caption) if caption else "", tag("thead", *head), tag("tbody", *body),
               cls=cls)


def definition_table(pairs: list[tuple]) -> Html:
    """Two columns: a name (th) and its value (td)."""
    return tag("table", tag("tbody", *(tag("tr", tag("th", k), tag("td", v)) for k, v in pairs)), cls="record")


def bullet_list(items) -> Html:
    return tag("ul", *(tag("li", item) for item in items))


def png_image(data: bytes, alt: str, cls: str | None = None) -> Html:
    """An <img> with the PNG embedded as a data URI (the report needs no other file)."""
    source = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return Html(f'<img src="{source}" alt="{escape(alt, quote=True)}"'
                + (f' class="{escape(cls, quote=True)}"' if cls else "") + ">")


def section(anchor: str, title: str, *children) -> Html:
    return tag("section", tag("h2", title), *children, id=anchor)


def note(*children) -> Html:
    return tag("p", *children, cls="note")
