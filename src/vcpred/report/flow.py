"""The participant flow as an inline SVG box diagram (TRIPOD+AI item 20a)."""

from __future__ import annotations

from dataclasses import dataclass

from vcpred.html import Html, join, tag

WIDTH, BOX_HEIGHT, LINE = 860, 74, 17


@dataclass
class Box:
    x: int
    y: int
    w: int
    lines: list[str]
    h: int = BOX_HEIGHT

    @property
    def top(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y

    @property
    def bottom(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h


def _box(box: Box) -> Html:
    first_y = box.y + (box.h - LINE * len(box.lines)) // 2 + 13
    spans = [tag("tspan", line, x=box.x + box.w // 2, y=first_y + i * LINE, font_weight="bold" if i == 0 else None)
             for i, line in enumerate(box.lines)]
    return join([tag("rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=6, fill="#f4f7fb", stroke="#4a6a8a"),
                 tag("text", *spans, text_anchor="middle", font_size=13)])


def _arrow(start: tuple[int, int], end: tuple[int, int]) -> Html:
    return tag("line", x1=start[0], y1=start[1], x2=end[0], y2=end[1], stroke="#4a6a8a", stroke_width=1.5,
               marker_end="url(#arrow)")


def flow_svg(manifest: list[str], development: list[str], external: list[str], splits: list[str],
             scored: list[str], dev_excluded: list[str], ext_excluded: list[str], runs: list[str]) -> Html:
    """Manifest -> development / external -> splits / scored -> excluded -> runs; each a list of lines."""
    top = Box(WIDTH // 2 - 170, 10, 340, manifest)
    dev, ext = Box(30, 120, 380, development), Box(450, 120, 380, external)
    split_box, scored_box = Box(30, 230, 380, splits, 92), Box(450, 230, 380, scored, 92)
    dev_out, ext_out = Box(60, 356, 320, dev_excluded, 66), Box(480, 356, 320, ext_excluded, 66)
    run_box = Box(WIDTH // 2 - 250, 460, 500, runs, 60)
    arrows = [(top.bottom, dev.top), (top.bottom, ext.top), (dev.bottom, split_box.top),
              (ext.bottom, scored_box.top), (split_box.bottom, dev_out.top), (scored_box.bottom, ext_out.top),
              ((split_box.x + split_box.w - 40, split_box.y + split_box.h), run_box.top),
              ((scored_box.x + 40, scored_box.y + scored_box.h), run_box.top)]
    boxes = [_box(b) for b in (top, dev, ext, split_box, scored_box, dev_out, ext_out, run_box)]
    lines = [_arrow(a, b) for a, b in arrows]
    marker = tag("defs", tag("marker", tag("path", d="M0,0 L10,5 L0,10 z", fill="#4a6a8a"), id="arrow",
                             viewBox="0 0 10 10", refX=9, refY=5, markerWidth=7, markerHeight=7, orient="auto"))
    return tag("svg", marker, *boxes, *lines, cls="flow", viewBox=f"0 0 {WIDTH} 530", width=WIDTH, height=530,
               role="img", aria_label="participant flow")
