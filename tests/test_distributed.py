"""Scale-out with PyTorch's own engine, tested on the CPU with gloo (NCCL and multi-node are not
tested here): a torchrun launch of 2 processes trains the same run as one process, only rank 0
writes files, a stop on any rank stops every rank at the same step with one checkpoint, resume is
exact, bad launches get one error line, --jobs places each worker on its own GPU, and a rank leaves
the process group only once every rank is done."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from common.distributed import World, check_batch, start
from common.errors import LadderError
from common.jobs import default_jobs, worker_device
from test_interruption import _StopAfter

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ["--profile", "smoke", "--stage", "residual", "--seeds", "0", "--no-progress",
            "--set", "precision=fp32", "--max-iters", "60"]


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={nproc}", str(ROOT / "runner.py"), *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)


def record(out: Path, stage: str = "residual") -> dict:
    return json.loads(next(out.glob(f"smoke-*/runs/{stage}/seed0/run.json")).read_text())


def test_two_processes_train_the_same_run_as_one_and_only_rank_0_writes(tmp_path, corpus_path):
    launched = torchrun(*SETTINGS, "--data", str(corpus_path), "--out", str(tmp_path / "ddp"))
    assert launched.returncode == 0, launched.stderr[-3000:]
    single = subprocess.run([sys.executable, str(ROOT / "runner.py"), *SETTINGS, "--data", str(corpus_path),
                             "--out", str(tmp_path / "one")], capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr
    ddp, one = record(tmp_path / "ddp"), record(tmp_path / "one")
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    assert ddp["key"] == one["key"]  # the same training, so the same reuse key
    assert abs(ddp["final"]["val_loss"] - one["final"]["val_loss"]) < 1e-4
    assert launched.stdout.count("residual     seed 0: val") == 1  # one voice
    folder = next((tmp_path / "ddp").glob("smoke-*"))
    assert sorted(p.name for p in (folder / "runs" / "residual" / "seed0").iterdir()) == \
        ["checkpoint.pt", "curve.csv", "run.json", "sample.txt"]
    assert not [p for p in folder.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize("extra, message", [
    (["--jobs", "2"], "--jobs cannot be combined with a torchrun launch"),
    (["--set", "batch_size=7"], "batch_size 7 of stage residual is not divisible by the 2 processes"),
])
def test_a_bad_torchrun_launch_gets_one_error_line(tmp_path, corpus_path, extra, message):
    launched = torchrun(*SETTINGS, *extra, "--data", str(corpus_path), "--out", str(tmp_path))
    assert launched.returncode != 0
    ours = [line for line in launched.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and message in ours[0], launched.stderr[-2000:]
    assert "Traceback" not in launched.stdout
    assert not list(tmp_path.glob("*/runs"))


def _rank_main(rank: int, port: int, out: str, corpus: str, resume: bool, stop_after: int, report: str) -> None:
    """One rank of a 2-process run, as torchrun would start it; rank 1 alone may be asked to stop."""
    from common.data import load_dataset
    from common.distributed import finish
    from common.profiles import get_profile
    from common.run import RunContext, RunOptions, Stage, stage_fingerprints, train_run
    from stages import STAGES

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    world, device = start("cpu")
    options = RunOptions("smoke", {"max_iters": 120, "eval_interval": 20, "precision": "fp32"}, out, corpus, "cpu",
                         resume=resume, progress=False)
    stages = {name: Stage.from_module(name, module) for name, module in STAGES.items()}
    ctx = RunContext(options, get_profile("smoke"), stages, load_dataset(corpus), device, stage_fingerprints(stages),
                     world)
    stop = _StopAfter(stop_after) if (rank == 1 and stop_after) else (lambda: False)
    finished = train_run(ctx, "dropout", 0, stop)  # dropout: each rank draws masks, and a resume must draw the same
    Path(report, f"rank{rank}.json").write_text(json.dumps({"finished": finished}))
    finish(world)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranks(out: Path, corpus: Path, report: Path, resume: bool = False, stop_after: int = 0) -> list[bool]:
    report.mkdir(parents=True, exist_ok=True)
    ranks = mp.spawn(_rank_main, args=(_free_port(), str(out), str(corpus), resume, stop_after, str(report)),
                     nprocs=2, join=False)
    deadline = time.monotonic() + 180  # a rank left waiting for the other must fail the test, not hang it
    while not ranks.join(timeout=1):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail("the ranks did not finish within 180 s (one waiting for the other?)")
    return [json.loads((report / f"rank{r}.json").read_text())["finished"] for r in (0, 1)]


def test_a_stop_on_one_rank_stops_all_at_one_step_and_resume_is_exact(tmp_path, corpus_path):
    from common.checkpoint import load_checkpoint

    assert _ranks(tmp_path / "whole", corpus_path, tmp_path / "r1") == [True, True]
    assert _ranks(tmp_path / "cut", corpus_path, tmp_path / "r2", stop_after=50) == [False, False]
    path = next((tmp_path / "cut").glob("smoke-*/runs/dropout/seed0/checkpoint.pt"))
    checkpoint = load_checkpoint(path)
    assert checkpoint["step"] == 51 and not checkpoint["complete"]  # the step rank 1 stopped at, for both
    assert not path.with_name("run.json").exists()
    assert _ranks(tmp_path / "cut", corpus_path, tmp_path / "r3", resume=True) == [True, True]
    whole, resumed = record(tmp_path / "whole", "dropout"), record(tmp_path / "cut", "dropout")
    for key in ("step", "train_loss", "val_loss"):  # the same numbers, bit for bit (only the seconds differ)
        assert resumed["final"][key] == whole["final"][key]
    assert resumed["world_size"] == 2


def test_a_rank_trains_on_its_own_rows_of_the_global_batch():
    from common.config import TrainConfig
    from common.data import get_batch
    from common.train import make_optimizer, train_step
    from conftest import tiny_model

    data = torch.arange(500) % 65
    cfg = TrainConfig(batch_size=8, learning_rate=1e-9, precision="fp32")
    model = tiny_model("bigram")
    rows = World(1, 4).shard(8)
    loss = train_step(model, make_optimizer(model, cfg), data, cfg, 0, torch.Generator().manual_seed(3), rows)
    x, y = get_batch(data, model.config.block_size, 8, torch.Generator().manual_seed(3))
    assert torch.allclose(loss, model(x[rows], y[rows])[1], atol=1e-6)
    assert not torch.allclose(loss, model(x, y)[1], atol=1e-6)


def test_batch_must_divide_among_the_ranks():
    check_batch(8, World(0, 2), "bigram")
    with pytest.raises(LadderError, match="not divisible by the 3 processes"):
        check_batch(8, World(0, 3), "bigram")
    assert World(1, 4).shard(32) == slice(8, 16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_asking_for_cuda_without_it_under_torchrun_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LadderError, match="CUDA is not available here: use --device cpu"):
        start("cuda")


def test_jobs_place_each_worker_on_its_own_gpu(monkeypatch):
    cuda, cuda1, cpu = torch.device("cuda"), torch.device("cuda", 1), torch.device("cpu")
    assert [worker_device(cuda, i, 8) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_device(cuda, 9, 8) == "cuda:1"  # more workers than GPUs: they share, in turn
    assert worker_device(cuda, 3, 1) is None  # one GPU: every worker on it
    assert worker_device(cuda1, 3, 8) is None  # a GPU asked for by index: every worker on it
    assert worker_device(cpu, 3, 0) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert default_jobs(cuda) == 8 and default_jobs(cuda1) == 1


def test_leaving_the_group_waits_for_every_rank_at_the_normal_end_only(monkeypatch):
    """A rank leaving right after its last collective while its peer is still busy can be aborted by
    gloo, so the normal end passes a barrier first; after an error nobody waits for ranks that may never come."""
    import torch.distributed as dist

    from common.distributed import finish

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    finish(World(1, 2))
    assert calls == ["barrier", "destroy"]
    calls.clear()
    finish()
    assert calls == ["destroy"]
    calls.clear()
    finish(World())  # one process: no group to wait in
    assert calls == ["destroy"]
