"""A tiny HTML builder for every page vcpred writes (the report, `validate`'s page, `predict`'s
report.html, `prepare`'s QC sheet): every text goes through html.escape; markup is only made here.

`Html` marks a string as already-safe markup, so helpers can nest (a table cell may hold a link)
without escaping it twice. Anything else given to a helper is text and is escaped. Standard library
only: the predict and prepare paths import it without matplotlib or torch.
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


def _attributes(attrs: dict) -> str:
    """' name="value"' for each attribute not None, values escaped; a trailing _ is dropped (class_, for_)
    and other _ become - (aria_label, font_size), so attributes keep the order they are given in."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(str(v), quote=True)}"'
                   for k, v in attrs.items() if v is not None)


def tag(name: str, /, *children, cls: str | None = None, **attrs) -> Html:
    """<name attrs>children</name>; attribute values escaped; `cls` becomes class (after the others)."""
    if cls:
        attrs["class"] = cls
    return Html(f"<{name}{_attributes(attrs)}>{join(children)}</{name}>")


def void(name: str, /, *, cls: str | None = None, **attrs) -> Html:
    """An element without content or end tag (img, meta); attribute values escaped."""
    if cls:
        attrs["class"] = cls
    return Html(f"<{name}{_attributes(attrs)}>")


def document(title: str, style: str, body: list, *, lang: str = "en") -> str:
    """A whole page: doctype, head (charset, viewport, the escaped title, the inline CSS) and body,
    the parts of `body` one a line. `style` is the page's own constant CSS, not text: it goes in as it is."""
    if "</" in style:
        raise ValueError("the style may not hold '</' (it would end the <style> element)")
    head = tag("head", void("meta", charset="utf-8"),
               void("meta", name="viewport", content="width=device-width, initial-scale=1"),
               tag("title", title), tag("style", Html(style)))
    page = tag("html", head, tag("body", Html("\n"), join([part for part in body if part], "\n"), Html("\n")),
               lang=lang)
    return f"<!DOCTYPE html>\n{page}\n"


def table(header: list, rows: list[list], *, cls: str | None = None, caption=None,
          header_rows: list[list] | None = None) -> Html:
    """A table; header_rows: extra header rows above `header` as [(cell, colspan), ...]."""
    head = [tag("tr", *(tag("th", cell, colspan=span if span > 1 else None) for cell, span in group))
            for group in header_rows or []]
    head.append(tag("tr", *(tag("th", cell) for cell in header)))
    body = [tag("tr", *(tag("td", cell) for cell in row)) for row in rows]
    return tag("table", tag("caption", caption) if caption else "", tag("thead", *head), tag("tbody", *body),
               cls=cls)


def definition_table(pairs: list[tuple], *, cls: str | None = "record") -> Html:
    """Two columns: a name (th) and its value (td)."""
    return tag("table", tag("tbody", *(tag("tr", tag("th", k), tag("td", v)) for k, v in pairs)), cls=cls)


def bullet_list(items) -> Html:
    return tag("ul", *(tag("li", item) for item in items))


def png_image(data: bytes, alt: str, cls: str | None = None) -> Html:
    """An <img> with the PNG embedded as a data URI (the page needs no other file)."""
    return void("img", src="data:image/png;base64," + base64.b64encode(data).decode("ascii"), alt=alt, class_=cls)


def section(anchor: str, title: str, *children) -> Html:
    return tag("section", tag("h2", title), *children, id=anchor)


def note(*children) -> Html:
    return tag("p", *children, cls="note")
