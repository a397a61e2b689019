import math

import pytest
import torch

from trainer.loss import contrastive_loss
from trainer.model import CLIP, LOGIT_SCALE_INIT, model_config, parameter_groups

CONFIG = model_config("tiny", vocab_size=300, context_length=16)


def test_loss_matches_hand_computed_reference():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # scale 2: logits per image [[2, 1.2], [0, 1.6]]; per text its transpose [[2, 0], [1.2, 1.6]].
    def ce(correct, other):
        return math.log(1 + math.exp(other - correct))
    expected = ((ce(2, 1.2) + ce(1.6, 0)) / 2 + (ce(2, 0) + ce(1.6, 1.2)) / 2) / 2
    loss = contrastive_loss(image, text, torch.tensor(2.0))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_live_rows_split_every_gradient_exactly():
    """Two "ranks", each live on its own half, add up to the gradients of one process."""
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(8, 5), dim=-1).requires_grad_()
    text = torch.nn.functional.normalize(torch.randn(8, 5), dim=-1).requires_grad_()
    log_scale = torch.tensor(2.5, requires_grad=True)
    full = contrastive_loss(image, text, log_scale.exp())
    full_grads = torch.autograd.grad(full, [image, text, log_scale])
    summed = [torch.zeros_like(g) for g in full_grads]
    for live in (slice(0, 4), slice(4, 8)):
        # Rows outside the live slot are constants, as if gathered from another rank.
        mask = torch.zeros(8, 1, dtype=torch.bool)
        mask[live] = True
        img = torch.where(mask, image, image.detach())
        txt = torch.where(mask, text, text.detach())
        part = contrastive_loss(img, txt, log_scale.exp(), live)
        assert part.item() == pytest.approx(full.item(), rel=1e-6)
        for total, grad in zip(summed, torch.autograd.grad(part, [image, text, log_scale]), strict=True):
            total += grad
    for mine, reference in zip(summed, full_grads, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-7)


def test_temperature_initialised_and_clamped():
    model = CLIP(CONFIG)
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_INIT)
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)      # the forward pass never exceeds 100
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    # An optimiser step pushing the temperature up stays clamped after the training loop's clamp.
    opt = torch.optim.SGD([model.logit_scale], lr=10.0)
    (-model.logit_scale.exp()).backward()
    opt.step()
    model.clamp_logit_scale()
    assert model.logit_scale.item() <= math.log(100) + 1e-6


def test_no_weight_decay_on_gains_biases_and_temperature():
    model = CLIP(CONFIG)
    decay, no_decay = parameter_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert {"logit_scale", "visual.ln_pre.weight", "visual.ln_pre.bias", "text.ln_final.weight",
            "visual.transformer.blocks.0.attn.qkv.bias"} <= exempt
    assert all(p.ndim < 2 or names[id(p)] == "logit_scale" for p in no_decay["params"])
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_forward_shapes_normalisation_and_causal_text():
    torch.manual_seed(0)
    model = CLIP(CONFIG).eval()
    images = torch.randint(0, 256, (3, 3, CONFIG.image_size, CONFIG.image_size), dtype=torch.uint8)
    text = torch.zeros(3, CONFIG.context_length, dtype=torch.long)
    text[:, 0], text[:, 1], text[:, 2] = 298, 5, 299           # [SOS] x [EOS]
    image_f, text_f, scale = model(images, text)
    assert image_f.shape == text_f.shape == (3, CONFIG.embed_dim)
    torch.testing.assert_close(image_f.norm(dim=-1), torch.ones(3))
    changed = text.clone()
    changed[:, 5] = 7                                          # after [EOS]: invisible to a causal model
    torch.testing.assert_close(model.encode_text(changed), text_f)
    model.set_grad_checkpointing(True)
    model.train()
    loss = contrastive_loss(*model(images, text))
    loss.backward()
    assert model.visual.patch_embed.weight.grad is not None
