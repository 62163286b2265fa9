"""Configuration as data: frozen dataclasses, profiles, --set overrides, the schedule and the device."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from common.config import TrainConfig
from common.device import pick_device, set_seed
from common.errors import LadderError
from common.profiles import PROFILES, get_profile, make_configs, parse_overrides, settings_for
from common.train import learning_rate
from conftest import TINY, VOCAB
from stages import STAGE_NAMES, STAGES

STAGE_CONFIGS = [STAGES[n].Config for n in STAGE_NAMES]


# ----------------------------------------------------------------------------------------------
# TrainConfig and make_configs


def test_train_config_is_frozen():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.learning_rate = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_iters = 1
    assert cfg.learning_rate == 1e-3 and cfg.max_iters == 5000


@pytest.mark.parametrize("stage", STAGE_NAMES, ids=STAGE_NAMES)
def test_stage_configs_are_frozen(stage):
    config, _ = make_configs(STAGES[stage].Config, TINY, VOCAB)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.block_size = 99


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(max_iters=-1), dict(eval_interval=0), dict(eval_iters=0),
                                 dict(learning_rate=0.0), dict(learning_rate=-1e-3), dict(warmup_iters=-1),
                                 dict(grad_clip=-1.0), dict(weight_decay=-0.1)],
                         ids=lambda d: next(iter(d.items())).__repr__())
def test_train_config_rejects_bad_values(bad):
    with pytest.raises(LadderError):
        TrainConfig(**bad)


@pytest.mark.parametrize("bad", [dict(min_lr_ratio=-0.5), dict(learning_rate=float("nan")),
                                 dict(learning_rate=float("inf"))], ids=["min_lr_ratio<0", "lr=nan", "lr=inf"])
def test_train_config_rejects_nonsensical_schedules(bad):
    with pytest.raises(LadderError):
        TrainConfig(**bad)


def test_make_configs_ignores_fields_a_stage_lacks():
    model_config, train_config = make_configs(STAGES["bigram"].Config, TINY, VOCAB)
    assert not hasattr(model_config, "n_embd")
    assert not hasattr(model_config, "batch_size")
    assert dataclasses.asdict(model_config) == {"vocab_size": VOCAB, "block_size": TINY["block_size"],
                                                "init": TINY["init"]}
    assert train_config.batch_size == TINY["batch_size"]
    assert train_config.learning_rate == TINY["learning_rate"]
    assert train_config.max_iters == TINY["max_iters"]
    assert not hasattr(train_config, "block_size")


def test_make_configs_passes_every_field_a_stage_has():
    model_config, _ = make_configs(STAGES["dropout"].Config, TINY, VOCAB)
    assert dataclasses.asdict(model_config) == dict(vocab_size=VOCAB, block_size=8, init="gpt2", n_embd=16,
                                                    fused_attention=False, n_head=2, n_layer=2, residual=True,
                                                    dropout=0.1)


def test_make_configs_coerces_text_values():
    model_config, train_config = make_configs(STAGES["dropout"].Config,
                                              {"n_embd": "32", "n_head": "4", "dropout": "0", "learning_rate": "1e-2",
                                               "lr_decay": "yes"}, VOCAB)
    assert model_config.n_embd == 32 and isinstance(model_config.n_embd, int)
    assert model_config.dropout == 0.0 and isinstance(model_config.dropout, float)
    assert train_config.learning_rate == 0.01 and train_config.lr_decay is True


@pytest.mark.parametrize("stage", ["multi_head", "mlp", "residual", "layernorm", "dropout", "scaled"])
def test_n_embd_must_be_divisible_by_n_head(stage):
    with pytest.raises(LadderError, match="divisible"):
        make_configs(STAGES[stage].Config, {**TINY, "n_embd": 30, "n_head": 4}, VOCAB)
    with pytest.raises(LadderError):
        make_configs(STAGES[stage].Config, {**TINY, "n_head": 0}, VOCAB)


def test_single_head_does_not_care_about_n_head():
    config, _ = make_configs(STAGES["single_head"].Config, {**TINY, "n_embd": 30, "n_head": 4}, VOCAB)
    assert config.n_embd == 30 and not hasattr(config, "n_head")


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_probability_is_checked(p):
    with pytest.raises(LadderError, match="dropout"):
        make_configs(STAGES["dropout"].Config, {**TINY, "dropout": p}, VOCAB)


def test_wrongly_typed_setting_is_rejected():
    with pytest.raises(LadderError, match="n_embd"):
        make_configs(STAGES["averaging"].Config, {**TINY, "n_embd": 16.5}, VOCAB)
    with pytest.raises(LadderError, match="n_layer"):
        make_configs(STAGES["residual"].Config, {**TINY, "n_layer": True}, VOCAB)


# ----------------------------------------------------------------------------------------------
# profiles


def test_get_profile_unknown_name():
    with pytest.raises(LadderError) as info:
        get_profile("enormous")
    message = str(info.value)
    assert "'enormous'" in message
    for name in PROFILES:
        assert name in message


@pytest.mark.parametrize("profile", list(PROFILES), ids=list(PROFILES))
def test_every_profile_configures_every_stage(profile):
    prof = get_profile(profile)
    assert prof.name == profile
    for stage in STAGE_NAMES:
        model_config, train_config = make_configs(STAGES[stage].Config, settings_for(prof, stage), VOCAB)
        assert model_config.vocab_size == VOCAB
        assert isinstance(train_config, TrainConfig)


def test_settings_for_layers_profile_stage_and_overrides():
    prof = get_profile("lecture")
    assert settings_for(prof, "mlp")["n_embd"] == 32
    scaled = settings_for(prof, "scaled")
    assert (scaled["n_embd"], scaled["n_head"], scaled["n_layer"], scaled["block_size"]) == (384, 6, 6, 256)
    assert settings_for(prof, "scaled", {"n_layer": 2})["n_layer"] == 2
    assert prof.hyperparams["n_embd"] == 32  # the profile itself is unchanged


# ----------------------------------------------------------------------------------------------
# --set overrides


def test_parse_overrides_types_the_values():
    out = parse_overrides(["learning_rate=3e-4", "n_layer=2", "dropout=0", "lr_decay=true", "max-iters = 100 "],
                          STAGE_CONFIGS)
    assert out == {"learning_rate": 3e-4, "n_layer": 2, "dropout": 0.0, "lr_decay": True, "max_iters": 100}
    assert type(out["learning_rate"]) is float
    assert type(out["n_layer"]) is int
    assert type(out["dropout"]) is float
    assert type(out["lr_decay"]) is bool
    assert parse_overrides([], STAGE_CONFIGS) == {}


@pytest.mark.parametrize("pair", ["n_layers=2", "learningrate=1e-3", "vocab_size=100", "seed=3"])
def test_parse_overrides_rejects_unknown_names(pair):
    with pytest.raises(LadderError, match="unknown hyperparameter"):
        parse_overrides([pair], STAGE_CONFIGS)


@pytest.mark.parametrize("pair", ["n_layer=2.5", "n_layer=two", "learning_rate=fast", "lr_decay=maybe",
                                  "batch_size=", "n_embd=1e3"])
def test_parse_overrides_rejects_ill_typed_values(pair):
    name = pair.split("=")[0]
    with pytest.raises(LadderError, match=name):
        parse_overrides([pair], STAGE_CONFIGS)


@pytest.mark.parametrize("pair", ["learning_rate", "=3e-4", "", "n_layer 2"])
def test_parse_overrides_rejects_bad_syntax(pair):
    with pytest.raises(LadderError, match="name=value"):
        parse_overrides([pair], STAGE_CONFIGS)


def test_parse_overrides_knows_only_the_given_stage_configs():
    from stages import bigram

    with pytest.raises(LadderError, match="unknown hyperparameter"):
        parse_overrides(["n_embd=64"], [bigram.Config])
    assert parse_overrides(["block_size=16"], [bigram.Config]) == {"block_size": 16}


# ----------------------------------------------------------------------------------------------
# the learning-rate schedule


def test_learning_rate_constant_without_warmup_or_decay():
    cfg = TrainConfig(learning_rate=1e-3, max_iters=100)
    assert [learning_rate(s, cfg) for s in (0, 1, 50, 99, 100)] == [1e-3] * 5


def test_learning_rate_warmup_then_cosine():
    lr, warm, total, ratio = 1e-3, 10, 110, 0.1
    cfg = TrainConfig(learning_rate=lr, max_iters=total, warmup_iters=warm, lr_decay=True, min_lr_ratio=ratio)
    # linear warm-up: step s uses lr * (s + 1) / warmup_iters, reaching the peak on the last warm-up step
    assert learning_rate(0, cfg) == pytest.approx(lr / warm)
    assert learning_rate(4, cfg) == pytest.approx(lr * 5 / warm)
    assert learning_rate(warm - 1, cfg) == pytest.approx(lr)
    # cosine: the peak right after warm-up, half way at the middle, min_lr_ratio * lr at the end and after
    assert learning_rate(warm, cfg) == pytest.approx(lr)
    assert learning_rate(warm + (total - warm) // 2, cfg) == pytest.approx(lr * (ratio + (1 - ratio) * 0.5))
    assert learning_rate(total, cfg) == pytest.approx(lr * ratio)
    assert learning_rate(total + 50, cfg) == pytest.approx(lr * ratio)
    schedule = [learning_rate(s, cfg) for s in range(total + 1)]
    assert all(a < b for a, b in zip(schedule[:warm - 1], schedule[1:warm])), "warm-up increases"
    assert all(a > b for a, b in zip(schedule[warm:-1], schedule[warm + 1:])), "cosine decreases"
    assert min(schedule) == pytest.approx(lr * ratio) and max(schedule) == pytest.approx(lr)


def test_learning_rate_cosine_without_warmup():
    cfg = TrainConfig(learning_rate=2e-3, max_iters=100, lr_decay=True, min_lr_ratio=0.0)
    assert learning_rate(0, cfg) == pytest.approx(2e-3)
    assert learning_rate(50, cfg) == pytest.approx(1e-3)
    assert learning_rate(25, cfg) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)))
    assert learning_rate(100, cfg) == pytest.approx(0.0, abs=1e-15)


# ----------------------------------------------------------------------------------------------
# device and seeding


def test_pick_device_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    assert pick_device(None) == pick_device("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_pick_device_cuda_unavailable(name):
    with pytest.raises(LadderError, match="CUDA"):
        pick_device(name)
    assert pick_device("auto") != torch.device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_device_cuda_index_out_of_range():
    with pytest.raises(LadderError, match="does not exist"):
        pick_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name", ["bogus", "gpu", "cpu:x", "meta"])
def test_pick_device_rejects_unknown_devices(name):
    with pytest.raises(LadderError) as info:
        pick_device(name)
    assert repr(name) in str(info.value)


def test_set_seed_makes_torch_reproducible():
    set_seed(123)
    a = torch.rand(5)
    set_seed(123)
    b = torch.rand(5)
    set_seed(124)
    c = torch.rand(5)
    assert torch.equal(a, b) and not torch.equal(a, c)
