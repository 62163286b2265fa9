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


def page_tables(markdown: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Each table of a page (outside code blocks) as (the text between it and the table above, its header, its
    rows), every cell stripped."""
    tables, before, rows = [], [], None
    for line in FENCE.sub("", markdown).splitlines() + [""]:
        if line.startswith("|"):
            rows = rows if rows is not None else []
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        else:
            if rows is not None:
                tables.append(("\n".join(before), rows[0], rows[2:]))
                before, rows = [], None
            before.append(line)
    return tables


def markdown_table(markdown: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the first table whose header line starts with header_start, as {column: cell}."""
    for _, header, rows in page_tables(markdown):
        if ("| " + " | ".join(header) + " |").startswith(header_start):
            return [dict(zip(header, row)) for row in rows]
    raise AssertionError(f"no table whose header starts {header_start!r}")


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


# The study tables quoted on the pages: a table with delta, 95% interval and verdict columns (not a ladder's) quotes
# the study named last in the text before it (`--study NAME` or `studies/NAME/`), a row per value of the study,
# column by column: the first cell the value, then the baseline's and the rung's means (unless the columns say
# what the pieces are), delta, interval, verdict. A row quoted from another study says so: "0.01 (modern-left-out)".
STUDY_NAMED = re.compile(r"--study\s+([\w-]+)|studies/([\w-]+)/")
MARKED = re.compile(r"\(([\w-]+)\)\s*$")
NOT_MEANS = {"from", "its change"}  # modern-left-out's table describes its pieces where others give the means


def _label(cell: str) -> str:
    return cell.replace("`", "").replace(",", "").replace(" ", "")


def _plain(cell: str) -> str:
    return cell.replace("−", "-").replace("**", "").strip()


def study_rows(study_md: str) -> dict[str, dict[str, str]]:
    """A study.md's rows by value, as {column: cell}."""
    (_, header, rows), = page_tables(study_md)
    return {_label(row[0]): dict(zip(header, row)) for row in rows}


def side_mismatch(cell: str, row: dict[str, str], side: str) -> str | None:
    """Why a quoted side's cell says otherwise than the study's row (None when it agrees): its mean, or
    'diverged ...' where the study has no mean; a '± std' after the mean must be the study's std."""
    mean, std = row[f"{side}_mean"], row[f"{side}_std"]
    if not mean:
        return None if cell.startswith("diverged") else f"{cell!r}, the study says the {side} diverged"
    said = re.match(r"(\d+\.\d+)(?:\s*±\s*(\d+\.\d+))?", cell)
    if not said or said.group(1) != mean or (said.group(2) and said.group(2) != std):
        return f"{cell!r}, the study says {mean} ± {std}"
    return None


def study_quote_mismatches(page_text: str, study_tables: dict[str, str]) -> tuple[list[str], set[str]]:
    """(each cell of a page's quoted study tables that says otherwise than the study.md it quotes, the studies
    whose tables it quotes)."""
    from common.studies import STUDIES
    wrong, quoted = [], set()
    for before, header, rows in page_tables(page_text):
        if header[0] == "stage" or not {"delta", "95% interval", "verdict"} <= set(header):
            continue  # not a study's table (a ladder's tables have their own check)
        named = [a or b for a, b in STUDY_NAMED.findall(before)]
        if not named or named[-1] not in study_tables:
            continue
        name = named[-1]
        saved = study_rows(study_tables[name])
        quoted.add(name)
        missing = set(saved) - {_label(row[0]) for row in rows}
        if missing:
            wrong.append(f"{name}: no row for {sorted(missing)}")
        for cells in rows:
            row = dict(zip(header, cells))
            said = saved.get(_label(cells[0]))
            marked = MARKED.search(cells[0])
            if said is None and marked and marked.group(1) in study_tables and marked.group(1) != name:
                said = study_rows(study_tables[marked.group(1)]).get(STUDIES[name].rung)  # that study's point
            if said is None:
                wrong.append(f"{name}: {cells[0]!r} is none of its values (mark a point quoted from another "
                             "study with its name in brackets)")
                continue
            where = f"{name} {cells[0]}"
            for column, side in zip(header[1:3], ("baseline", "rung")):
                if column not in NOT_MEANS and header.index(column) < header.index("delta"):
                    problem = side_mismatch(_plain(row[column]), said, side)
                    if problem:
                        wrong.append(f"{where} {column}: {problem}")
            interval = f"{said['ci_low']} … {said['ci_high']}" if said["ci_low"] else ""
            for column, expected in (("delta", said["delta"]), ("95% interval", interval), ("verdict", said["verdict"])):
                if _plain(row[column]) != expected:
                    wrong.append(f"{where} {column}: {row[column]!r}, the study says {expected!r}")
    return wrong, quoted


def committed_study_tables() -> dict[str, str]:
    from common.studies import STUDIES
    folder = ROOT / "results" / "cpu" / "studies"
    return {name: (folder / name / "study.md").read_text(encoding="utf-8") for name in STUDIES}


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_a_quoted_study_table_says_what_its_study_md_says(page):
    wrong, _ = study_quote_mismatches(page.read_text(encoding="utf-8"), committed_study_tables())
    assert not wrong, f"{_relative(page)} quotes a study otherwise than its study.md: {wrong}"


def test_every_committed_study_is_quoted_on_a_docs_page():
    tables = committed_study_tables()
    quoted = set().union(*(study_quote_mismatches(page.read_text(encoding="utf-8"), tables)[1] for page in PAGES))
    assert quoted == set(tables), f"no docs page quotes these studies' tables: {sorted(set(tables) - quoted)}"


def test_the_study_quote_check_finds_each_kind_of_misquote():
    study = ("| n_layer | baseline_seeds | baseline_mean | baseline_std | rung_mean | rung_std | delta | ci_low | "
             "ci_high | verdict |\n|---|\n| 1 | 3 | 1.789 | 0.004 | 1.778 | 0.002 | -0.012 | -0.021 | -0.002 | within "
             "noise |\n| 6 | 3 |  |  | 1.627 | 0.005 |  |  |  | helped: the baseline diverged |\n")
    other = ("| piece | baseline_mean | baseline_std | rung_mean | rung_std | delta | ci_low | ci_high | verdict |\n"
             "|---|\n| zero_init | 1.662 | 0.005 | 1.667 | 0.003 | +0.005 | -0.006 | +0.016 | within noise |\n")
    rows = {"1": "| 1 | 1.789 | 1.778 | −0.012 | −0.021 … −0.002 | within noise |",
            "3": "| 3 (modern-left-out) | 1.662 | 1.667 | +0.005 | −0.006 … +0.016 | within noise |",
            "6": "| 6 | diverged (3 of 3 seeds) | 1.627 ± 0.005 | | | helped: the baseline diverged |"}
    tables = {"zero_init": study, "modern-left-out": other}

    def check(**changed):
        body = "\n".join(changed.get(key, row) for key, row in rows.items() if changed.get(key, row))
        page = ("Its table (`python runner.py --study zero_init`):\n\n| n_layer | qk_norm | zero_init | delta | "
                f"95% interval | verdict |\n|---|\n{body}\n")
        return study_quote_mismatches(page, tables)

    assert check() == ([], {"zero_init"})
    for misquote in [{"1": "| 1 | 1.778 | 1.789 | −0.012 | −0.021 … −0.002 | within noise |"},  # sides swapped
                     {"1": "| 1 | 1.789 | 1.778 | −0.021 | −0.021 … −0.002 | within noise |"},  # delta from ci_low
                     {"1": "| 1 | 1.789 | 1.778 | −0.012 | −0.021 … −0.002 | **helped** |"},  # another verdict
                     {"1": ""},  # a value left out
                     {"1": "| 1.0 | 1.789 | 1.778 | −0.012 | −0.021 … −0.002 | within noise |"},  # not a value
                     {"3": "| 3 (modern-left-out) | 1.662 | 1.600 | −0.062 | −0.006 … +0.016 | within noise |"},
                     {"6": "| 6 | 1.700 | 1.627 ± 0.005 | | | helped: the baseline diverged |"},  # a mean invented
                     {"6": "| 6 | diverged (3 of 3 seeds) | 1.627 ± 0.050 | | | helped: the baseline diverged |"}]:
        wrong, _ = check(**misquote)
        assert wrong, f"not caught: {misquote}"
