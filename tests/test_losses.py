"""Each loss term against a hand computation on tiny tensors, and gradients reach the right nets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from magan.correspondence import (
    CorrespondenceBatch,
    KnownPairs,
    Relation,
    SharedFeatures,
    correlated,
)
from magan.data import PairSampler
from magan.losses import cycle_loss, discriminator_loss, generator_adversarial_loss
from magan.nn import MLP, MAGANModule, NetworkConfig, apply_in_blocks
from magan.training import Trainer


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_discriminator_loss_by_hand():
    real = torch.tensor([[2.0], [0.0]])
    fake = torch.tensor([[-1.0]])
    # BCE(real→1) = softplus(-z); BCE(fake→0) = softplus(z)
    expected = (softplus(-2.0) + softplus(0.0)) / 2 + softplus(-1.0)
    assert discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_manifold_augmentation_counts_reconstructions_as_real():
    real = torch.tensor([[2.0]])
    fake = torch.tensor([[-1.0]])
    recon = torch.tensor([[-3.0]])  # a reconstruction the discriminator thinks is fake
    expected = (softplus(-2.0) + softplus(3.0)) / 2 + softplus(-1.0)
    got = discriminator_loss(real, fake, recon).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert got > discriminator_loss(real, fake).item()


def test_generator_loss_is_non_saturating():
    fake = torch.tensor([[0.5], [-1.5]])
    expected = (softplus(-0.5) + softplus(1.5)) / 2
    assert generator_adversarial_loss(fake).item() == pytest.approx(expected, rel=1e-6)


def test_cycle_loss_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    r = torch.tensor([[1.0, 0.0], [3.0, 5.0]])
    assert cycle_loss(x, r).item() == pytest.approx((4 + 1) / 4)


def _batch(x1, x2, x12, x21, p1=None, p2=None):
    return CorrespondenceBatch(x1, x2, x12, x21, p1, p2)


def test_shared_features_standardized_by_hand():
    x1 = torch.tensor([[1.0, 5.0], [2.0, 6.0]])
    x2 = torch.tensor([[0.0, 3.0, 9.0], [1.0, 4.0, 9.0]])
    x12 = torch.tensor([[0.0, 0.0, 1.5], [0.0, 0.0, 2.0]])  # column 2 should equal x1[:, 0]
    x21 = torch.tensor([[3.0, 0.0], [3.0, 0.0]])  # column 0 should equal x2[:, 2]
    term = SharedFeatures([(0, 2)], match="standardized")
    got = term(_batch(x1, x2, x12, x21), None).item()
    expected = ((1.5 - 1) ** 2 + (2 - 2) ** 2) / 2 + ((3 - 9) ** 2 + (3 - 9) ** 2) / 2
    assert got == pytest.approx(expected)


def test_shared_features_values_compares_in_user_units():
    # Domain 1 feature 0: user value = z*2 + 10; domain 2 feature 0: user value = z*4 + 6.
    mean1, scale1 = np.array([10.0]), np.array([2.0])
    mean2, scale2 = np.array([6.0]), np.array([4.0])
    term = SharedFeatures([(0, 0)], mean1, scale1, mean2, scale2, match="values")
    z1 = torch.tensor([[1.0]])  # user value 12 → domain-2 standardised (12-6)/4 = 1.5
    z2 = torch.tensor([[0.5]])  # user value 8 → domain-1 standardised (8-10)/2 = -1
    perfect = _batch(z1, z2, torch.tensor([[1.5]]), torch.tensor([[-1.0]]))
    assert term(perfect, None).item() == pytest.approx(0.0, abs=1e-12)
    off = _batch(z1, z2, torch.tensor([[2.5]]), torch.tensor([[1.0]]))
    assert term(off, None).item() == pytest.approx(1.0 + 4.0)


def test_known_pairs_by_hand():
    module = MAGANModule(NetworkConfig(2, 2, (4,), (4,)))
    p1 = torch.tensor([[1.0, 0.0]])
    p2 = torch.tensor([[0.0, 2.0]])
    with torch.no_grad():
        expected = ((module.g12(p1) - p2) ** 2).mean() + ((module.g21(p2) - p1) ** 2).mean()
    z = torch.zeros(1, 2)
    got = KnownPairs()(_batch(z, z, z, z, p1, p2), module)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_relation_sees_user_units_and_correlated_by_hand():
    seen = {}

    def fn(a, b):
        seen["a"], seen["b"] = a.detach().clone(), b.detach().clone()
        return (a.sum() - b.sum()) ** 2

    term = Relation(fn, np.array([1.0]), np.array([2.0]), np.array([-1.0]), np.array([3.0]))
    x1, x12 = torch.tensor([[0.5]]), torch.tensor([[2.0]])
    loss = term(_batch(x1, torch.zeros(1, 1), x12, torch.zeros(1, 1)), None)
    assert seen["a"].item() == pytest.approx(2.0) and seen["b"].item() == pytest.approx(5.0)
    assert loss.item() == pytest.approx(9.0)
    a = torch.tensor([[1.0], [2.0], [3.0]])
    assert correlated(0, 0, sign=1)(a, 2 * a).item() == pytest.approx(0.0, abs=1e-6)
    assert correlated(0, 0, sign=-1)(a, 2 * a).item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("term_name", ["shared_features", "known_pairs", "relation"])
def test_correspondence_gradients_reach_generators_only(term_name):
    torch.manual_seed(0)
    module = MAGANModule(NetworkConfig(3, 2, (8,), (8,)))
    x1, x2 = torch.randn(5, 3), torch.randn(6, 2)
    out = module(x1, x2)
    batch = _batch(x1, x2, out["x12"], out["x21"], x1[:2], x2[:2])
    term = {
        "shared_features": SharedFeatures([(0, 1)]),
        "known_pairs": KnownPairs(),
        "relation": Relation(correlated(0, 0)),
    }[term_name]
    term(batch, module).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.g12.parameters())
    assert all(p.grad is None for p in module.discriminators())


def _trainer(**kw) -> Trainer:
    torch.manual_seed(0)
    module = MAGANModule(NetworkConfig(3, 2, (8,), (8,)))
    sampler = PairSampler(torch.randn(20, 3), torch.randn(20, 2), 8, seed=0)
    return Trainer(module, sampler, [SharedFeatures([(0, 1)])], **kw)


def _snapshot(params):
    return [p.detach().clone() for p in params]


def _changed(before, params):
    return [not torch.equal(b, p) for b, p in zip(before, params)]


def test_generator_step_moves_only_generators_and_discriminator_step_only_discriminators():
    tr = _trainer(discriminator_lr=1e-30)  # effectively freeze D: only G may move
    g0, d0 = _snapshot(tr.module.generators()), _snapshot(tr.module.discriminators())
    tr.step()
    assert all(_changed(g0, tr.module.generators()))
    assert torch.allclose(torch.cat([p.flatten() for p in d0]),
                          torch.cat([p.detach().flatten() for p in tr.module.discriminators()]))

    tr = _trainer(generator_lr=1e-30)
    g0 = _snapshot(tr.module.generators())
    d0 = _snapshot(tr.module.discriminators())
    tr.step()
    assert all(_changed(d0, tr.module.discriminators()))
    assert torch.allclose(torch.cat([p.flatten() for p in g0]),
                          torch.cat([p.detach().flatten() for p in tr.module.generators()]))


def test_without_an_adversarial_weight_the_discriminators_take_no_part():
    """Adversarial weight 0 (the landmark plan's default): the generators train exactly as
    they would whatever the discriminators are, which are neither run nor stepped."""
    from magan.training import LossWeights

    runs = []
    for d_seed in (1, 2):  # same generators, different discriminators
        tr = _trainer(weights=LossWeights(adversarial=0.0))
        torch.manual_seed(d_seed)
        for net in (tr.module.d1, tr.module.d2):
            for param in net.parameters():
                torch.nn.init.normal_(param)
        d0 = _snapshot(tr.module.discriminators())
        losses = torch.stack([tr.step() for _ in range(5)])
        assert not any(_changed(d0, tr.module.discriminators()))
        named = dict(zip(tr.loss_names, losses.T))
        assert all((named[k] == 0).all() for k in ("adversarial_12", "adversarial_21",
                                                     "discriminator_1", "discriminator_2"))
        runs.append(_snapshot(tr.module.generators()))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_step_reports_every_term_and_they_add_up():
    tr = _trainer()
    losses = tr.step()
    assert len(losses) == len(tr.loss_names)
    named = dict(zip(tr.loss_names, losses.tolist()))
    total = (named["adversarial_12"] + named["adversarial_21"] + named["cycle_1"]
             + named["cycle_2"] + named["shared_features"])
    assert named["generator"] == pytest.approx(total, rel=1e-5)
    assert set(tr.loss_names) >= {"discriminator_1", "discriminator_2", "shared_features"}


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu"])
def test_in_place_activations_give_the_same_gradients(activation):
    torch.manual_seed(0)
    net = MLP(5, (16, 8), 3, activation)
    plain = {"relu": torch.nn.ReLU(), "leaky_relu": torch.nn.LeakyReLU(0.2),
             "elu": torch.nn.ELU()}[activation]
    twin = torch.nn.Sequential(*[plain if not isinstance(m, torch.nn.Linear) else m
                                 for m in net])  # same Linear modules, out-of-place activations
    assert any(getattr(m, "inplace", False) for m in net)
    x = torch.randn(32, 5)
    grads = []
    for model in (net, twin):
        model.zero_grad()
        (model(x) ** 2).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("n", [1, 3, 4, 5, 13])
def test_apply_in_blocks_equals_one_forward(n):
    torch.manual_seed(0)
    net = MLP(5, (16, 8), 3, "relu")
    z = torch.randn(n, 5)
    with torch.inference_mode():
        torch.testing.assert_close(apply_in_blocks(net, z, block=4), net(z))
