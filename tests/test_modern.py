"""The modern ladder's stages: each piece does what its file says, and only that.

The rungs (`MODERN_LADDER`: gelu, rope, muon, qk_norm, each a step from the rung before, each with a switch
that turns it back into that rung) and the pieces left out (`MODERN_LEFT_OUT`: rmsnorm, swiglu, no_bias,
relu2, zero_init, softcap, tied, each a step from the top rung). test_stages.py covers the lecture's nine.

Every test here uses the TINY settings of conftest.py (or, for a parameter count, builds the cpu profile's
model without training it): the file runs in seconds.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.config import TrainConfig
from common.profiles import PROFILES, make_configs, settings_for
from common.train import make_optimizer, train_step
from conftest import TINY, VOCAB, random_tokens, tiny_configs, tiny_model
from stages import ALL_STAGE_NAMES, LADDERS, MODERN_LADDER, MODERN_LEFT_OUT, STAGE_NAMES, STAGES, predecessor
from stages.muon import BatchedMuon

MODERN = MODERN_LADDER[1:] + MODERN_LEFT_OUT  # the eleven stages the modern work added
SWITCHES = {"gelu": "gelu", "rope": "rope", "muon": "muon", "qk_norm": "qk_norm"}  # rung -> its config switch
WITH_MUON = ["muon", "qk_norm"] + MODERN_LEFT_OUT  # every stage from the muon rung up

per_modern = pytest.mark.parametrize("stage", MODERN, ids=MODERN)


def _randomise(model: nn.Module, seed: int = 0, std: float = 0.3) -> nn.Module:
    """Replace the small initial weights by large random ones (attention far from uniform)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return model



def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _optimizers(opt) -> list[torch.optim.Optimizer]:
    """The torch optimizers behind what make_optimizer returned (one, or several stepped as one)."""
    return list(getattr(opt, "optimizers", [opt]))


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the parameters an optimizer holds, in its order (a parameter twice appears twice)."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _block_matrices(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if n.startswith("blocks.") and p.ndim == 2}


def _gradient_with_spread(shape: torch.Size, spread: float, seed: int) -> torch.Tensor:
    """A matrix whose singular values run from 1 down to 1/spread (log-spaced), random singular vectors."""
    g = torch.Generator().manual_seed(seed)
    m, n = shape
    r = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(m, r, generator=g))
    V, _ = torch.linalg.qr(torch.randn(n, r, generator=g))
    return U @ torch.diag(torch.logspace(0, -math.log10(spread), r)) @ V.T


# ----------------------------------------------------------------------------------------------
# the registry


def test_ladders_and_predecessors():
    """The lecture ladder is unchanged; each modern rung steps from the rung before, each left-out piece from
    the top rung; every stage is registered once."""
    assert STAGE_NAMES == ["bigram", "averaging", "single_head", "multi_head", "mlp", "residual", "layernorm",
                           "dropout", "scaled"]
    assert MODERN_LADDER == ["layernorm", "gelu", "rope", "muon", "qk_norm"]
    assert MODERN_LEFT_OUT == ["rmsnorm", "swiglu", "no_bias", "relu2", "zero_init", "softcap", "tied"]
    assert LADDERS == {"lecture": STAGE_NAMES, "modern": MODERN_LADDER}
    assert MODERN_LADDER[0] in STAGE_NAMES  # the modern ladder starts on a lecture rung
    assert [predecessor(n) for n in MODERN_LADDER[1:]] == MODERN_LADDER[:-1]
    assert {n: predecessor(n) for n in MODERN_LEFT_OUT} == {n: MODERN_LADDER[-1] for n in MODERN_LEFT_OUT}
    assert len(ALL_STAGE_NAMES) == len(set(ALL_STAGE_NAMES)) == len(STAGE_NAMES) + len(MODERN)
    assert list(STAGES) == ALL_STAGE_NAMES
    assert all(STAGES[n].LECTURE_VAL_LOSS is None for n in MODERN)  # the lecture never measured a modern piece


@per_modern
def test_config_adds_at_most_its_own_switch(stage):
    """A stage's Config is its predecessor's plus (for a rung) its one switch, or softcap's logit_cap."""
    fields = [f.name for f in dataclasses.fields(STAGES[stage].Config)]
    before = [f.name for f in dataclasses.fields(STAGES[predecessor(stage)].Config)]
    own = {**SWITCHES, "softcap": "logit_cap"}.get(stage)
    assert fields == before + ([own] if own else [])


