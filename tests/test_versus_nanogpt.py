"""bench/versus_nanogpt.py, rehearsed on the CPU: `prepare` writes nanoGPT's data as the project splits it, and
`run` times both tools from outside (a stand-in for nanoGPT's train.py that prints its log lines, and the real
runner on a tiny model), parses their progress and writes the table."""
from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench import versus_nanogpt as versus
from common.data import load_dataset

# Prints what nanoGPT's train.py prints (config/train_shakespeare_char.py's log_interval 10), a step taking ~3 ms.
STAND_IN = textwrap.dedent('''
    import sys, time
    args = dict(a[2:].split("=", 1) for a in sys.argv[2:])
    iters, every = int(args["max_iters"]), int(args["eval_interval"])
    for it in range(iters + 1):
        if it % every == 0:
            time.sleep(0.05)
            print(f"step {it}: train loss {4 - it / iters:.4f}, val loss {4.1 - it / iters:.4f}")
        time.sleep(0.003)
        if it % 10 == 0:
            print(f"iter {it}: loss {4 - it / iters:.4f}, time 3.00ms, mfu 0.00%")
''')


@pytest.fixture
def stand_in(tmp_path) -> Path:
    folder = tmp_path / "nanogpt"
    for name in versus.NANOGPT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(STAND_IN if name == "train.py" else "# stand-in\n")
    return folder


def test_prepare_writes_nanogpts_data_with_the_projects_split(stand_in, tmp_path, corpus_path):
    dest = tmp_path / "prepared"
    versus.prepare(stand_in, dest, str(corpus_path))
    assert (dest / "train.py").read_text() == STAND_IN
    data = dest / "data" / "shakespeare_char"
    meta = pickle.loads((data / "meta.pkl").read_bytes())
    ours = load_dataset(corpus_path)
    assert meta["vocab_size"] == len(ours.tokenizer.chars) == 65
    assert "".join(meta["itos"][i] for i in range(65)) == "".join(ours.tokenizer.chars)
    train = np.fromfile(data / "train.bin", dtype=np.uint16)
    val = np.fromfile(data / "val.bin", dtype=np.uint16)
    assert np.array_equal(train, ours.train.numpy()) and np.array_equal(val, ours.val.numpy())


def test_prepare_without_nanogpt_says_what_to_give(tmp_path, corpus_path):
    with pytest.raises(SystemExit, match="has no train.py: give a checkout of karpathy/nanoGPT"):
        versus.prepare(tmp_path / "nothing", tmp_path / "prepared", str(corpus_path))


def test_ms_per_step_leaves_out_the_evaluations_and_the_first_stretch():
    # 2 ms a step, an evaluation of 1 s at every multiple of 100, the first stretch 10x slower (compiling)
    samples, t = [], 0.0
    for n in range(1, 401):
        t += 0.02 if n < 100 else 0.002
        if n % 100 == 0:
            t += 1.0
        samples.append((n, t))
    assert versus.ms_per_step(samples, 100) == pytest.approx(2.0)
    assert versus.ms_per_step(samples[:50], 100) is None  # nothing after the first stretch


def test_ms_per_step_is_not_shortened_by_steps_queued_ahead_of_the_gpu():
    """A tool that does not wait for the GPU reports each step when it is queued: after an evaluation the queue
    is empty, then it fills (here 10 steps ahead, the CPU queueing 4x faster than the GPU runs); the GPU's 2 ms
    a step is what the stretch measures, not less."""
    samples, t = [], 0.0
    for n in range(1, 401):
        t += 0.002
        if n % 100 == 0:
            t += 1.0  # the evaluation waits for the queue to drain
        lead = min(n % 100, 10) * 0.0015  # how far ahead of the GPU the report came
        samples.append((n, t - lead))
    assert versus.ms_per_step(samples, 100) == pytest.approx(2.0)


