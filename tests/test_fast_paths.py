"""The fast paths compute what the plain computation does.

- The fused attention kernel (scaled_dot_product_attention) and each stage's explicit attention:
  same logits, same loss, same gradients, within float tolerance.
- The dropout stage's CPU mask (uniform numbers >= p) and PyTorch's dropout: the same operation,
  so the same statistics (share dropped, scale of the rest), the same gradient for a given mask,
  the identity in evaluation, and PyTorch's own kernel on other devices."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY, VOCAB, tiny_model
from stages import STAGE_NAMES

WITH_ATTENTION = STAGE_NAMES[STAGE_NAMES.index("single_head"):]


def _pair(stage: str, **settings):
    """The same weights in the explicit (math) form and the fused form."""
    plain = tiny_model(stage, seed=3, **settings)
    fused = tiny_model(stage, seed=3, fused_attention=True, **settings)
    with torch.no_grad():
        for p in plain.parameters():  # weights far from init, so that attention is far from uniform
            p.normal_(0, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    fused.load_state_dict(plain.state_dict())
    return plain, fused


def _tokens(seed: int):
    return torch.randint(VOCAB, (4, TINY["block_size"]), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("stage", WITH_ATTENTION)
def test_fused_attention_gives_the_same_logits_loss_and_gradients(stage):
    plain, fused = _pair(stage)
    plain.eval(), fused.eval()  # dropout off: the two compute the same function
    idx, targets = _tokens(1), _tokens(2)
    logits_a, loss_a = plain(idx, targets)
    logits_b, loss_b = fused(idx, targets)
    torch.testing.assert_close(logits_b, logits_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    loss_a.backward(), loss_b.backward()
    for (name, a), b in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("stage", ["dropout", "scaled"])
def test_fused_attention_drops_attention_weights_in_training_only(stage):
    plain, fused = _pair(stage, dropout=0.0)
    plain.train(), fused.train()
    idx = _tokens(3)
    torch.testing.assert_close(fused(idx)[0], plain(idx)[0], rtol=1e-4, atol=1e-5)  # p = 0: the same
    _, fused = _pair(stage, dropout=0.5)
    attention = next(m for m in fused.modules() if hasattr(m, "attention_dropout"))
    fused.train()
    assert attention.attention_dropout() == 0.5
    assert not torch.allclose(fused(idx)[0], fused(idx)[0])  # masks drawn afresh each pass
    fused.eval()
    assert attention.attention_dropout() == 0.0
    torch.testing.assert_close(fused(idx)[0], fused(idx)[0])


def test_cpu_dropout_is_dropout():
    """Each value zeroed with probability p, the rest scaled by 1 / (1 - p), as nn.Dropout does."""
    from stages.dropout import Dropout

    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 0.5  # no zeros of its own
    for p in (0.1, 0.2, 0.5):
        ours, theirs = Dropout(p)(x), torch.nn.Dropout(p)(x)
        for out in (ours, theirs):
            dropped = (out == 0).float().mean().item()
            assert abs(dropped - p) < 0.003  # 1e6 draws: the standard error is below 0.0005
            kept = out != 0
            torch.testing.assert_close(out[kept], x[kept] / (1 - p))
        assert abs(ours.mean().item() - theirs.mean().item()) < 0.003  # the expectation is kept: E[out] = x


def test_cpu_dropout_gradient_is_the_mask_and_evaluation_is_the_identity():
    from stages.dropout import Dropout

    drop = Dropout(0.25)
    x = torch.randn(64, 32, requires_grad=True)
    out = drop(x)
    out.sum().backward()
    kept = (out != 0).float()
    torch.testing.assert_close(x.grad, kept / 0.75)  # the gradient passes where the value did
    assert not torch.equal(drop(x), drop(x))  # a fresh mask each call
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_cpu_dropout_keeps_autocasts_dtype_and_follows_the_seed():
    from stages.dropout import Dropout

    drop = Dropout(0.2)
    x = torch.randn(8, 16).to(torch.bfloat16)
    assert drop(x).dtype == torch.bfloat16
    torch.manual_seed(5)
    a = drop(x)
    torch.manual_seed(5)
    assert torch.equal(drop(x), a)  # reproducible from the global seed, as nn.Dropout is


def test_dropout_uses_pytorchs_kernel_off_the_cpu(monkeypatch):
    """On CUDA or MPS the module defers to nn.Dropout's fused kernel (checked here without a GPU)."""
    from stages.dropout import Dropout

    calls = []
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda x, p, training, inplace: calls.append(p) or x)

    class NotOnCPU(torch.Tensor):
        @property
        def device(self):
            return torch.device("meta")

    drop = Dropout(0.3)
    drop(torch.randn(4, 4))
    assert calls == []  # on the CPU: the uniform mask
    drop(torch.randn(4, 4).as_subclass(NotOnCPU))
    assert calls == [0.3]


def test_cpu_dropout_in_bf16_keeps_values_at_the_scale_torch_dropout_keeps_them():
    """In bf16 (autocast's activations) the uniform mask scales what it keeps by 1 / (1 - p) rounded to bf16, as
    F.dropout does: 1.109375 at p = 0.1 (test_cpu_dropout_is_dropout: the same in fp32)."""
    from stages.dropout import Dropout
    ones = torch.ones(10_000, dtype=torch.bfloat16)
    ours, theirs = Dropout(0.1).train()(ones), torch.nn.functional.dropout(ones, 0.1, training=True)
    assert ours.unique().tolist() == theirs.unique().tolist() == [0.0, 1.109375]
