"""The stages: the contract and causality of every stage of both ladders; what each lecture stage adds,
training and generation for the nine (test_modern.py: what each modern piece adds)."""
from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from common.data import CharTokenizer
from common.errors import LadderError
from common.generate import generate, sample_text
from common.train import estimate_loss, split_loss, train
from conftest import REPO_ROOT, TINY, VOCAB, random_tokens, tiny_configs, tiny_model
from stages import ALL_STAGE_NAMES, STAGE_NAMES, STAGES, predecessor

EXPECTED_ORDER = ["bigram", "averaging", "single_head", "multi_head", "mlp", "residual", "layernorm",
                  "dropout", "scaled"]
WITH_DROPOUT = {"dropout", "scaled"}

per_stage = pytest.mark.parametrize("stage", STAGE_NAMES, ids=STAGE_NAMES)
per_step = pytest.mark.parametrize("stage", STAGE_NAMES[1:], ids=STAGE_NAMES[1:])  # stages with a predecessor
every_stage = pytest.mark.parametrize("stage", ALL_STAGE_NAMES, ids=ALL_STAGE_NAMES)  # both ladders, every piece


def _randomise(model: nn.Module, seed: int = 0, std: float = 0.5) -> nn.Module:
    """Replace the small initial weights by large random ones, so that attention is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return model



# ----------------------------------------------------------------------------------------------
# the registry


def test_registry_has_the_nine_stages_in_order():
    from stages import LADDERS
    assert STAGE_NAMES == LADDERS["lecture"] == EXPECTED_ORDER
    assert list(STAGES) == ALL_STAGE_NAMES and ALL_STAGE_NAMES[:9] == EXPECTED_ORDER  # the modern stages after them


def test_predecessor_follows_the_ladder():
    assert predecessor("bigram") is None
    assert [predecessor(n) for n in EXPECTED_ORDER[1:]] == EXPECTED_ORDER[:-1]


@every_stage
def test_stage_module_has_file_docstring_and_contract(stage):
    module = STAGES[stage]
    path = REPO_ROOT / "stages" / f"{stage}.py"
    assert path.is_file(), f"missing {path}"
    assert Path(module.__file__).resolve() == path.resolve()
    assert importlib.import_module(f"stages.{stage}") is module
    assert module.__doc__ and module.__doc__.strip(), f"stages/{stage}.py has no module docstring"
    assert isinstance(module.ADDS, str) and module.ADDS.strip()
    assert module.LECTURE_VAL_LOSS is None or (isinstance(module.LECTURE_VAL_LOSS, float)
                                               and 1.0 < module.LECTURE_VAL_LOSS < math.log(VOCAB))
    config, _ = tiny_configs(stage)
    assert isinstance(config, module.Config)
    assert isinstance(module.Model(config), nn.Module)


def test_lecture_losses():
    reported = {name: STAGES[name].LECTURE_VAL_LOSS for name in STAGE_NAMES}
    assert reported == {"bigram": 2.5, "averaging": None, "single_head": 2.4, "multi_head": 2.28, "mlp": 2.24,
                        "residual": 2.08, "layernorm": 2.06, "dropout": None, "scaled": 1.48}


def test_config_fields_accumulate_along_the_ladder():
    import dataclasses

    fields = {n: [f.name for f in dataclasses.fields(STAGES[n].Config)] for n in STAGE_NAMES}
    assert fields["bigram"] == ["vocab_size", "block_size", "init"]
    assert fields["averaging"] == ["vocab_size", "block_size", "init", "n_embd"]
    assert fields["single_head"] == fields["averaging"] + ["fused_attention"]
    assert fields["multi_head"] == fields["single_head"] + ["n_head"]
    assert fields["mlp"] == fields["multi_head"]
    assert fields["residual"] == fields["multi_head"] + ["n_layer", "residual"]
    assert fields["layernorm"] == fields["residual"]
    assert fields["dropout"] == fields["residual"] + ["dropout"]
    assert fields["scaled"] == fields["dropout"]


# ----------------------------------------------------------------------------------------------
# the forward contract


@every_stage
def test_forward_shapes_and_loss(stage):
    model = tiny_model(stage)
    B, T = 4, TINY["block_size"]
    idx, targets = random_tokens(B, T, 1), random_tokens(B, T, 2)
    logits, loss = model(idx, targets)
    assert logits.shape == (B, T, VOCAB)
    assert loss is not None and loss.ndim == 0 and torch.isfinite(loss)
    expected = nn.functional.cross_entropy(logits.reshape(B * T, VOCAB), targets.reshape(B * T))
    assert torch.allclose(loss, expected)

    logits2, loss2 = model(idx)
    assert loss2 is None
    assert logits2.shape == (B, T, VOCAB)

    # a context shorter than block_size works too
    short_logits, _ = model(idx[:, :3])
    assert short_logits.shape == (B, 3, VOCAB)


@every_stage
def test_initial_loss_is_uniform_guess_with_gpt2_init(stage):
    model = tiny_model(stage, init="gpt2").eval()
    idx, targets = random_tokens(32, TINY["block_size"], 3), random_tokens(32, TINY["block_size"], 4)
    with torch.no_grad():
        _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(VOCAB)) < 0.1, f"{stage}: initial loss {loss.item():.3f}, expected ~ln(65)"


@every_stage
def test_causality_future_tokens_never_change_the_past(stage):
    model = _randomise(tiny_model(stage)).double().eval()
    T = TINY["block_size"]
    idx = random_tokens(3, T, 5)
    with torch.no_grad():
        base, _ = model(idx)
        for t in range(T):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1 + t) % VOCAB  # a different token at position t
            out, _ = model(changed)
            assert torch.allclose(out[:, :t], base[:, :t], rtol=0, atol=1e-12), \
                f"{stage}: changing token {t} changed the logits of an earlier position"
            # the perturbation is real: position t itself sees its new token
            assert not torch.allclose(out[:, t], base[:, t], rtol=0, atol=1e-6), \
                f"{stage}: changing token {t} did not change the logits at position {t}"


@pytest.mark.parametrize("stage", ALL_STAGE_NAMES[1:], ids=ALL_STAGE_NAMES[1:])
def test_context_reaches_later_positions(stage):
    """Every stage but bigram uses its past: a change at position 0 reaches the last position."""
    model = _randomise(tiny_model(stage)).double().eval()
    idx = random_tokens(3, TINY["block_size"], 6)
    changed = idx.clone()
    changed[:, 0] = (changed[:, 0] + 1) % VOCAB
    with torch.no_grad():
        assert not torch.allclose(model(idx)[0][:, -1], model(changed)[0][:, -1], rtol=0, atol=1e-9)


def test_bigram_uses_no_context():
    model = _randomise(tiny_model("bigram")).eval()
    idx = random_tokens(3, TINY["block_size"], 7)
    changed = idx.clone()
    changed[:, :-1] = (changed[:, :-1] + 5) % VOCAB  # everything but the last token
    with torch.no_grad():
        assert torch.equal(model(idx)[0][:, -1], model(changed)[0][:, -1])


@per_stage
def test_init_is_a_setting(stage):
    """'gpt2' draws every weight matrix from N(0, 0.02); 'pytorch' keeps each layer's own default."""
    gpt2, pytorch = tiny_model(stage, init="gpt2"), tiny_model(stage, init="pytorch")
    embedding = gpt2.token_embedding_table.weight
    assert abs(embedding.std().item() - 0.02) < 0.004
    assert abs(pytorch.token_embedding_table.weight.std().item() - 1.0) < 0.1  # nn.Embedding's N(0, 1)
    for (name, a), (_, b) in zip(gpt2.named_modules(), pytorch.named_modules()):
        if isinstance(a, nn.Linear):
            bound = a.in_features ** -0.5  # nn.Linear's default: uniform in +-1/sqrt(fan_in)
            assert b.weight.abs().max() <= bound + 1e-6 and b.weight.std() > 0.3 * bound, name
            assert abs(a.weight.std().item() - 0.02) < 0.01, name
    with pytest.raises(LadderError, match="init must be one of pytorch, gpt2"):
        tiny_configs(stage, init="xavier")