# ----------------------------------------------------------------------------------------------
# the attention, gradients and training of all eleven stages (their module contract, forward shapes,
# initial loss and causality: test_stages.py, over every stage of both ladders)


@per_modern
def test_fused_attention_computes_the_same_logits(stage):
    """fused_attention=True (PyTorch's kernel, the gpu profile's) gives the explicit path's logits: the
    rotation and the query/key norms happen before either."""
    explicit = _randomise(tiny_model(stage), seed=2).double().eval()
    fused = tiny_model(stage, fused_attention=True).double().eval()
    fused.load_state_dict(explicit.state_dict())
    idx = random_tokens(3, TINY["block_size"], 8)
    with torch.no_grad():
        assert torch.allclose(fused(idx)[0], explicit(idx)[0], rtol=0, atol=1e-9)


@per_modern
def test_every_parameter_gets_a_gradient(stage):
    """No dead weights: every parameter receives a nonzero gradient from the loss."""
    model = _randomise(tiny_model(stage), seed=9, std=0.1)
    _, loss = model(random_tokens(4, TINY["block_size"], 1), random_tokens(4, TINY["block_size"], 2))
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"{stage}: no gradient reaches {dead}"


@per_modern
def test_a_few_steps_lower_the_loss(stage):
    """A few steps of the stage's own optimizer (make_optimizer: Muon where it is used) lower the loss on a
    small fixed batch."""
    model = tiny_model(stage)
    _, train_config = tiny_configs(stage, learning_rate=1e-2)
    optimizer = make_optimizer(model, train_config)
    idx, targets = random_tokens(8, TINY["block_size"], 7), random_tokens(8, TINY["block_size"], 8)
    losses = []
    for _ in range(12):
        _, loss = model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 0.5, f"{stage}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"


# ----------------------------------------------------------------------------------------------
# one piece at a time: each rung with its switch off is the rung before


def _same_input_logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(random_tokens(4, TINY["block_size"], 21))[0]


@pytest.mark.parametrize("init", ["gpt2", "pytorch"])
@pytest.mark.parametrize("stage", list(SWITCHES), ids=list(SWITCHES))
def test_switch_off_is_the_rung_before_exactly(stage, init):
    """A rung with its switch off builds the rung before exactly: the same state dict (keys and tensors)
    under the same seed, the same logits, and the same optimizers over the same parameters."""
    off = tiny_model(stage, seed=3, init=init, **{SWITCHES[stage]: False})
    before = tiny_model(predecessor(stage), seed=3, init=init)
    off_state, before_state = off.state_dict(), before.state_dict()
    assert list(off_state) == list(before_state)
    for key in before_state:
        assert torch.equal(off_state[key], before_state[key]), f"{stage} off: {key} differs from the rung before"
    assert torch.equal(_same_input_logits(off), _same_input_logits(before))
    _, train_config = tiny_configs(stage)
    opt_off, opt_before = make_optimizer(off, train_config), make_optimizer(before, train_config)
    assert type(opt_off) is type(opt_before)
    assert ([(type(o), _param_names(off, o)) for o in _optimizers(opt_off)]
            == [(type(o), _param_names(before, o)) for o in _optimizers(opt_before)])


@pytest.mark.parametrize("stage", list(SWITCHES), ids=list(SWITCHES))
def test_switch_on_differs_from_the_rung_before(stage):
    """With its switch on, a rung differs from the rung before: other parameters or other logits (gelu, rope,
    qk_norm), or another optimizer (muon, whose model is the rung before's)."""
    on, before = tiny_model(stage, seed=3), tiny_model(predecessor(stage), seed=3)
    if stage == "muon":
        _, train_config = tiny_configs(stage)
        kinds = {type(o) for o in _optimizers(make_optimizer(on, train_config))}
        assert BatchedMuon in kinds
        assert {type(o) for o in _optimizers(make_optimizer(before, train_config))} == {torch.optim.AdamW}
        return
    same_parameters = list(on.state_dict()) == list(before.state_dict())
    assert not same_parameters or not torch.allclose(_same_input_logits(on), _same_input_logits(before))


# ----------------------------------------------------------------------------------------------
# rope


