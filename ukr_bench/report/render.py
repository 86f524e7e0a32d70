"""A report is a list of blocks (headings, text, tables, figures), rendered to Markdown and to
HTML from the same list, so the two never disagree."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import pandas as pd

BlockKind = Literal["h2", "text", "table", "figure"]


@dataclass(frozen=True)
class Block:
    """One piece of a report: a heading or text (str), a table (DataFrame), a figure (PNG path)."""

    kind: BlockKind
    content: Union[str, pd.DataFrame, Path]  # noqa: UP007 - read at run time on Python 3.10
    caption: str = ""


def _rel(path: Path, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()


def render_markdown(title: str, blocks: list[Block], base: Path) -> str:
    parts = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            parts += [f"## {b.content}", ""]
        elif b.kind == "text":
            parts += [str(b.content), ""]
        elif b.kind == "table":
            assert isinstance(b.content, pd.DataFrame)
            if b.caption:
                parts += [f"**{b.caption}**", ""]
            parts += [b.content.to_markdown(index=False), ""]
        elif b.kind == "figure":
            rel = _rel(Path(str(b.content)), base)
            parts += [
                f"![{b.caption}]({rel})",
                "",
                f"*{b.caption}* ([SVG]({Path(rel).with_suffix('.svg').as_posix()}))",
                "",
            ]
    return "\n".join(parts)


def render_html(title: str, blocks: list[Block], base: Path) -> str:
    """One page beside its ``figures/`` folder; figures are linked, not embedded (a committed
    report stays small, and the PNGs are the same files the Markdown shows)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            body.append(f"<h2>{html.escape(str(b.content))}</h2>")
        elif b.kind == "text":
            body.append(f"<p>{html.escape(str(b.content)).replace('`', '')}</p>")
        elif b.kind == "table":
            assert isinstance(b.content, pd.DataFrame)
            cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
            body.append(
                b.content.to_html(index=False, border=0, classes="t").replace(
                    '<table border="0" class="dataframe t">', f'<table class="t">{cap}', 1
                )
            )
        elif b.kind == "figure":
            src = html.escape(_rel(Path(str(b.content)), base))
            cap = html.escape(b.caption)
            body.append(
                f'<figure><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table.t{border-collapse:collapse;margin:1em 0;font-size:13px}"
        ".t td,.t th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}"
        "caption{font-weight:bold;text-align:left;padding:4px 0}img{max-width:100%}"
        "figcaption{font-style:italic;font-size:13px}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