# The rungs before `residual` read the logits off their last sub-layer, with no residual stream:
# zeroing the attention's value weights leaves nothing of the input for the head to read.
NO_STREAM = ["single_head", "multi_head", "mlp"]


def _zero_values(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("sa.value.weight"):
                p.zero_()
    return model


@pytest.mark.parametrize("stage", NO_STREAM + ["residual", "layernorm", "dropout"])
def test_only_a_residual_stream_carries_the_input_past_the_attention(stage):
    model = _zero_values(_randomise(tiny_model(stage), seed=11, std=0.3)).eval()
    idx = random_tokens(4, TINY["block_size"], 12)
    other = (idx + 7) % VOCAB
    with torch.no_grad():
        same = torch.allclose(model(idx)[0], model(other)[0], atol=1e-6)
    assert same == (stage in NO_STREAM)


def test_the_residual_ablation_removes_the_stream():
    model = _zero_values(_randomise(tiny_model("residual", residual=False), seed=11, std=0.3)).eval()
    idx = random_tokens(4, TINY["block_size"], 12)
    with torch.no_grad():
        assert torch.allclose(model(idx)[0], model((idx + 7) % VOCAB)[0], atol=1e-6)


def test_averaging_reads_the_token_beside_its_average_as_an_explicit_loop():
    """logits_t = lm_head(cat[x_t, mean(x_0..x_t)]), with x = token + position embedding."""
    model = _randomise(tiny_model("averaging"), seed=13, std=0.3).double().eval()
    idx = random_tokens(3, TINY["block_size"], 14)
    with torch.no_grad():
        x = model.token_embedding_table(idx) + model.position_embedding_table.weight[: idx.shape[1]]
        for t in range(idx.shape[1]):
            average = x[:, : t + 1].mean(dim=1)  # (B, C)
            expected = model.lm_head(torch.cat([x[:, t], average], dim=-1))  # (B, vocab)
            assert torch.allclose(model(idx)[0][:, t], expected, atol=1e-6)  # the weights 1/(t+1) are fp32


# ----------------------------------------------------------------------------------------------
# the pieces


@pytest.mark.parametrize("T", [8, 5, 1], ids=["T=block", "T=5", "T=1"])
def test_causal_average_equals_explicit_loop(T):
    from stages.averaging import CausalAverage

    config, _ = tiny_configs("averaging")
    avg = CausalAverage(config)
    torch.manual_seed(0)
    x = torch.randn(3, T, config.n_embd)
    expected = torch.stack([x[:, : t + 1].mean(dim=1) for t in range(T)], dim=1)  # (B, T, C)
    assert torch.allclose(avg(x), expected, atol=1e-6)


def test_head_equals_explicit_scaled_causal_attention():
    """out_t = sum_{j<=t} softmax_j(q_t . k_j / sqrt(head_size)) v_j, position by position."""
    from stages.single_head import Head

    config, _ = tiny_configs("single_head")
    hs = 4
    torch.manual_seed(0)
    head = _randomise(Head(config, head_size=hs), seed=2, std=0.5).double()
    x = torch.randn(2, config.block_size, config.n_embd, dtype=torch.float64)
    q, k, v = head.query(x), head.key(x), head.value(x)
    rows = []
    for t in range(config.block_size):
        scores = (q[:, t : t + 1] @ k[:, : t + 1].transpose(1, 2)).squeeze(1) / math.sqrt(hs)  # (B, t+1)
        weights = torch.softmax(scores, dim=-1)
        rows.append((weights.unsqueeze(-1) * v[:, : t + 1]).sum(dim=1))
    expected = torch.stack(rows, dim=1)
    with torch.no_grad():
        assert torch.allclose(head(x), expected, atol=1e-10)


@pytest.mark.parametrize("n_head", [1, 2, 4], ids=["1head", "2heads", "4heads"])
def test_batched_heads_equal_separate_heads(n_head):
    from stages.multi_head import MultiHeadAttention
    from stages.single_head import Head

    config, _ = tiny_configs("multi_head", n_head=n_head)
    hs = config.n_embd // n_head
    torch.manual_seed(0)
    mha = _randomise(MultiHeadAttention(config), seed=1, std=0.3)
    heads = []
    for h in range(n_head):
        head = Head(config, head_size=hs)
        rows = slice(h * hs, (h + 1) * hs)
        with torch.no_grad():
            head.key.weight.copy_(mha.key.weight[rows])
            head.query.weight.copy_(mha.query.weight[rows])
            head.value.weight.copy_(mha.value.weight[rows])
        heads.append(head)
    x = torch.randn(4, config.block_size, config.n_embd)
    with torch.no_grad():
        batched = mha(x)
        separate = torch.cat([head(x) for head in heads], dim=-1)
    assert batched.shape == (4, config.block_size, config.n_embd)
    assert torch.allclose(batched, separate, atol=1e-5)


# The parameters each stage adds to (or changes in) its predecessor's, for the TINY configuration
# (vocab 65, block 8, n_embd 16, n_head 2, n_layer 2). Written out so that any change shows.
V, T8, C, H4 = VOCAB, 8, 16, 64  # H4: the residual stage's feed-forward width, 4 * n_embd
BIGRAM_PARAMS = {"token_embedding_table.weight": (V, V)}
PARAMETER_STEPS = {
    "averaging": dict(  # the head reads the token's vector and the average side by side: 2C wide
        added={"position_embedding_table.weight": (T8, C), "lm_head.weight": (V, 2 * C), "lm_head.bias": (V,)},
        removed=set(),
        changed={"token_embedding_table.weight": (V, C)},
    ),
    "single_head": dict(  # the head reads the attention output alone: C wide
        added={"blocks.0.sa.key.weight": (C, C), "blocks.0.sa.query.weight": (C, C),
               "blocks.0.sa.value.weight": (C, C)},
        removed=set(), changed={"lm_head.weight": (V, C)},
    ),
    "multi_head": dict(added={}, removed=set(), changed={}),  # the same weights, split into heads
    "mlp": dict(
        added={"blocks.0.ffwd.net.0.weight": (C, C), "blocks.0.ffwd.net.0.bias": (C,)},
        removed=set(), changed={},
    ),
    "residual": dict(
        added={
            "blocks.0.sa.proj.weight": (C, C), "blocks.0.sa.proj.bias": (C,),
            "blocks.0.ffwd.net.2.weight": (C, H4), "blocks.0.ffwd.net.2.bias": (C,),
            "blocks.1.sa.key.weight": (C, C), "blocks.1.sa.query.weight": (C, C),
            "blocks.1.sa.value.weight": (C, C),
            "blocks.1.sa.proj.weight": (C, C), "blocks.1.sa.proj.bias": (C,),
            "blocks.1.ffwd.net.0.weight": (H4, C), "blocks.1.ffwd.net.0.bias": (H4,),
            "blocks.1.ffwd.net.2.weight": (C, H4), "blocks.1.ffwd.net.2.bias": (C,),
        },
        removed=set(),
        changed={"blocks.0.ffwd.net.0.weight": (H4, C), "blocks.0.ffwd.net.0.bias": (H4,)},
    ),
    "layernorm": dict(
        added={
            "blocks.0.ln1.weight": (C,), "blocks.0.ln1.bias": (C,),
            "blocks.0.ln2.weight": (C,), "blocks.0.ln2.bias": (C,),
            "blocks.1.ln1.weight": (C,), "blocks.1.ln1.bias": (C,),
            "blocks.1.ln2.weight": (C,), "blocks.1.ln2.bias": (C,),
            "ln_f.weight": (C,), "ln_f.bias": (C,),
        },
        removed=set(), changed={},
    ),
    "dropout": dict(added={}, removed=set(), changed={}),  # dropout has no parameters
    "scaled": dict(added={}, removed=set(), changed={}),  # only the configuration grows
}


def _param_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def test_bigram_parameters():
    assert _param_shapes(tiny_model("bigram")) == BIGRAM_PARAMS


def test_parameter_table_covers_every_step():
    assert set(PARAMETER_STEPS) == set(STAGE_NAMES[1:])


@per_step
def test_stage_adds_exactly_its_named_parameters(stage):
    prev = _param_shapes(tiny_model(predecessor(stage)))
    cur = _param_shapes(tiny_model(stage))
    expected = PARAMETER_STEPS[stage]
    added = {k: v for k, v in cur.items() if k not in prev}
    removed = {k for k in prev if k not in cur}
    changed = {k: v for k, v in cur.items() if k in prev and prev[k] != v}
    assert added == expected["added"]
    assert removed == expected["removed"]
    assert changed == expected["changed"]


def test_multi_head_changes_only_how_the_weights_are_used():
    """Same parameters as single_head; with the same weights, n_head=2 computes something else,
    and n_head=1 computes exactly the single head."""
    single = _randomise(tiny_model("single_head"), seed=3).eval()
    multi = tiny_model("multi_head").eval()
    multi.load_state_dict(single.state_dict())  # strict: same names and shapes
    one_head = tiny_model("multi_head", n_head=1).eval()
    one_head.load_state_dict(single.state_dict())
    idx = random_tokens(4, TINY["block_size"], 8)
    with torch.no_grad():
        out_single, out_multi, out_one = single(idx)[0], multi(idx)[0], one_head(idx)[0]
    assert not torch.allclose(out_single, out_multi, atol=1e-3)
    assert torch.allclose(out_single, out_one, atol=1e-5)


@per_stage
def test_every_parameter_is_used(stage):
    """Each parameter gets a gradient from the loss: no piece is built and then left out of forward."""
    model = _randomise(tiny_model(stage), seed=9, std=0.1).eval()
    idx, targets = random_tokens(8, TINY["block_size"], 14), random_tokens(8, TINY["block_size"], 15)
    _, loss = model(idx, targets)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{stage}: {name} is not used by forward"
        assert p.grad.abs().sum() > 0, f"{stage}: {name} gets a zero gradient"


# What one block of each stage computes, written out from its sub-modules.
BLOCK_FORMULAS = {
    "averaging": lambda b, x: torch.cat([x, b.sa(x)], dim=-1),
    "single_head": lambda b, x: b.sa(x),
    "multi_head": lambda b, x: b.sa(x),
    "mlp": lambda b, x: b.ffwd(b.sa(x)),
    "residual": lambda b, x: (lambda h: h + b.ffwd(h))(x + b.sa(x)),
    "layernorm": lambda b, x: (lambda h: h + b.ffwd(b.ln2(h)))(x + b.sa(b.ln1(x))),
    "dropout": lambda b, x: (lambda h: h + b.ffwd(b.ln2(h)))(x + b.sa(b.ln1(x))),
    "scaled": lambda b, x: (lambda h: h + b.ffwd(b.ln2(h)))(x + b.sa(b.ln1(x))),
}
FINAL_NORM = {"averaging": nn.Identity, "single_head": nn.Identity, "multi_head": nn.Identity, "mlp": nn.Identity,
              "residual": nn.Identity, "layernorm": nn.LayerNorm, "dropout": nn.LayerNorm, "scaled": nn.LayerNorm}
N_BLOCKS = {"averaging": 1, "single_head": 1, "multi_head": 1, "mlp": 1,
            "residual": TINY["n_layer"], "layernorm": TINY["n_layer"], "dropout": TINY["n_layer"], "scaled": TINY["n_layer"]}


@per_step
def test_model_computes_its_block_formula(stage):
    """logits = lm_head(ln_f(blocks(tok_emb + pos_emb))), each block as written in BLOCK_FORMULAS."""
    model = _randomise(tiny_model(stage), seed=10, std=0.2).eval()
    assert len(model.blocks) == N_BLOCKS[stage]
    assert type(model.ln_f) is FINAL_NORM[stage]
    idx = random_tokens(3, TINY["block_size"], 16)
    T = idx.shape[1]
    with torch.no_grad():
        x = model.token_embedding_table(idx) + model.position_embedding_table(torch.arange(T))
        for block in model.blocks:
            x = BLOCK_FORMULAS[stage](block, x)
        expected = model.lm_head(model.ln_f(x))
        assert torch.allclose(model(idx)[0], expected, atol=1e-5)


def _dropout_modules(model: nn.Module) -> dict[str, float]:
    return {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}


@per_stage
def test_dropout_modules_only_where_expected(stage):
    found = _dropout_modules(tiny_model(stage))
    if stage in WITH_DROPOUT:
        p = TINY["dropout"]
        assert found == {f"blocks.{i}.{where}": p for i in range(TINY["n_layer"])
                         for where in ("sa.attn_dropout", "sa.resid_dropout", "ffwd.net.3")}
    else:
        assert found == {}


@pytest.mark.parametrize("stage", sorted(WITH_DROPOUT), ids=sorted(WITH_DROPOUT))
def test_every_dropout_module_is_applied(stage):
    """Each nn.Dropout is called in forward (a module built but never applied would drop nothing)."""
    model = tiny_model(stage).train()
    calls = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout):
            calls[name] = 0
            module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls[name] + 1))
    with torch.no_grad():
        model(random_tokens(2, TINY["block_size"], 17))
    assert len(calls) == 3 * TINY["n_layer"]
    assert calls == {name: 1 for name in calls}


