"""`make translations`: the Qt Linguist template coredino_qgis/i18n/coredino_qgis.ts from the plugin's
``self.tr("...")`` calls (context: the enclosing class, as PyQt's ``tr`` uses), module-level
``tr("...")`` helpers (context "coredino") and
``QCoreApplication.translate("Context", "...")`` calls. Stdlib only, so the build needs no pylupdate5.
Translators copy it to ``coredino_qgis_<lang>.ts``, translate it in Qt Linguist and compile it with
``lrelease`` to ``coredino_qgis_<lang>.qm``, which the plugin loads for QGIS's locale.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "coredino_qgis"
OUT = PLUGIN / "i18n" / "coredino_qgis.ts"


def messages(path: Path) -> list[tuple[str, str, int]]:
    """(context, source text, line) of every translatable literal in ``path``."""
    found = []

    def visit(node: ast.AST, context: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id == "tr" \
                    and child.args and isinstance(child.args[0], ast.Constant):  # a module's tr(): "coredino"
                found.append(("coredino", child.args[0].value, child.lineno))
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                args = child.args
                if child.func.attr == "tr" and args and isinstance(args[0], ast.Constant) \
                        and isinstance(args[0].value, str):
                    found.append((context, args[0].value, child.lineno))
                elif child.func.attr == "translate" and len(args) >= 2 and all(
                        isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args[:2]):
                    found.append((args[0].value, args[1].value, child.lineno))
            visit(child, context)

    visit(ast.parse(path.read_text(encoding="utf-8")), "coredino")
    return found


def main() -> int:
    contexts: dict[str, list[tuple[str, str, int]]] = {}
    for path in sorted(PLUGIN.rglob("*.py")):
        if "contract" in path.relative_to(PLUGIN).parts:
            continue
        for context, source, line in messages(path):
            contexts.setdefault(context, []).append((str(path.relative_to(PLUGIN)), source, line))
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<!DOCTYPE TS>", '<TS version="2.1">']
    for context in sorted(contexts):
        lines += ["<context>", f"    <name>{escape(context)}</name>"]
        for filename, source, line in contexts[context]:
            lines += ["    <message>", f'        <location filename="../{filename}" line="{line}"/>',
                      f"        <source>{escape(source)}</source>", '        <translation type="unfinished"></translation>',
                      "    </message>"]
        lines.append("</context>")
    lines.append("</TS>")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {sum(map(len, contexts.values()))} strings in {len(contexts)} contexts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
