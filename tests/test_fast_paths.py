"""The fused attention kernel (scaled_dot_product_attention) computes the same function as each
stage's explicit attention: same logits, same loss, same gradients, within float tolerance."""
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