@pytest.mark.parametrize("p", [0.0, 0.1], ids=["p=0", "p=0.1"])
def test_dropout_stage_in_eval_mode_equals_layernorm(p):
    layernorm = _randomise(tiny_model("layernorm"), seed=4, std=0.2).eval()
    drop = tiny_model("dropout", dropout=p).eval()
    drop.load_state_dict(layernorm.state_dict())  # strict: the same parameters
    idx = random_tokens(4, TINY["block_size"], 9)
    with torch.no_grad():
        assert torch.allclose(drop(idx)[0], layernorm(idx)[0], atol=1e-6)
    if p == 0.0:  # with p = 0 dropout is the identity in training mode too
        drop.train()
        layernorm.train()
        with torch.no_grad():
            assert torch.allclose(drop(idx)[0], layernorm(idx)[0], atol=1e-6)


def test_scaled_is_the_dropout_architecture():
    scaled, dropout = STAGES["scaled"], STAGES["dropout"]
    assert scaled.Model is dropout.Model
    assert scaled.Config is dropout.Config
    assert _param_shapes(tiny_model("scaled")) == _param_shapes(tiny_model("dropout"))


@per_stage
def test_dropout_active_in_train_mode_only(stage):
    model = tiny_model(stage, dropout=0.3)
    idx = random_tokens(4, TINY["block_size"], 10)
    with torch.no_grad():
        model.train()
        torch.manual_seed(1)
        a = model(idx)[0]
        b = model(idx)[0]
        model.eval()
        c = model(idx)[0]
        d = model(idx)[0]
    assert torch.equal(c, d), "eval mode must be deterministic"
    if stage in WITH_DROPOUT:
        assert not torch.allclose(a, b), f"{stage}: dropout should make two training passes differ"
        assert not torch.allclose(a, c)
    else:
        assert torch.equal(a, b), f"{stage} has no dropout: training passes should be identical"
        assert torch.allclose(a, c)


