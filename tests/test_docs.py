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


# The ladder tables quoted on the pages, each against the ladder.md it quotes: (page, its table's header's first
# cells, the ladder table)
QUOTED_LADDERS = [("README.md", "| stage | params | seeds | val loss (mean ± std) | delta | 95% interval | verdict | gap |",
                   "results/cpu/ladder.md"),
                  ("README.md", "| stage | params | seeds | val loss (mean ± std) | delta | 95% interval | verdict | tokens/s",
                   "results/cpu/modern/ladder.md"),
                  ("docs/modern.md", "| stage | params | seeds | val loss (mean ± std) |", "results/cpu/modern/ladder.md"),
                  ("docs/lecture.md", "| stage | params | seeds | val loss (mean ± std) |", "results/lecture/ladder.md")]


def markdown_table(markdown: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the first table whose header line starts with header_start, as {column: cell}."""
    lines = markdown.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [cell.strip() for cell in lines[first].strip("|").split("|")]
    rows = []
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
    return rows


def quoted_cells(row: dict[str, str]) -> dict[str, str]:
    """A ladder.md row's cells as the pages write them."""
    signed = f"{float(row['gap']):+.3f}" if row["gap"] else ""
    interval = f"{row['ci_low']} … {row['ci_high']}" if row["ci_low"] else ""
    return {"params": row["params"], "seeds": row["seeds"], "val loss (mean ± std)":
            f"{row['val_loss_mean']} ± {row['val_loss_std']}", "delta": row["delta"], "95% interval": interval,
            "verdict": row["verdict"], "gap": signed, "tokens/s": row["tokens_per_second"],
            "lecture": f"{float(row['lecture_val_loss']):.2f}" if row["lecture_val_loss"] else ""}


def quote_mismatches(page_text: str, header_start: str, ladder_text: str) -> list[str]:
    """Each cell of a page's quoted ladder table that says otherwise than the ladder.md it quotes."""
    ladder = {row["stage"]: quoted_cells(row) for row in markdown_table(ladder_text, "| stage |")}
    wrong = []
    for row in markdown_table(page_text, header_start):
        for column, cell in row.items():
            if column != "stage" and cell != ladder[row["stage"]][column]:
                wrong.append(f"{row['stage']} {column}: {cell!r}, the ladder says {ladder[row['stage']][column]!r}")
    return wrong


@pytest.mark.parametrize("page, header_start, ladder", QUOTED_LADDERS,
                         ids=[f"{page}:{ladder}" for page, _, ladder in QUOTED_LADDERS])
def test_a_quoted_ladder_table_says_what_its_ladder_md_says(page, header_start, ladder):
    wrong = quote_mismatches((ROOT / page).read_text(encoding="utf-8"), header_start,
                             (ROOT / ladder).read_text(encoding="utf-8"))
    assert not wrong, f"{page} quotes {ladder} otherwise: {wrong}"


def test_the_quote_check_finds_a_cell_rounded_again():
    ladder = ("| stage | params | seeds | val_loss_mean | val_loss_std | delta | ci_low | ci_high | verdict | gap | "
              "lecture_val_loss | tokens_per_second |\n|---|\n| averaging | 14,593 | 3 | 2.439 | 0.001 | -0.059 | -0.061 | "
              "-0.057 | helped | 0.048 |  | 539,278 |\n")
    page = ("| stage | params | seeds | val loss (mean ± std) | delta | 95% interval | verdict | gap |\n|---|\n"
            "| averaging | 14,593 | 3 | {} ± 0.001 | -0.059 | -0.061 … -0.057 | helped | +0.048 |\n")
    assert quote_mismatches(page.format("2.439"), "| stage |", ladder) == []
    assert quote_mismatches(page.format("2.438"), "| stage |", ladder) == \
        ["averaging val loss (mean ± std): '2.438 ± 0.001', the ladder says '2.439 ± 0.001'"]


# The study tables quoted on the pages: a table whose text before it (since the table above) names a study
# (`--study NAME` or `studies/NAME/`) quotes that study's study.md, row by row, its first cell the swept value.
STUDY_NAMED = re.compile(r"--study\s+([\w-]+)|studies/([\w-]+)/")
THREE_DECIMALS = re.compile(r"[+\-−]?\d+\.\d{3}(?!\d)")


def page_tables(markdown: str) -> list[tuple[str, list[list[str]]]]:
    """Each table of a page (outside code blocks) as (the text between it and the table above, its body rows' cells)."""
    tables, before, rows = [], [], None
    for line in FENCE.sub("", markdown).splitlines() + [""]:
        if line.startswith("|"):
            if rows is None:
                rows = []
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        else:
            if rows is not None:
                tables.append(("\n".join(before), rows[2:]))  # the header and its rule are not quotes
                before, rows = [], None
            before.append(line)
    return tables


def _label(cell: str) -> str:
    return cell.replace("`", "").replace(",", "").replace(" ", "")


def study_quote_mismatches(page_text: str, study_tables: dict[str, str]) -> tuple[list[str], int]:
    """(each number or verdict of a page's quoted study rows that says otherwise than the study.md it quotes,
    how many rows were checked). A row whose first cell is no value of the study (e.g. a point quoted from
    another study, marked so) is not one of its quotes."""
    wrong, checked = [], 0
    for before, rows in page_tables(page_text):
        named = [a or b for a, b in STUDY_NAMED.findall(before)]
        if not named or named[-1] not in study_tables:
            continue
        name = named[-1]
        saved = {_label(row[0]): row for _, table in page_tables(study_tables[name]) for row in table}
        for row in rows:
            said = saved.get(_label(row[0]))
            if said is None:
                continue
            checked += 1
            numbers = {float(n) for n in THREE_DECIMALS.findall(" ".join(said[1:]))}
            for cell in row[1:]:
                for quoted in THREE_DECIMALS.findall(cell):
                    if float(quoted.replace("−", "-")) not in numbers:
                        wrong.append(f"{name} {row[0]}: {quoted} is none of the study's {sorted(numbers)}")
                if cell in ("helped", "hurt", "within noise") and cell != said[-1]:
                    wrong.append(f"{name} {row[0]}: {cell!r}, the study says {said[-1]!r}")
    return wrong, checked


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_a_quoted_study_table_says_what_its_study_md_says(page):
    from common.studies import STUDIES
    folder = ROOT / "results" / "cpu" / "studies"
    tables = {name: (folder / name / "study.md").read_text(encoding="utf-8") for name in STUDIES}
    wrong, _ = study_quote_mismatches(page.read_text(encoding="utf-8"), tables)
    assert not wrong, f"{_relative(page)} quotes a study otherwise than its study.md: {wrong}"


def test_every_committed_study_is_quoted_on_a_docs_page():
    from common.studies import STUDIES
    folder = ROOT / "results" / "cpu" / "studies"
    unquoted = []
    for name in STUDIES:
        tables = {name: (folder / name / "study.md").read_text(encoding="utf-8")}
        if not any(study_quote_mismatches(page.read_text(encoding="utf-8"), tables)[1] for page in PAGES):
            unquoted.append(name)
    assert not unquoted, f"no docs page quotes these studies' tables: {unquoted}"


def test_the_study_quote_check_finds_a_wrong_number_and_a_wrong_verdict():
    study = ("| n_layer | baseline_mean | rung_mean | delta | ci_low | ci_high | verdict |\n|---|\n"
             "| 1 | 1.789 | 1.778 | -0.012 | -0.021 | -0.002 | within noise |\n")
    page = ("The study (`python runner.py --study zero_init`):\n\n| n_layer | a | b | delta | 95% interval | verdict |\n"
            "|---|\n| 1 | 1.789 | {} | −0.012 | −0.021 … −0.002 | {} |\n| 3 (another study) | 1.662 | 1.667 | | | |\n")
    assert study_quote_mismatches(page.format("1.778", "within noise"), {"zero_init": study}) == ([], 1)
    wrong, checked = study_quote_mismatches(page.format("1.777", "helped"), {"zero_init": study})
    assert checked == 1 and len(wrong) == 2 and "1.777" in wrong[0] and "'helped'" in wrong[1]