def _offset_scores(attention: nn.Module, T: int, seed: int = 0) -> torch.Tensor:
    """(T, T): the score q_i . k_j that `attention` takes for one query vector and one key vector repeated at
    every position (captured as the arguments of its attention_weights(q, k), after any rotation)."""
    g = torch.Generator().manual_seed(seed)
    hs = attention.cos.shape[-1]
    q = torch.randn(hs, generator=g).expand(1, 1, T, hs)
    k = torch.randn(hs, generator=g).expand(1, 1, T, hs)
    v = torch.randn(1, 1, T, hs, generator=g)
    seen = []
    original = attention.attention_weights

    def capture(q, k):
        seen.append((q, k))
        return original(q, k)

    attention.attention_weights = capture
    try:
        with torch.no_grad():
            attention.attend(q, k, v)
    finally:
        del attention.attention_weights
    (q_seen, k_seen), = seen
    return (q_seen @ k_seen.transpose(-2, -1))[0, 0]


def test_rope_scores_depend_on_the_offset_alone():
    """In the rope rung's attention, the score of a query at position i and a key at j depends on i - j only
    (the same for both shifted alike), and a different offset gives a different score."""
    model = tiny_model("rope", block_size=16)
    T = 16
    for layer, block in enumerate(model.blocks):
        S = _offset_scores(block.sa, T, seed=layer)
        assert torch.allclose(S[1:, 1:], S[:-1, :-1], rtol=1e-5, atol=1e-5), "scores depend on absolute position"
        last_row = S[-1]  # the last query against keys at offsets T-1 .. 0
        assert last_row.max() - last_row.min() > 1e-3 * last_row.abs().max(), "the offset does not change the score"


def test_rope_rotation_of_a_single_pair_of_vectors():
    """With the module's cos/sin buffers and `rotate`: score(i + s, j + s) == score(i, j), and score(i, j) !=
    score(i, j + 1) - the relative-position property of rotary embeddings itself."""
    from stages.rope import rotate
    model = tiny_model("rope", block_size=16)
    att = model.blocks[0].sa
    hs = att.cos.shape[-1]
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, hs, generator=g), torch.randn(1, hs, generator=g)

    def score(i: int, j: int) -> float:
        qi = rotate(q, att.cos[i:i + 1], att.sin[i:i + 1])
        kj = rotate(k, att.cos[j:j + 1], att.sin[j:j + 1])
        return (qi * kj).sum().item()

    for i, j in [(5, 2), (7, 7), (3, 0), (9, 1)]:
        for s in (1, 3, 6):
            assert score(i + s, j + s) == pytest.approx(score(i, j), rel=1e-5, abs=1e-5)
        assert score(i, j + 1) != pytest.approx(score(i, j), rel=1e-3, abs=1e-3)
        assert (q * k).sum().item() == pytest.approx(score(j, j), rel=1e-5, abs=1e-5)  # offset 0: no rotation


def test_rope_has_no_position_table_unless_switched_off():
    """rope drops the learned position table; rope=False keeps it (and so uses positions the old way)."""
    names = [n for n, _ in tiny_model("rope").named_parameters()]
    assert not hasattr(tiny_model("rope"), "position_embedding_table")
    assert not any(n.startswith("position_embedding_table") for n in names)
    assert isinstance(tiny_model("rope", rope=False).position_embedding_table, nn.Embedding)


# ----------------------------------------------------------------------------------------------
# qk_norm