# ----------------------------------------------------------------------------------------------
# training


@per_stage
def test_short_training_run_lowers_the_loss(stage, dataset):
    config, train_cfg = tiny_configs(stage)
    torch.manual_seed(0)
    model = STAGES[stage].Model(config)
    result = train(model, dataset, train_cfg, seed=0, progress=False, name=stage)
    curve = result.state.curve
    assert [row["step"] for row in curve] == [0, train_cfg.max_iters]
    assert result.state.step == train_cfg.max_iters
    first, last = curve[0], curve[-1]
    assert abs(first["val_loss"] - math.log(VOCAB)) < 0.1
    assert last["val_loss"] < first["val_loss"] - 0.2, f"{stage}: val loss {first['val_loss']:.3f} -> {last['val_loss']:.3f}"
    assert last["train_loss"] < first["train_loss"] - 0.2
    # the reported loss is the model's: evaluating again gives the same numbers (the final val loss
    # scores the whole validation split; the train loss the same seeded batches)
    again = estimate_loss(model, dataset, config.block_size, train_cfg.batch_size, train_cfg.eval_iters, seed=0,
                          precision=train_cfg.precision)
    assert again["train"] == pytest.approx(last["train_loss"], abs=1e-5)
    whole = split_loss(model, dataset.val, config.block_size, train_cfg.batch_size, train_cfg.precision)
    assert whole == pytest.approx(last["val_loss"], abs=1e-5)
    assert model.training, "train() leaves the model in training mode"


