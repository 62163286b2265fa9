"""The report takes the ladder and where to write it apart from the folder it reads runs from (issue 29):
a second ladder's table, chart and samples page can go to a folder of their own while its runs are shared."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from common.profiles import get_profile
from common.report import write_report
from common.run import Stage
from stages import STAGES

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "results" / "cpu"


def test_a_ladder_is_written_where_asked_from_the_runs_of_another_folder(tmp_path):
    folder = tmp_path / "cpu"
    for stage in ("bigram", "averaging", "mlp"):  # saved runs only: no checkpoints, weights or corpus needed
        shutil.copytree(COMMITTED / "runs" / stage, folder / "runs" / stage,
                        ignore=shutil.ignore_patterns("checkpoint.pt"))
    ladder = {name: Stage.from_module(name, STAGES[name]) for name in ("bigram", "mlp")}  # another ladder
    out = folder / "other"
    write_report(folder, get_profile("cpu"), ladder, out=out)
    table = pd.read_csv(out / "ladder.csv")
    assert list(table.stage) == ["bigram", "mlp"]  # this ladder's rungs, in its order, compared with each other
    assert table.delta.notna().iloc[1]
    assert {"ladder.md", "loss_ladder.png", "samples.md"} <= {p.name for p in out.iterdir()}
    assert "## averaging" not in (out / "samples.md").read_text()
    assert not (folder / "ladder.csv").exists() and not (folder / "samples.md").exists()  # the runs' folder: untouched