def _queries_and_keys(model: nn.Module, scale: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (q, k) reaching every head's scores, with the token embedding and the query and key weights
    multiplied by `scale`."""
    with torch.no_grad():
        model.token_embedding_table.weight.mul_(scale)
        for block in model.blocks:
            block.sa.query.weight.mul_(scale)
            block.sa.key.weight.mul_(scale)
    seen = []
    for block in model.blocks:
        original = block.sa.attention_weights

        def capture(q, k, original=original):
            seen.append((q.detach(), k.detach()))
            return original(q, k)

        block.sa.attention_weights = capture
    with torch.no_grad():
        model.eval()(random_tokens(4, TINY["block_size"], 3))
    assert len(seen) == len(model.blocks)
    return seen


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_qk_norm_gives_unit_rms_queries_and_keys(scale):
    """At initialisation each query and key reaching the scores has unit RMS over the head dimension, however
    large the embedding and the query/key weights; with qk_norm=False it has not."""
    for q, k in _queries_and_keys(tiny_model("qk_norm"), scale):
        for x in (q, k):
            rms = x.pow(2).mean(-1).sqrt()  # (B, nh, T)
            assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3), f"RMS {rms.min():.4f}..{rms.max():.4f}"
    for q, k in _queries_and_keys(tiny_model("qk_norm", qk_norm=False), scale):
        for x in (q, k):
            rms = x.pow(2).mean(-1).sqrt()
            assert ((rms - 1).abs() > 0.5).all(), "without qk_norm the RMS should follow the weights' scale"


# ----------------------------------------------------------------------------------------------
# muon


@pytest.mark.parametrize("stage", WITH_MUON, ids=WITH_MUON)
def test_muon_takes_the_block_matrices_and_adamw_the_rest(stage):
    """make_optimizer: Muon (the stage's BatchedMuon, a torch.optim.Muon) holds exactly the blocks' 2-D weights,
    AdamW every other parameter (embeddings, head, norms, biases), each parameter exactly once; both follow the TrainConfig's rate and
    decay, Muon's scaled to AdamW's update size."""
    model = tiny_model(stage)
    train_config = TrainConfig(learning_rate=2e-3, weight_decay=0.05)
    optimizers = _optimizers(make_optimizer(model, train_config))
    by_kind: dict[type, list[str]] = {}
    for opt in optimizers:
        by_kind.setdefault(type(opt), []).extend(_param_names(model, opt))
        for group in opt.param_groups:
            assert group["lr"] == 2e-3 and group["weight_decay"] == 0.05
            if isinstance(opt, torch.optim.Muon):
                assert group["adjust_lr_fn"] == "match_rms_adamw"
    assert set(by_kind) == {BatchedMuon, torch.optim.AdamW} and issubclass(BatchedMuon, torch.optim.Muon)
    everything = [n for n, _ in model.named_parameters()]
    held = by_kind[BatchedMuon] + by_kind[torch.optim.AdamW]
    assert sorted(held) == sorted(everything), "each parameter must be in exactly one optimizer, once"
    assert set(by_kind[BatchedMuon]) == _block_matrices(model)
    assert any(n.startswith("token_embedding_table") for n in by_kind[torch.optim.AdamW])


@pytest.mark.parametrize("stage", ["layernorm", "gelu", "rope"])
def test_rungs_before_muon_use_one_adamw(stage):
    """Below the muon rung (and with muon=False) make_optimizer is one AdamW over every parameter."""
    for model in [tiny_model(stage)] + ([tiny_model("muon", muon=False)] if stage == "rope" else []):
        opt = make_optimizer(model, TrainConfig())
        assert type(opt) is torch.optim.AdamW
        assert _param_names(model, opt) == [n for n, _ in model.named_parameters()]


def _one_step_update_spreads(muon: bool) -> list[float]:
    """max/min singular value of one step's update of each block matrix, for a gradient whose singular
    values spread 30x (weight decay 0, nothing else has a gradient)."""
    model = tiny_model("muon", muon=muon)
    optimizer = make_optimizer(model, TrainConfig(learning_rate=1e-2, weight_decay=0.0))
    matrices = {n: p for n, p in model.named_parameters() if n in _block_matrices(model)}
    before = {n: p.detach().clone() for n, p in matrices.items()}
    for i, p in enumerate(matrices.values()):
        p.grad = _gradient_with_spread(p.shape, 30.0, seed=i)
    optimizer.step()
    spreads = []
    for n, p in matrices.items():
        sv = torch.linalg.svdvals(p.detach() - before[n])
        assert sv.min() > 0
        spreads.append((sv.max() / sv.min()).item())
    return spreads


def test_muon_update_is_orthogonalised():
    """One Muon step moves a block matrix by an (almost) semi-orthogonal update: its singular values lie
    within a factor 2 of each other for a gradient whose own spread 30x (PyTorch's five Newton-Schulz steps
    leave them in about 0.7..1.15, so the ratio is about 1.7, not 1); AdamW's update (muon=False) does not."""
    muon = _one_step_update_spreads(muon=True)
    assert max(muon) < 2.0, f"Muon update singular value spreads {muon}"
    adamw = _one_step_update_spreads(muon=False)
    assert min(adamw) > 3.0, f"AdamW update singular value spreads {adamw}"  # the test can tell them apart


@pytest.mark.parametrize("options", [dict(adjust_lr_fn="match_rms_adamw"), dict(adjust_lr_fn="original"),
                                     dict(nesterov=False, weight_decay=0.0)], ids=["match_rms", "original", "plain"])
def test_batched_muon_steps_as_torch_muon(options):
    """The stage's BatchedMuon (matrices stepped together by shape) moves every matrix exactly as
    torch.optim.Muon (one at a time) over several steps: square, wide and tall matrices, momentum carried."""
    model = tiny_model("muon")
    twin = copy.deepcopy(model)
    settings = dict(lr=2e-2, weight_decay=0.1) | options
    matrices = [p for n, p in model.named_parameters() if n in _block_matrices(model)]
    twin_matrices = [p for n, p in twin.named_parameters() if n in _block_matrices(twin)]
    assert len({p.shape for p in matrices}) == 3 and any(p.shape[0] > p.shape[1] for p in matrices)
    start = [p.detach().clone() for p in matrices]
    ours, theirs = BatchedMuon(matrices, **settings), torch.optim.Muon(twin_matrices, **settings)
    idx = torch.randint(VOCAB, (4, TINY["block_size"]), generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        for net, opt in ((model, ours), (twin, theirs)):
            opt.zero_grad()
            net(idx, idx)[1].backward()
            opt.step()
    for a, b, before in zip(matrices, twin_matrices, start, strict=True):
        assert not torch.equal(a, before), "the step must move every matrix"
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_muon_optimizer_state_round_trip_resumes_exactly():
    """Training 2 steps, saving the model and optimizer state, loading both into a fresh model and optimizer,
    and taking one more step on each gives identical weights (Muon's momentum and AdamW's moments survive)."""
    model_config, train_config = tiny_configs("muon", precision="fp32", warmup_iters=1, lr_decay=True,
                                              max_iters=6, learning_rate=1e-2)
    data = torch.randint(VOCAB, (400,), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = STAGES["muon"].Model(model_config)
    optimizer = make_optimizer(model, train_config)
    generator = torch.Generator().manual_seed(1)
    for step in range(2):
        train_step(model, optimizer, data, train_config, step, generator)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_generator = generator.get_state()

    torch.manual_seed(99)  # another initialisation, overwritten by the load
    resumed = STAGES["muon"].Model(model_config)
    resumed.load_state_dict(saved_model)
    resumed_optimizer = make_optimizer(resumed, train_config)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed_generator = torch.Generator()
    resumed_generator.set_state(saved_generator)

    train_step(model, optimizer, data, train_config, 2, generator)
    train_step(resumed, resumed_optimizer, data, train_config, 2, resumed_generator)
    for (name, a), (_, b) in zip(model.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resuming"


def test_learning_rate_reaches_every_optimizer_after_a_load():
    """The core's schedule sets group["lr"] on make_optimizer's param_groups each step: those must be the
    groups of the optimizers that step, before and after load_state_dict (as on a resumed run)."""
    model = tiny_model("muon")
    optimizer = make_optimizer(model, TrainConfig(learning_rate=1e-3))
    for loaded in (False, True):
        if loaded:
            optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        for group in optimizer.param_groups:
            group["lr"] = 0.5 if loaded else 0.25
        stepping = [group["lr"] for opt in _optimizers(optimizer) for group in opt.param_groups]
        assert stepping == [0.5 if loaded else 0.25] * len(stepping), \
            f"the optimizers step with lr {stepping} after the schedule set it (loaded: {loaded})"


# ----------------------------------------------------------------------------------------------
# the pieces left out of the ladder


def test_rmsnorm_replaces_every_layernorm():
    """Every norm of the rmsnorm model is nn.RMSNorm (none is nn.LayerNorm), and at init (gain 1) each divides
    a vector by its root-mean-square: unit RMS, no centring."""
    model = tiny_model("rmsnorm")
    assert not [n for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    for block in model.blocks:
        assert isinstance(block.ln1, nn.RMSNorm) and isinstance(block.ln2, nn.RMSNorm)
    assert isinstance(model.ln_f, nn.RMSNorm)
    norms = [m for m in model.modules() if isinstance(m, nn.RMSNorm)]
    assert len(norms) == 4 * TINY["n_layer"] + 1  # ln1, ln2, q_norm, k_norm per block, and ln_f
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for norm in norms:
            x = torch.randn(4, TINY["block_size"], *norm.normalized_shape, generator=g) * 5 + 3
            y = norm(x)
            rms = y.pow(2).mean(-1).sqrt()
            assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)
            assert torch.allclose(y, x / x.pow(2).mean(-1, keepdim=True).sqrt(), atol=1e-5)  # not centred


def test_swiglu_computes_the_gated_product():
    """The feed-forward layer is w2(silu(w1 x) * w3 x), by hand; with the gate w3 zeroed it outputs w2's bias
    alone."""
    model = _randomise(tiny_model("swiglu"), seed=4)
    ff = model.blocks[0].ffwd
    x = torch.randn(3, TINY["block_size"], TINY["n_embd"], generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = F.linear(F.silu(F.linear(x, ff.w1.weight, ff.w1.bias)) * F.linear(x, ff.w3.weight, ff.w3.bias),
                            ff.w2.weight, ff.w2.bias)
        assert torch.allclose(ff(x), expected, atol=1e-6)
        ff.w3.weight.zero_()
        ff.w3.bias.zero_()
        assert torch.allclose(ff(x), ff.w2.bias.expand_as(x), atol=1e-7)


def test_swiglu_keeps_the_parameter_count():
    """SwiGLU's three matrices at 8/3 * n_embd hold within 2% of the parameters of the rung before, at the
    tiny config and at the cpu profile's."""
    tiny = {name: _n_params(tiny_model(name)) for name in ("swiglu", predecessor("swiglu"))}
    cpu = {}
    for name in ("swiglu", predecessor("swiglu")):
        config, _ = make_configs(STAGES[name].Config, settings_for(PROFILES["cpu"], name), VOCAB)
        cpu[name] = _n_params(STAGES[name].Model(config))
    for counts in (tiny, cpu):
        swiglu, before = counts["swiglu"], counts[predecessor("swiglu")]
        assert abs(swiglu - before) / before < 0.02, f"swiglu {swiglu} parameters against {before}"


def test_softcap_bounds_the_logits():
    """softcap's logits are cap * tanh(raw / cap) of the head's raw logits, so within the cap however large the
    head's weights; the cap is the config's logit_cap."""
    for cap in (15.0, 3.0):
        model = tiny_model("softcap", logit_cap=cap).eval()
        assert model.config.logit_cap == cap
        with torch.no_grad():
            for p in model.lm_head.parameters():
                p.mul_(1e3)
        linear, = [m for m in model.lm_head.modules() if isinstance(m, nn.Linear)]
        hidden = []
        model.ln_f.register_forward_hook(lambda module, args, out: hidden.append(out))
        with torch.no_grad():
            logits, _ = model(random_tokens(4, TINY["block_size"], 6))
            raw = linear(hidden[0])
        assert raw.abs().max() > 10 * cap  # the head's own logits go far past the cap
        assert logits.abs().max() <= cap  # tanh rounds to 1 in float32 far out: at most the cap
        assert logits.abs().max() > 0.9 * cap
        assert torch.allclose(logits, cap * torch.tanh(raw / cap), atol=1e-5)


def test_tied_embedding_and_head_are_one_tensor():
    """The token embedding and the head are one (vocab, n_embd) tensor, counted once: the model has
    vocab * n_embd parameters fewer than the rung before."""
    model = tiny_model("tied")
    assert model.token_embedding_table.weight is model.lm_head.weight
    assert model.token_embedding_table.weight.data_ptr() == model.lm_head.weight.data_ptr()
    params = list(model.parameters())
    assert len({id(p) for p in params}) == len(params)
    assert _n_params(model) == _n_params(tiny_model(predecessor("tied"))) - VOCAB * TINY["n_embd"]
    with torch.no_grad():  # a change through one name is seen through the other
        model.lm_head.weight[0, 0] = 7.0
    assert model.token_embedding_table.weight[0, 0].item() == 7.0


def test_zero_init_blocks_start_as_the_identity():
    """zero_init: at initialisation every block returns its input unchanged; the rung before's blocks do not."""
    x = torch.randn(3, TINY["block_size"], TINY["n_embd"], generator=torch.Generator().manual_seed(0))
    for init in ("gpt2", "pytorch"):
        with torch.no_grad():
            for block in tiny_model("zero_init", init=init).blocks:
                assert torch.equal(block(x), x)
            for block in tiny_model(predecessor("zero_init"), init=init).blocks:
                assert not torch.allclose(block(x), x, atol=1e-6)
