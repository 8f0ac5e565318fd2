"""The documentation holds together: every relative link and anchor resolves, the README opens
with the two commands, the configuration page lists every setting, the tree is current."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

import pytest

from server.config import FILESYSTEM, LOCAL_ONLY, Settings, marked

REPO = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200  # the two-minute read; everything longer belongs in docs/

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.I)
COMMENT = re.compile(r"<!--.*?-->", re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


# --- reading markdown ------------------------------------------------------------------------


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a line inside one becomes empty)."""
    out, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            out.append("")
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip()[len(match.group(1)):].strip():
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def prose(text: str) -> str:
    """Text a link can live in: no code blocks, no code spans, no HTML comments. Code spans
    end at a paragraph's end, so they are found paragraph by paragraph."""
    text = COMMENT.sub("", "\n".join(prose_lines(text)))
    return "\n\n".join(CODE_SPAN.sub("code", para) for para in re.split(r"\n\s*\n", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered, lowercased, punctuation removed
    (letters, digits, `_`, `-` and spaces kept), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (a repeated one gets -1, -2, ...) and
    explicit `<a name>`/`<a id>` anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(COMMENT.sub("", text)):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found.update(HTML_ANCHOR.findall(text))
    return found


def links(text: str) -> list[str]:
    body = prose(text)
    return INLINE_LINK.findall(body) + REFERENCE_DEF.findall(body)


def broken_links(page: Path, root: Path) -> list[str]:
    """Each relative link of `page` whose file or anchor does not exist, as `page: target`."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for target in links(text):
        if not target or SCHEME.match(target):
            continue  # an external address: not checked here (no network in tests)
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        if not path_part:
            dest = page
        elif path_part.startswith("/"):
            dest = root / path_part.lstrip("/")
        else:
            dest = page.parent / path_part
        dest = dest.resolve()
        where = f"{page.relative_to(root)}: {target}"
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where} (outside the repository)")
        elif not dest.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(
                dest.read_text(encoding="utf-8")):
            problems.append(f"{where} (no heading #{anchor} in {dest.relative_to(root.resolve())})")
    return problems


def pages(root: Path) -> list[Path]:
    """The README, every page of docs/, and deploy/README.md (which they link to)."""
    found = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return found + [p for p in (root / "deploy" / "README.md",) if p.exists()]


def all_broken_links(root: Path) -> list[str]:
    return [problem for page in pages(root) for problem in broken_links(page, root)]


# --- the checker can fail -----------------------------------------------------------------


def test_the_checker_reports_broken_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# Page A\n\n## Speed (`python -m bench.snac`)\n\n## Notes\n\n## Notes\n\n"
        "## What's new? 100%!\n\n<a name=\"custom\"></a>\n"
        "Back to the [README](../README.md#morpheus) and [here](#notes-1).\n"
        "```bash\n# Not a heading\n[not a link](missing.md)\n```\n"
        "<!-- [a slot](docs/voices.md) -->\n",
        encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "# Morpheus\n\n"
        "[ok](docs/a.md) [ok too](docs/a.md#speed-python--m-benchsnac) "
        "[dup](docs/a.md#notes-1) [punct](docs/a.md#whats-new-100) [html](docs/a.md#custom) "
        "[dir](docs/) [web](https://example.com/missing) [self](#morpheus)\n\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nope) ![image](docs/pic.png)\n"
        "[third notes](docs/a.md#notes-2) [own](#nowhere) [out](../../etc/passwd)\n"
        "`[in code](missing.md)` and\n[ref]: docs/ref.md\n",
        encoding="utf-8")
    problems = all_broken_links(tmp_path)
    assert [p.split(" (")[0] for p in problems] == [
        "README.md: docs/b.md",
        "README.md: docs/a.md#nope",
        "README.md: docs/pic.png",
        "README.md: docs/a.md#notes-2",
        "README.md: #nowhere",
        "README.md: ../../etc/passwd",
        "README.md: docs/ref.md",
    ], problems


@pytest.mark.parametrize(("heading", "expected"), [
    ("Wyoming servers (`wyoming`)", "wyoming-servers-wyoming"),
    ("SNAC weights (`SNAC_MODEL`)", "snac-weights-snac_model"),
    ("Speed of `wyoming` and `command` (`python -m bench.wyoming_client`)",
     "speed-of-wyoming-and-command-python--m-benchwyoming_client"),
    ("The old Orpheus-FastAPI commands (unchanged)", "the-old-orpheus-fastapi-commands-unchanged"),
    ("Server-sent events (`stream_format: \"sse\"`)", "server-sent-events-stream_format-sse"),
    ("[Linked](x.md) heading", "linked-heading"),
])
def test_slugs_follow_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


# --- the repository's pages ---------------------------------------------------------------


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = all_broken_links(REPO)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_starts_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if FENCE.match(line))
    end = next(i for i in range(start + 1, len(lines)) if FENCE.match(lines[i]))
    block = [line.split("#")[0].strip() for line in lines[start + 1 : end]]
    assert start <= 3, "the README opens with the commands, before anything else"
    assert "make serve" in block and "make test" in block, block
    assert not any(HEADING.match(line) for line in lines[1:start])


def test_the_readme_is_a_short_read() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines: move the detail to a page in docs/ and link it")


def test_the_readme_links_every_docs_page() -> None:
    linked = {(REPO / t.partition("#")[0]).resolve()
              for t in links((REPO / "README.md").read_text(encoding="utf-8"))
              if not SCHEME.match(t)}
    top = {p.resolve() for p in (REPO / "docs").glob("*.md")}
    assert not top - linked, f"not linked from the README: {sorted(p.name for p in top - linked)}"


# --- configuration ------------------------------------------------------------------------


def config_rows() -> list[str]:
    """The first cell of every table row of docs/configuration.md."""
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    return [line.split("|")[1] for line in prose_lines(text)
            if line.startswith("| `")]


def test_the_configuration_page_lists_every_setting() -> None:
    documented = {key for cell in config_rows() for key in re.findall(r"`([A-Z0-9_]+)`", cell)}
    settings = {name.upper() for name in Settings.model_fields}
    assert not settings - documented, f"settings missing from docs/configuration.md: " \
                                      f"{sorted(settings - documented)}"
    assert not documented - settings, f"docs/configuration.md names keys that are not " \
                                      f"settings: {sorted(documented - settings)}"


def test_the_configuration_page_marks_paths_and_local_settings() -> None:
    paths = {key for cell in config_rows()
             for key in re.findall(r"`([A-Z0-9_]+)` \(\*path\*\)", cell)}
    assert paths == {name.upper() for name in marked(FILESYSTEM)}
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    sentence = text.split("Never set over the network", 1)[1].split("\n\n", 1)[0]
    local = set(re.findall(r"`([A-Z0-9_]+)`", sentence.split(":", 1)[1].split(".", 1)[0]))
    assert local == {name.upper() for name in marked(LOCAL_ONLY)}


# --- architecture ---------------------------------------------------------------------------


def docs_tree() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tree", REPO / "scripts" / "docs_tree.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_tree", module)
    spec.loader.exec_module(module)
    return module


def test_the_architecture_tree_lists_every_module() -> None:
    tree = docs_tree()
    page = (REPO / tree.PAGE).read_text(encoding="utf-8")
    current = tree.current_block(page)
    assert current is not None, f"{tree.PAGE} lost its tree markers"
    expected = tree.names(tree.block())
    shown = tree.names(current)
    assert shown == expected, (
        f"{tree.PAGE}'s tree is out of date (run `python scripts/docs_tree.py --write`): "
        f"missing {sorted(set(expected) - set(shown))}, gone {sorted(set(shown) - set(expected))}")
