"""A griffe extension for the API pages: the docstrings' reStructuredText markup as Markdown.

The docstrings are NumPy style with Sphinx roles (``:func:`value_and_grad```), reST literals
(````x````) and ``.. math::`` blocks. mkdocstrings renders Markdown, where a role would show as
its raw text; this rewrites, before the docstrings are parsed,

* ``:func:`~a.b.c``` and the other roles to the code span ``c`` (``a.b.c`` without the tilde);
* ``:math:`x``` to inline math ``\\(x\\)`` and a ``.. math::`` block to a display block
  (``pymdownx.arithmatex`` in ``mkdocs.yml``).

and, once parsed, it takes each documented parameter's default from the signature (griffe's
NumPy parser reads the first of ``{"a", "b"}`` choices as the default, and gives every name of
``sigma, lam, loo`` the first one's type and default).

Only what mkdocstrings renders changes; the source files are untouched.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const|ref):`(~?)([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_MATH_BLOCK = re.compile(r"^([ \t]*)\.\. math::[ \t]*(.*)$")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    target = target.strip()
    if "<" in target and target.endswith(">"):  # :func:`text <target>`
        target = target[: target.index("<")].strip()
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _math_blocks(text: str) -> str:
    """``.. math::`` blocks (an indented body, or the formula on the directive's line) as
    ``\\[ ... \\]`` display math at the directive's indentation."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_BLOCK.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, first = m.groups()
        body = [first] if first.strip() else []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        formula = textwrap.dedent("\n".join(x for x in body)).strip("\n")
        # Blank lines inside one display would end it in Markdown: separate equations instead.
        equations = [e.strip() for e in re.split(r"\n\s*\n", formula) if e.strip()]
        for eq in equations:
            out.extend(["", f"{indent}\\[", *(indent + x for x in eq.split("\n")), f"{indent}\\]"])
        out.append("")
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """A docstring's reST roles and math in Markdown (see the module docstring)."""
    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: f"\\({m.group(1)}\\)", text)
    return _ROLE.sub(_role, text)


def _signature_parameters(obj: griffe.Object) -> griffe.Parameters | None:
    try:
        return obj.parameters  # type: ignore[attr-defined,no-any-return]
    except AttributeError:  # a module or an attribute; a class without __init__
        return None


def fix_parameters(docstring: griffe.Docstring) -> None:
    """Parse ``docstring`` now, with the signature's defaults and (for an item naming several
    parameters without a type) each one's own annotation; keep the result as its parse."""
    sections = docstring.parse()
    params = _signature_parameters(docstring.parent) if docstring.parent is not None else None
    if params is None:
        return
    for section in sections:
        if section.kind is not griffe.DocstringSectionKind.parameters:
            continue
        items = section.value
        for i, item in enumerate(items):
            if item.name not in params:
                continue
            own = params[item.name]
            item.value = own.default
            shared = [
                other
                for other in items
                if other is not item and other.description is item.description
            ]
            if shared and own.annotation is not None:  # "sigma, lam, loo": one item, no type
                item.annotation = own.annotation
            items[i] = item
    docstring.__dict__["parsed"] = sections  # griffe's cached parse of this docstring


def _rewrite(pkg: griffe.Module) -> None:
    """Every docstring of a loaded package, through :func:`to_markdown` and :func:`fix_parameters`."""
    seen: set[int] = set()
    stack: list[griffe.Object | griffe.Alias] = [pkg]
    while stack:
        obj = stack.pop()
        if obj.is_alias or id(obj) in seen:
            continue
        seen.add(id(obj))
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
            fix_parameters(obj.docstring)
        stack.extend(obj.members.values())


class RolesToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    # The hook that runs once a package is loaded: on_package from griffe 1.14, before that
    # on_package_loaded (deprecated since). Only the one this griffe has is defined.
    if hasattr(griffe.Extension, "on_package"):

        def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
            _rewrite(pkg)

    else:  # pragma: no cover - older griffe

        def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
            _rewrite(pkg)
