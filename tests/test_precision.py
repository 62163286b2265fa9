"""The bf16 fast path (autocast) computes the same function as plain fp32, up to bf16 precision."""
import pytest
import torch

from common.config import TrainConfig
from common.device import autocast_dtype
from common.precision import cache_path, resolve_precision
from common.errors import LadderError
from common.train import estimate_loss, train
from stages import STAGE_NAMES, STAGES

from conftest import tiny_configs


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_bf16_autocast_gives_the_fp32_loss_and_logits(stage):
    config, _ = tiny_configs(stage)
    torch.manual_seed(0)
    model = STAGES[stage].Model(config).eval()
    for p in model.parameters():  # weights far from init, so the function is not trivial
        p.data.normal_(0, 0.3)
    idx = torch.randint(0, config.vocab_size, (4, config.block_size))
    logits32, loss32 = model(idx, idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits16, loss16 = model(idx, idx)
    assert loss16.dtype == torch.float32  # the loss is always computed in fp32
    assert loss16.item() == pytest.approx(loss32.item(), rel=2e-2)
    scale = logits32.abs().max().item()
    assert (logits16.float() - logits32).abs().max().item() < 0.05 * scale + 1e-3


def test_bf16_training_matches_fp32_training(dataset):
    config, cfg = tiny_configs("layernorm")
    finals = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = STAGES["layernorm"].Model(config)
        run_cfg = TrainConfig(**{**cfg.__dict__, "precision": precision})
        finals[precision] = train(model, dataset, run_cfg, seed=0, progress=False).final["val_loss"]
    assert finals["bf16"] < 4.0  # it learns
    assert finals["bf16"] == pytest.approx(finals["fp32"], abs=0.05)


def test_precision_choice():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="resolved"):
        autocast_dtype(cpu, "auto")
    with pytest.raises(LadderError, match="precision"):
        TrainConfig(precision="fp16")


class _Timer:
    """A stand-in for the stopwatch: bf16 takes `ratio` times as long as fp32; counts its calls."""

    def __init__(self, ratio: float):
        self.ratio, self.calls = ratio, 0

    def __call__(self, model, batch_size, dtype) -> float:
        self.calls += 1
        return 0.01 * (self.ratio if dtype is torch.bfloat16 else 1.0)


@pytest.mark.parametrize("ratio, expected", [(0.5, "bf16"), (1.6, "fp32"), (1 / 1.05, "fp32")])
def test_auto_takes_the_faster_precision_measured_once_and_says_so(tmp_path, monkeypatch, capsys, ratio, expected):
    monkeypatch.setenv("GPT_LADDER_CACHE", str(tmp_path))
    model = STAGES["layernorm"].Model(tiny_configs("layernorm")[0])
    timer = _Timer(ratio)
    assert resolve_precision("auto", torch.device("cpu"), model, 16, timer=timer) == expected
    assert timer.calls >= 6 and "precision auto -> " in capsys.readouterr().out
    again = _Timer(1 / ratio)  # a second call reads the cache: no probe, no message, the same answer
    assert resolve_precision("auto", torch.device("cpu"), model, 16, timer=again) == expected
    assert again.calls == 0 and capsys.readouterr().out == ""
    assert cache_path().parent == tmp_path and expected in cache_path().read_text()
    bigger = STAGES["layernorm"].Model(tiny_configs("layernorm", n_embd=128, n_head=4)[0])
    opposite = _Timer(0.5 if expected == "fp32" else 2.0)
    assert resolve_precision("auto", torch.device("cpu"), bigger, 16, timer=opposite) != expected  # own shape class


def test_an_explicit_precision_is_never_probed(monkeypatch):
    model = STAGES["bigram"].Model(tiny_configs("bigram")[0])
    timer = _Timer(0.5)
    assert resolve_precision("fp32", torch.device("cpu"), model, 16, timer=timer) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu"), model, 16, timer=timer) == "bf16"
    assert timer.calls == 0
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (9, 0))  # an H100
    assert resolve_precision("auto", torch.device("cuda"), model, 16, timer=timer) == "bf16"  # no probe on CUDA
    assert timer.calls == 0


def test_auto_on_a_gpu_without_native_bf16_is_fp32(monkeypatch):
    """A T4 or V100 (compute capability 7.x) runs bf16 emulated, slower than fp32, though
    torch.cuda.is_bf16_supported() says yes there: auto takes fp32."""
    model = STAGES["bigram"].Model(tiny_configs("bigram")[0])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))  # a T4
    assert resolve_precision("auto", torch.device("cuda"), model, 16) == "fp32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))  # an A100
    assert resolve_precision("auto", torch.device("cuda"), model, 16) == "bf16"


def test_the_probe_leaves_the_random_numbers_of_the_run_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_LADDER_CACHE", str(tmp_path))
    model = STAGES["dropout"].Model(tiny_configs("dropout")[0])  # dropout draws random numbers
    torch.manual_seed(5)
    before = torch.get_rng_state()
    resolve_precision("auto", torch.device("cpu"), model, 4)
    assert torch.equal(torch.get_rng_state(), before)


def test_evaluation_honours_precision(dataset):
    config, cfg = tiny_configs("mlp")
    torch.manual_seed(0)
    model = STAGES["mlp"].Model(config)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    fp32 = estimate_loss(model, dataset, config.block_size, 4, 3, precision="fp32")
    bf16 = estimate_loss(model, dataset, config.block_size, 4, 3, precision="bf16")
    assert fp32 != bf16  # the setting reaches the model
    assert bf16["val"] == pytest.approx(fp32["val"], rel=2e-2)


def test_fused_adamw_equals_the_plain_adamw():
    """The fused AdamW kernel make_optimizer uses on CPU and CUDA is the same update as the loop form."""
    from common.train import make_optimizer

    config, cfg = tiny_configs("layernorm")
    torch.manual_seed(0)
    fused_model = STAGES["layernorm"].Model(config)
    torch.manual_seed(0)
    plain_model = STAGES["layernorm"].Model(config)
    fused = make_optimizer(fused_model, cfg)
    assert fused.defaults["fused"] is True
    plain = torch.optim.AdamW(plain_model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                              foreach=False)
    idx = torch.randint(0, config.vocab_size, (4, config.block_size))
    for _ in range(5):
        for model, optimizer in ((fused_model, fused), (plain_model, plain)):
            _, loss = model(idx, idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