def test_nanogpt_flops_per_token_is_its_estimate_mfu_count():
    """6 N + 12 L H Q T for the lecture's GPT as nanoGPT counts it: N = 6 blocks of 12 C^2 + 2 C, ln_f's C and the
    shared token table's 65 C (10,646,784); 12 L H Q T = 12 * 6 * 384 * 256."""
    assert versus.nanogpt_flops_per_token(versus.LECTURE_GPT) == 6 * 10_646_784 + 12 * 6 * 384 * 256 == 70_958_592


def test_a_bars_redraw_is_stamped_when_it_arrived_not_when_the_next_write_ended_it(tmp_path):
    """A progress bar redraws with "\r...": a redraw's text is ended only by the next write, which may come after a
    whole evaluation; each piece carries the time its first byte arrived."""
    import io
    import sys
    child = ("import sys, time\n"
             "sys.stdout.write('\\rrun |  1/300 ['); sys.stdout.flush(); time.sleep(0.6)\n"
             "sys.stdout.write('\\rrun |  2/300 ['); sys.stdout.flush(); time.sleep(0.3)\n"
             "sys.stdout.write('\\n')\n")
    timed = versus.run_timed([sys.executable, "-c", child], tmp_path, 20, io.StringIO())
    (first, one), (second, two) = [(t, p) for t, p in timed.pieces]
    assert "1/300" in one and "2/300" in two
    assert first < 0.5 < second < 0.85 + first  # not both at the end of the 0.6 s pause or of the run
    assert timed.returncode == 0 and not timed.cut_short


def test_a_run_past_its_limit_is_stopped_and_said_cut_short(tmp_path):
    import io
    import sys
    timed = versus.run_timed([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                             tmp_path, 1.5, io.StringIO())
    assert timed.cut_short and timed.wall < 15 and timed.returncode != 0
    assert [p for _, p in timed.pieces] == ["started"]


def test_run_times_both_tools_and_writes_the_table(stand_in, tmp_path, corpus_path, monkeypatch):
    monkeypatch.setenv("GPT_LADDER_DATA", str(corpus_path))
    out = tmp_path / "versus.md"
    versus.main(["run", "--device", "cpu", "--tiny", "--iters", "300", "--eval-interval", "100", "--eval-iters",
                 "2", "--compile", "off", "--target", "3.5", "--peak-tflops", "0.01", "--nanogpt-dir", str(stand_in),
                 "--out", str(out)])
    table = out.read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| nanoGPT") or line.startswith("| runner")}
    assert set(rows) == {"nanoGPT", "runner"}
    for tool, cells in rows.items():
        compiled, ms, tokens, mfu, _, last_step, val, to_target, wall, exit_ = cells
        assert compiled == "no" and float(ms) > 0 and last_step == "300" and exit_ == "0", (tool, cells)
        tokens_per_second = float(tokens.replace(",", ""))
        assert tokens_per_second == pytest.approx(8 * 32 / (float(ms) / 1e3), rel=0.01)
        flops = {"nanoGPT": versus.nanogpt_flops_per_token, "runner": versus.runner_flops_per_token}[tool]
        assert float(mfu) == pytest.approx(100 * tokens_per_second * flops(versus.TINY) / 1e10, rel=0.02)
    assert float(rows["nanoGPT"][1]) >= 3.0  # the stand-in sleeps 3 ms a step
    assert float(rows["nanoGPT"][6]) == pytest.approx(3.1)  # its last "val loss"
    assert float(rows["nanoGPT"][7]) < float(rows["nanoGPT"][8])  # 3.5 reached (at step 100) before the end
    assert "tokens/s" in table and "Still different between the two" in table
    assert "== runner, compile False" in out.with_suffix(".log").read_text()


def test_run_without_prepare_says_so(tmp_path):
    with pytest.raises(SystemExit, match="run `python bench/versus_nanogpt.py prepare"):
        versus.main(["run", "--device", "cpu", "--nanogpt-dir", str(tmp_path / "none"), "--out", str(tmp_path / "x.md")])