# ----------------------------------------------------------------------------------------------
# generation


def _greedy(model: nn.Module, idx: torch.Tensor, n: int) -> torch.Tensor:
    block_size = model.config.block_size
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(idx[:, -block_size:])
            idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


@per_stage
def test_generate_returns_valid_tokens_of_requested_length(stage):
    model = _randomise(tiny_model(stage), seed=5, std=0.3)
    model.train()
    block = TINY["block_size"]
    for prompt_len in (1, block, 3 * block + 2):  # the last is longer than the context: cropped
        idx = random_tokens(2, prompt_len, 11)
        out = generate(model, idx, 20, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, prompt_len + 20)
        assert out.dtype == torch.long
        assert torch.equal(out[:, :prompt_len], idx), "the prompt is kept unchanged"
        assert int(out.min()) >= 0 and int(out.max()) < VOCAB
    assert model.training, "generate restores the training mode"


@per_stage
def test_generate_is_reproducible_and_top_k_1_is_greedy(stage):
    model = _randomise(tiny_model(stage), seed=6, std=0.3)
    block = TINY["block_size"]
    idx = random_tokens(2, 2 * block + 3, 12)  # longer than block_size
    run = lambda seed, **kw: generate(model, idx, 30, generator=torch.Generator().manual_seed(seed), **kw)
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1)), "different seeds should sample different text"
    greedy = _greedy(model.eval(), idx, 30)
    assert torch.equal(run(0, top_k=1), greedy)
    assert torch.equal(run(1, top_k=1), greedy)
    assert torch.equal(run(2, top_k=1, temperature=0.5), greedy)


