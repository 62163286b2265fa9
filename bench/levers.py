#!/usr/bin/env python3
"""Which speed levers pay on this machine: one row per lever, `scaled` at the nanoGPT CPU recipe.

    python bench/levers.py            # levers for `scaled` at the recipe, fp32 vs bf16 per stage, dropout's mask
    python bench/levers.py dropout    # only the last table
    python bench/levers.py profile    # where a step's time goes (torch.profiler): scaled with either dropout
                                      # mask, and the nanoGPT-shaped model, in bf16
    python bench/levers.py modern     # ms per step of each modern rung and piece (cpu profile, one thread),
                                      # GELU exact against its tanh approximation, Muon by shape
                                      # against torch.optim.Muon, qk_norm's per-head norm and rotation,
                                      # qk_norm compiled whole (torch.compile): its compile time and step

Each lever is switched on explicitly here (optimizer, attention, autocast, compile), whatever the
project's defaults are, so the table compares like with like. Median ms per training step.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import stages.dropout as dropout_stage  # noqa: E402
import stages.multi_head as multi_head  # noqa: E402
from bench.measure import build_model  # noqa: E402
from bench.plan import NANOGPT_RECIPE as RECIPE  # noqa: E402
from common.data import get_batch, load_dataset  # noqa: E402
from common.profiles import get_profile, settings_for  # noqa: E402

CPU_LADDER = settings_for(get_profile("cpu"), "dropout")  # every rung below scaled trains with these sizes
CPU_SCALED = settings_for(get_profile("cpu"), "scaled")


def fused_attention_forward(self, x):
    """MultiHeadAttention.forward with F.scaled_dot_product_attention instead of the explicit softmax."""
    B, T, C = x.shape
    hs = C // self.n_head
    k = self.key(x).view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
    q = self.query(x).view(B, T, self.n_head, hs).transpose(1, 2)
    v = self.value(x).view(B, T, self.n_head, hs).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
    return out.transpose(1, 2).reshape(B, T, C)


def median_ms(dataset, stage, settings, threads, fused_adamw=False, sdpa=False, bf16=False, compile=False,
              torch_dropout=False, steps=40, profile=False):
    """Median ms per training step; with profile=True, also prints torch.profiler's top operations."""
    torch.set_num_threads(threads)
    plain_forward, dropout_forward = multi_head.MultiHeadAttention.forward, dropout_stage.Dropout.forward
    if sdpa:
        multi_head.MultiHeadAttention.forward = fused_attention_forward
    if torch_dropout:  # PyTorch's own dropout kernel instead of the stage's uniform mask on the CPU
        dropout_stage.Dropout.forward = torch.nn.Dropout.forward
    try:
        torch.manual_seed(0)
        # the benchmark's own builder (stages and its reference models); autocast is this function's lever
        model, config, train_config = build_model(stage, dict(settings, precision="fp32"), dataset.tokenizer.vocab_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True if fused_adamw else None,
                                      foreach=None if fused_adamw else True)
        forward = torch.compile(model) if compile else model
        generator = torch.Generator().manual_seed(0)

        def step():
            x, y = get_batch(dataset.train, config.block_size, train_config.batch_size, generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                _, loss = forward(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(5):
            step()
        times = []
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile \
                else contextlib.nullcontext() as profiler:
            for _ in range(steps):
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
        if profile:
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), flush=True)
        return 1000 * sorted(times)[len(times) // 2]
    finally:
        multi_head.MultiHeadAttention.forward = plain_forward
        dropout_stage.Dropout.forward = dropout_forward


def modern_steps(steps: int = 60) -> None:
    """ms per training step of each modern rung and left-out piece at the cpu profile, on one thread (as each of
    the ladder's two parallel runs has), bf16 autocast, the model's own optimizer; then GELU against tanh-GELU, and
    the Muon step taken by shape against torch.optim.Muon's one matrix at a time."""
    import stages.gelu as gelu_stage
    import stages.muon as muon_stage
    from stages.muon import BatchedMuon
    from stages import MODERN_LADDER, MODERN_LEFT_OUT

    def ms_per_step(stage: str) -> float:
        model, optimizer, idx = modern_model(stage)
        return median_ms_of(lambda: bf16_step(model, model, optimizer, idx), steps)

    print("## modern rungs and pieces, cpu profile, 1 thread, bf16 autocast\n\n| stage | ms/step |\n|---|---:|")
    for stage in MODERN_LADDER + MODERN_LEFT_OUT:
        print(f"| {stage} | {ms_per_step(stage):.1f} |", flush=True)
    exact = ms_per_step("gelu")
    build = gelu_stage.FeedForward.build_activation
    gelu_stage.FeedForward.build_activation = lambda self, config: torch.nn.GELU(approximate="tanh")
    try:
        approximate = ms_per_step("gelu")
    finally:
        gelu_stage.FeedForward.build_activation = build
    print(f"\n## gelu rung: exact GELU {exact:.1f} ms/step, tanh approximation {approximate:.1f} ms/step")
    # the muon rung's optimizer: its matrices stepped together by shape (the stage's BatchedMuon) against
    # torch.optim.Muon stepping them one at a time (the same updates, tests/test_modern.py); alternated 3 times
    batched, one_at_a_time = [], []
    for _ in range(3):
        batched.append(ms_per_step("qk_norm"))
        muon_stage.BatchedMuon = torch.optim.Muon
        try:
            one_at_a_time.append(ms_per_step("qk_norm"))
        finally:
            muon_stage.BatchedMuon = BatchedMuon
    print(f"\n## qk_norm rung: Muon by shape (BatchedMuon) {sorted(batched)[1]:.1f} ms/step, torch.optim.Muon "
          f"{sorted(one_at_a_time)[1]:.1f} ms/step (median of 3 alternated measurements)")
    per_head_work(ms_per_step)
    whole_model_compiled(steps)


def modern_model(stage: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor]:
    """A stage at the cpu profile, seeded 0, with its own optimizer (make_optimizer: Muon where it is used) and one
    fixed batch of tokens, on one thread (as each of the ladder's two parallel runs has)."""
    from common.profiles import make_configs
    from common.train import make_optimizer
    from stages import STAGES

    torch.set_num_threads(1)
    config, train_config = make_configs(STAGES[stage].Config, settings_for(get_profile("cpu"), stage), 65)
    torch.manual_seed(0)
    model = STAGES[stage].Model(config)
    idx = torch.randint(0, 65, (train_config.batch_size, config.block_size))  # (B, T)
    return model, make_optimizer(model, train_config), idx


def bf16_step(forward, model: torch.nn.Module, optimizer: torch.optim.Optimizer, idx: torch.Tensor) -> None:
    """One training step as the cpu profile takes it: bf16 autocast, gradients clipped at 1.0. `forward` is the
    model itself or torch.compile(model)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = forward(idx, idx)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def median_ms_of(step, steps: int) -> float:
    """Median ms of `steps` calls of step(), after 5 untimed ones."""
    times = []
    for _ in range(steps + 5):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times[5:])[len(times[5:]) // 2]


def per_head_work(ms_per_step) -> None:
    """How much of the qk_norm rung's step its per-head work (the queries' and keys' RMSNorm, then their rotation)
    takes, and what stacking q and k saves: the step as the stage has it; with q and k stacked into one tensor, one
    norm and one rotation call (the same arithmetic elementwise); that stacked work compiled by torch.compile (its
    compilation, a few seconds, before the timed steps); with neither norm nor rotation (not a model: the most any
    faster form of that work could save). Median of 3 alternated measurements."""
    import torch.nn.functional as F

    import stages.qk_norm as qk_norm_stage
    from stages.residual import MultiHeadAttention as Plain
    from stages.rope import rotate

    def work(q, k, q_gain, k_gain, cos, sin, eps: float):
        """Both norms, then both rotations, on q and k stacked: (2, B, nh, T, hs), one call each."""
        qk = torch.stack((q, k))  # (2, B, nh, T, hs)
        gains = torch.stack((q_gain, k_gain))[:, None, None, None, :]  # (2, 1, 1, 1, hs)
        qk = F.rms_norm(qk.float(), (q.shape[-1],), None, eps) * gains
        return rotate(qk, cos, sin).unbind(0)

    def attend_with(per_head):
        def attend(self, q, k, v):
            T = q.shape[-2]
            q, k = per_head(q, k, self.q_norm.weight, self.k_norm.weight, self.cos[:T], self.sin[:T],
                            torch.finfo(q.dtype).eps)  # the eps nn.RMSNorm takes for this input
            return Plain.attend(self, q, k, v)
        return attend

    stacked = attend_with(work)
    compiled = attend_with(torch.compile(work))  # one generated C++ kernel for the element-wise work, both ways

    forms = {"as the stage has it": qk_norm_stage.MultiHeadAttention.attend, "q and k stacked": stacked,
             "q and k stacked, that work compiled (torch.compile)": compiled,
             "neither norm nor rotation": Plain.attend}
    times: dict[str, list[float]] = {name: [] for name in forms}
    try:
        for _ in range(3):
            for name, attend in forms.items():
                qk_norm_stage.MultiHeadAttention.attend = attend
                try:
                    times[name].append(ms_per_step("qk_norm"))
                except Exception as error:  # torch.compile without a working C++ compiler, say
                    times[name].append(float("nan"))
                    print(f"{name}: not measured ({type(error).__name__}: {str(error).splitlines()[0][:100]})")
    finally:
        qk_norm_stage.MultiHeadAttention.attend = forms["as the stage has it"]
    print("\n## qk_norm rung: its per-head norm and rotation (median of 3 alternated measurements)\n\n"
          "| form | ms/step |\n|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {sorted(values)[1]:.1f} |")  # nan where it could not be measured


def whole_model_compiled(steps: int = 60) -> None:
    """The qk_norm rung's training step with the whole model compiled (torch.compile(model), as `runner.py
    --compile` trains it), against the same step eager, one thread, bf16 autocast: the compiled step's median
    once compiled, and what compiling costs a run: its first training step and its first evaluation (eval mode,
    no gradients: a graph of its own), each timed with an empty compiler cache (a fresh TORCHINDUCTOR_CACHE_DIR),
    as the first run of a model on a machine pays it."""
    def measure(compiled: bool) -> tuple[float, float, float]:
        model, optimizer, idx = modern_model("qk_norm")
        forward = torch.compile(model) if compiled else model
        start = time.perf_counter()
        bf16_step(forward, model, optimizer, idx)
        first_step = time.perf_counter() - start
        forward.eval()
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            forward(idx, idx)
        first_eval = time.perf_counter() - start
        forward.train()
        return first_step, first_eval, median_ms_of(lambda: bf16_step(forward, model, optimizer, idx), steps)

    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as empty_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = empty_cache  # nothing compiled before: the cold cost
        try:
            eager_before = measure(compiled=False)[2]
            torch._dynamo.reset()
            first_step, first_eval, compiled_ms = measure(compiled=True)
            eager_after = measure(compiled=False)[2]
        except Exception as error:  # torch.compile without a working C++ compiler, say
            print(f"\n## qk_norm compiled whole: not measured ({type(error).__name__}: "
                  f"{str(error).splitlines()[0][:100]})")
            return
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
    print("\n## qk_norm rung compiled whole (torch.compile(model)), 1 thread, bf16 autocast, empty compiler cache\n\n"
          f"| | eager | compiled |\n|---|---:|---:|\n"
          f"| ms/step (median of {steps}; eager before and after) | {eager_before:.1f}, {eager_after:.1f} | "
          f"{compiled_ms:.1f} |\n| first training step, s (compiles the training graph) | | {first_step:.1f} |\n"
          f"| first evaluation, s (compiles the evaluation graph) | | {first_eval:.1f} |")


def main() -> None:
    if sys.argv[1:] == ["modern"]:
        return modern_steps()
    dataset = load_dataset()
    threads = torch.get_num_threads()
    if sys.argv[1:] == ["profile"]:
        for title, stage, settings, n, options in [
                ("scaled, cpu profile, PyTorch's dropout", "scaled", CPU_SCALED, 1, dict(torch_dropout=True)),
                ("scaled, cpu profile, the stage's uniform mask", "scaled", CPU_SCALED, 1, {}),
                ("nanoGPT-shaped model, nanoGPT recipe", "nanogpt-shaped", RECIPE, threads, {})]:
            print(f"## {title}: {n} thread(s), bf16 autocast, fused AdamW, 20 steps\n", flush=True)
            ms = median_ms(dataset, stage, settings, n, bf16=True, fused_adamw=True, steps=20, profile=True, **options)
            print(f"median {ms:.2f} ms per step\n", flush=True)
        return
    only_dropout = sys.argv[1:] == ["dropout"]
    if not only_dropout:
        print(f"## `scaled` at the nanoGPT recipe, {threads} threads\n\n| lever | ms/step |\n|---|---:|")
        for name, options in [("baseline (fp32, foreach AdamW, explicit attention)", {}),
                              ("fused AdamW", dict(fused_adamw=True)),
                              ("scaled_dot_product_attention", dict(sdpa=True)),
                              ("bf16 autocast", dict(bf16=True)),
                              ("bf16 autocast + fused AdamW", dict(bf16=True, fused_adamw=True)),
                              ("torch.compile + fused AdamW", dict(compile=True, fused_adamw=True))]:
            print(f"| {name} | {median_ms(dataset, 'scaled', RECIPE, threads, **options):.2f} |", flush=True)
        print("\n## fp32 vs bf16 autocast per stage (foreach AdamW)\n\n| setting | stage | threads | fp32 ms | bf16 ms | speed-up |"
              "\n|---|---|---:|---:|---:|---:|")
        for stage, settings, name in [("single_head", CPU_LADDER, "cpu"), ("mlp", CPU_LADDER, "cpu"),
                                      ("residual", CPU_LADDER, "cpu"), ("dropout", CPU_LADDER, "cpu"),
                                      ("scaled", CPU_SCALED, "cpu"), ("scaled", RECIPE, "recipe")]:
            for n in (1, threads):
                fp32 = median_ms(dataset, stage, settings, n)
                bf16 = median_ms(dataset, stage, settings, n, bf16=True)
                print(f"| {name} | {stage} | {n} | {fp32:.2f} | {bf16:.2f} | {fp32 / bf16:.2f}× |", flush=True)
    print("\n## dropout's mask: PyTorch's kernel (bernoulli_) vs uniform numbers >= p (bf16 autocast, fused AdamW)\n\n"
          "| setting | stage | threads | PyTorch's dropout ms | uniform mask ms | speed-up |\n|---|---|---:|---:|---:|---:|")
    for stage, settings, name in [("dropout", CPU_LADDER, "cpu"), ("scaled", CPU_SCALED, "cpu")]:
        for n in (1, threads):
            theirs = median_ms(dataset, stage, settings, n, bf16=True, fused_adamw=True, torch_dropout=True)
            ours = median_ms(dataset, stage, settings, n, bf16=True, fused_adamw=True)
            print(f"| {name} | {stage} | {n} | {theirs:.2f} | {ours:.2f} | {theirs / ours:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
