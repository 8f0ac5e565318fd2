#!/usr/bin/env python3
"""The repository's tree for docs/architecture.md: one line per module, its docstring's first sentence.

    python scripts/docs_tree.py           # print the tree
    python scripts/docs_tree.py --write   # replace the tree in docs/architecture.md

The page holds the tree between the markers below; tests/test_docs_links.py fails when a
module is added, moved or removed and the page was not rewritten.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = Path("docs/architecture.md")
START = "<!-- tree:start (scripts/docs_tree.py --write) -->"
END = "<!-- tree:end -->"

# Python folders listed module by module, in this order.
PACKAGES = ("server", "adapters", "dsp", "signaling", "bench")
# Folders without a docstring of their own: what they hold, said once here.
FOLDER_NOTES = {
    "server": "the aiohttp app: wiring, settings, security, metrics, lifecycle, CLI; the stream "
              "core and the faces in packages of their own",
    "signaling": "WebRTC: offer/answer, the paced outbound track, the inbound mic track, the "
                 "event vocabulary",
    "bench": "the benchmark's library: sections, clients, peers, targets, reports",
    "web": "the browser UI, static files the app serves: the playground (/) and the voice-agent "
           "page (/agent)",
    "tests": "pytest: unit and integration tests against real servers on 127.0.0.1",
    "e2e": "Playwright tests driving Debian's Chromium against a running server",
    "scripts": "command-line tools run from a checkout",
    "deploy": "Dockerfiles, compose, HAProxy, Kubernetes, Prometheus and Grafana "
              "(see deploy/README.md)",
}
SKIP_DIRS = {"__pycache__"}


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the repository, folders end with "/"
    depth: int
    note: str


ABBREVIATIONS = ("e.g.", "i.e.", "vs.", "etc.")
NOTE_WIDTH = 84  # characters of note per line; longer notes continue under the column
MAX_DEPTH = 6


def first_sentence(text: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    para = " ".join(line.strip() for line in text.strip().split("\n\n")[0].splitlines())
    for match in re.finditer(r"[.!?](?=\s)", para):
        if not para[: match.end()].endswith(ABBREVIATIONS):
            return para[: match.end()].strip()
    return para.strip()


def py_note(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError):
        return ""
    return first_sentence(doc) if doc else ""


def js_note(path: Path) -> str:
    """The leading `//` comment of a script, as a docstring."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("//"):
            break
        lines.append(line[2:].strip())
    return first_sentence("\n".join(lines))


def html_note(path: Path) -> str:
    match = re.search(r"<title>(.*?)</title>", path.read_text(encoding="utf-8"), re.S)
    return match.group(1).strip() if match else ""


def folder_note(folder: Path) -> str:
    rel = folder.relative_to(REPO).as_posix()
    init = folder / "__init__.py"
    note = py_note(init) if init.exists() else ""
    return note or FOLDER_NOTES.get(rel, "")


def python_tree(folder: Path, depth: int) -> list[Entry]:
    """A package: its modules (not __init__), then its sub-packages, each with its note."""
    rel = folder.relative_to(REPO).as_posix()
    out = [Entry(rel + "/", depth, folder_note(folder))]
    for module in sorted(folder.glob("*.py")):
        if module.name != "__init__.py":
            out.append(Entry(module.relative_to(REPO).as_posix(), depth + 1, py_note(module)))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        if any(sub.rglob("*.py")):
            out += python_tree(sub, depth + 1)
    return out


def web_tree() -> list[Entry]:
    web = REPO / "web"
    out = [Entry("web/", 0, FOLDER_NOTES["web"])]
    for page in sorted(web.glob("*.html")):
        out.append(Entry(f"web/{page.name}", 1, html_note(page)))
    out.append(Entry("web/css/", 1, "the pages' one stylesheet"))
    out.append(Entry("web/js/", 1, "ES modules, one concept each"))
    for script in sorted((web / "js").glob("*.js")):
        out.append(Entry(f"web/js/{script.name}", 2, js_note(script)))
    return out


def tests_tree() -> list[Entry]:
    tests = REPO / "tests"
    out = [Entry("tests/", 0, FOLDER_NOTES["tests"])]
    cases = sorted(tests.glob("test_*.py"))
    out.append(Entry("tests/test_*.py", 1, f"{len(cases)} test modules, one subject each"))
    for helper in sorted(tests.glob("*.py")):
        if not helper.name.startswith("test_") and helper.name != "__init__.py":
            out.append(Entry(f"tests/{helper.name}", 1, py_note(helper)))
    contract = tests / "contract"
    if contract.is_dir():
        out.append(Entry("tests/contract/", 1, folder_note(contract)))
    return out


def flat_tree(name: str, pattern: str) -> list[Entry]:
    folder = REPO / name
    out = [Entry(f"{name}/", 0, FOLDER_NOTES[name])]
    for f in sorted(folder.glob(pattern)):
        out.append(Entry(f"{name}/{f.name}", 1, py_note(f)))
    return out


def deploy_tree() -> list[Entry]:
    folder = REPO / "deploy"
    out = [Entry("deploy/", 0, FOLDER_NOTES["deploy"])]
    for f in sorted(folder.iterdir()):
        if f.name != "README.md":
            out.append(Entry(f"deploy/{f.name}" + ("/" if f.is_dir() else ""), 1, ""))
    return out


def entries() -> list[Entry]:
    out: list[Entry] = []
    for name in PACKAGES:
        out += python_tree(REPO / name, 0)
    out += web_tree()
    out += tests_tree()
    out += flat_tree("e2e", "*.py")
    out += flat_tree("scripts", "*.py")
    out += deploy_tree()
    return out


def render(items: list[Entry]) -> str:
    """A code block: names indented by depth (the last path part), notes in one column,
    wrapped under it."""
    names = ["  " * e.depth + (e.path.rstrip("/").rsplit("/", 1)[-1]
                               + ("/" if e.path.endswith("/") else "")) for e in items]
    width = max(len(n) for n in names) + 2
    assert width > 2 * MAX_DEPTH, "names() tells entries from continuations by their indent"
    lines = []
    for name, e in zip(names, items, strict=True):
        wrapped = textwrap.wrap(e.note, NOTE_WIDTH) or [""]
        lines.append((name.ljust(width) + wrapped[0]).rstrip())
        lines += [" " * width + more for more in wrapped[1:]]
    return "```text\n" + "\n".join(lines) + "\n```"


def names(tree_block: str) -> list[str]:
    """The entries of a rendered tree, notes left out: "  " * depth + name, in order."""
    out = []
    for line in tree_block.splitlines():
        if line.startswith(("```", "<!--")) or not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent <= 2 * MAX_DEPTH:  # a note's continuation starts under the note column
            out.append(" " * indent + line.split()[0])
    return out


def block() -> str:
    return f"{START}\n{render(entries())}\n{END}"


def current_block(page: str) -> str | None:
    """The tree block as it stands in the page (markers included), or None."""
    start, end = page.find(START), page.find(END)
    if start < 0 or end < start:
        return None
    return page[start : end + len(END)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"replace the tree in {PAGE}")
    args = p.parse_args(argv)
    if not args.write:
        print(block())
        return 0
    page_path = REPO / PAGE
    page = page_path.read_text(encoding="utf-8")
    old = current_block(page)
    if old is None:
        print(f"{PAGE} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    page_path.write_text(page.replace(old, block()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