def test_generate_crops_the_context_to_block_size():
    """With a prompt longer than block_size, only the last block_size tokens matter."""
    model = _randomise(tiny_model("layernorm"), seed=7, std=0.3)
    block = TINY["block_size"]
    idx = random_tokens(1, 3 * block, 13)
    other = idx.clone()
    other[:, :-block] = (other[:, :-block] + 7) % VOCAB  # differ only outside the last window
    a = generate(model, idx, 10, generator=torch.Generator().manual_seed(0))
    b = generate(model, other, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a[:, -10:], b[:, -10:])


@pytest.mark.parametrize("temperature", [0.0, -1.0], ids=["zero", "negative"])
def test_generate_rejects_non_positive_temperature(temperature):
    model = tiny_model("bigram")
    with pytest.raises(LadderError, match="temperature"):
        generate(model, random_tokens(1, 2), 5, temperature=temperature)
    with pytest.raises(LadderError, match="temperature"):
        sample_text(model, CharTokenizer("\nab"), 5, temperature=temperature)


def test_generate_rejects_non_positive_top_k():
    with pytest.raises(LadderError, match="top-k"):
        generate(tiny_model("bigram"), random_tokens(1, 2), 5, top_k=0)


@per_stage
def test_sample_text(stage, dataset):
    tok = dataset.tokenizer
    model = _randomise(tiny_model(stage), seed=8, std=0.3)
    text = sample_text(model, tok, max_new_tokens=40, seed=3)
    assert isinstance(text, str) and len(text) == 40
    assert set(text) <= set(tok.chars)
    assert sample_text(model, tok, max_new_tokens=40, seed=3) == text
    prompt = "ROMEO:\nWherefore art thou, my good lord?"  # longer than block_size
    with_prompt = sample_text(model, tok, max_new_tokens=25, prompt=prompt, seed=3)
    assert with_prompt.startswith(prompt) and len(with_prompt) == len(prompt) + 25
    greedy_a = sample_text(model, tok, max_new_tokens=25, prompt=prompt, seed=1, top_k=1)
    greedy_b = sample_text(model, tok, max_new_tokens=25, prompt=prompt, seed=2, top_k=1)
    assert greedy_a == greedy_b
    with pytest.raises(LadderError):
        sample_text(model, tok, max_new_tokens=5, prompt="caf\u00e9")  # not in the vocabulary


