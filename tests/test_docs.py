"""The README is the front door and docs/ holds the rest: every relative link and image in them leads to a
file that exists (and, into a Markdown page, to a heading that exists), every docs page can be reached from
the README, and the README stays short enough to be read as a front door."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
# [text](target) and ![alt](target), with an optional <...> around the target and an optional "title"
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # http:, https:, mailto:, ...


def link_targets(markdown: str) -> list[str]:
    """The targets of the links and images of a Markdown text, outside code blocks and code spans."""
    prose = CODE_SPAN.sub("code", FENCE.sub("", markdown))
    return INLINE.findall(prose) + REFERENCE.findall(prose)


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a page: lower case, punctuation dropped, spaces as hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown), re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def broken_links(page: Path) -> list[str]:
    """Each relative link or image of a page that does not resolve, from the page's own folder."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and resolved.is_file() \
                and anchor not in heading_anchors(resolved.read_text(encoding="utf-8")):
            broken.append(f"{target} (no such heading)")
    return broken


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_every_relative_link_and_image_resolves(page):
    broken = broken_links(page)
    assert not broken, f"{_relative(page)}: {', '.join(broken)}"


def test_the_check_finds_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("# Here it is\n", encoding="utf-8")
    (tmp_path / "chart.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("[fine](there.md#here-it-is) ![fine](chart.png) [web](https://example.com/x.md)\n"
                    "[gone](missing.md) ![gone](img/none.png \"title\") [bad anchor](there.md#nowhere)\n"
                    "`[in code](skipped.md)`\n```\n[in a block](skipped.md)\n```\n"
                    "[ref]: also/missing.md\n", encoding="utf-8")
    assert broken_links(page) == ["missing.md (no such file)", "img/none.png (no such file)",
                                  "there.md#nowhere (no such heading)", "also/missing.md (no such file)"]


def test_the_readme_is_a_front_door():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index():
    linked = set()
    for page in (ROOT / "README.md", ROOT / "docs" / "README.md"):
        for target in link_targets(page.read_text(encoding="utf-8")):
            if not EXTERNAL.match(target) and target.partition("#")[0]:
                linked.add((page.parent / target.partition("#")[0]).resolve())
    orphans = [_relative(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not orphans, f"not linked from README.md or docs/README.md: {', '.join(orphans)}"