@pytest.mark.parametrize("stage", ["mlp", "dropout"], ids=["mlp", "dropout"])
def test_stopped_and_resumed_run_equals_uninterrupted_run(stage, dataset):
    """Stopping with should_stop and resuming from the captured state gives the very same run
    (optimizer state, batch generator and, for dropout, the global generator all restored)."""
    import copy

    config, cfg = tiny_configs(stage, max_iters=30, eval_interval=10, eval_iters=2, batch_size=4)
    torch.manual_seed(0)
    straight = STAGES[stage].Model(config)
    torch.manual_seed(0)
    interrupted = STAGES[stage].Model(config)
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), interrupted.parameters()))

    torch.manual_seed(123)
    full = train(straight, dataset, cfg, seed=0, progress=False)
    assert not full.stopped

    calls = {"n": 0}

    def stop_after_13():
        calls["n"] += 1
        return calls["n"] >= 13  # asked after every step (evaluation steps too): the 13th call -> step 13

    torch.manual_seed(123)
    part = train(interrupted, dataset, cfg, seed=0, progress=False, should_stop=stop_after_13)
    assert part.stopped and part.state.step == 13
    assert [row["step"] for row in part.state.curve] == [0, 10]
    saved_state = copy.deepcopy(part.state)
    saved_weights = copy.deepcopy(interrupted.state_dict())

    torch.manual_seed(999)  # whatever happens in between must not matter
    torch.rand(100)
    resumed_model = STAGES[stage].Model(config)
    resumed_model.load_state_dict(saved_weights)
    resumed = train(resumed_model, dataset, cfg, seed=0, state=saved_state, progress=False)
    assert not resumed.stopped and resumed.state.step == cfg.max_iters
    assert [row["step"] for row in resumed.state.curve] == [0, 10, 20, 30]
    for a, b in zip(full.state.curve, resumed.state.curve):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
    for (name, a), b in zip(straight.named_parameters(), resumed_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), f"{name} differs after resuming"
