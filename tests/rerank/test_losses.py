"""Reranker losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from kdedge.errors import ConfigError
from kdedge.rerank.losses import (
    RerankLossConfig,
    bce_relevance,
    listwise_ce,
    listwise_kl,
    margin_mse,
    pointwise_mse,
    rerank_loss,
)

S = torch.tensor([[2.0, 0.0, -1.0], [1.0, 3.0, 0.0]])  # student scores, 2 queries x 3
T = torch.tensor([[3.0, 1.0, -1.0], [1.0, 1.0, 0.0]])  # teacher
REL = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
MASK = torch.tensor([[True, True, True], [True, True, False]])  # query 2 has 2 candidates


def test_pointwise_mse_ignores_padding():
    # real cells: (2-3)^2, (0-1)^2, (-1+1)^2, (1-1)^2, (3-1)^2 -> (1 + 1 + 0 + 0 + 4) / 5
    assert float(pointwise_mse(S, T, MASK)) == pytest.approx(6 / 5)


def test_alpha_zero_is_pure_mse_and_alpha_one_pure_supervised():
    mse = rerank_loss(S, REL, MASK, T, RerankLossConfig(alpha=0.0)).total
    assert float(mse) == pytest.approx(6 / 5)
    labels = rerank_loss(S, REL, MASK, None, RerankLossConfig(alpha=1.0))
    assert float(labels.total) == pytest.approx(float(bce_relevance(S, REL, MASK)))
    assert float(labels.distill) == 0.0


def test_mix_is_alpha_supervised_plus_one_minus_alpha_mse():
    terms = rerank_loss(S, REL, MASK, T, RerankLossConfig(alpha=0.25))
    bce = float(bce_relevance(S, REL, MASK))
    assert float(terms.supervised) == pytest.approx(bce)
    assert float(terms.total) == pytest.approx(0.25 * bce + 0.75 * 6 / 5)


def test_bce_by_hand():
    def bce(x, y):
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    cells = [(2, 1), (0, 0), (-1, 0), (1, 0), (3, 1)]
    expected = sum(bce(x, y) for x, y in cells) / 5
    assert float(bce_relevance(S, REL, MASK)) == pytest.approx(expected, rel=1e-5)


def test_graded_relevance_is_scaled_for_bce():
    graded = REL * 3
    terms = rerank_loss(S, graded, MASK, None, RerankLossConfig(alpha=1.0), max_relevance=3)
    assert float(terms.total) == pytest.approx(float(bce_relevance(S, REL, MASK)))


def test_margin_mse_by_hand():
    # query 1: pairs (0,1), (0,2): student margins 2, 3; teacher 2, 4 -> errors 0, 1
    # query 2: pair (1,0) only (candidate 2 is padding): student 2, teacher 0 -> error 4
    assert float(margin_mse(S, T, REL, MASK)) == pytest.approx((0 + 1 + 4) / 3)
    # a constant shift of the student's scores changes nothing: only margins count
    assert float(margin_mse(S + 5, T, REL, MASK)) == pytest.approx((0 + 1 + 4) / 3, rel=1e-5)
    assert float(margin_mse(T, T, REL, MASK)) == 0.0


def test_listwise_kl_zero_when_equal_and_by_hand():
    assert float(listwise_kl(T, T, MASK, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(listwise_kl(T + 3, T, MASK, 1.0)) == pytest.approx(0.0, abs=1e-5)  # shift-free

    def softmax(xs):
        e = [math.exp(x) for x in xs]
        return [v / sum(e) for v in e]

    temperature = 2.0
    kls = []
    for s, t in (([2, 0, -1], [3, 1, -1]), ([1, 3], [1, 1])):  # padding dropped
        p = softmax([v / temperature for v in t])
        q = softmax([v / temperature for v in s])
        kls.append(sum(a * math.log(a / b) for a, b in zip(p, q, strict=True)))
    expected = temperature**2 * sum(kls) / 2
    assert float(listwise_kl(S, T, MASK, temperature)) == pytest.approx(expected, rel=1e-5)


def test_listwise_ce_by_hand_skips_queries_without_positives():
    # query 1: -log softmax([2, 0, -1])[0]; query 2: no positive -> skipped
    rel = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    assert float(listwise_ce(S, rel, MASK)) == pytest.approx(expected, rel=1e-5)
    # two positives share the target mass equally
    rel2 = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    z = math.exp(2) + 1 + math.exp(-1)
    expected2 = -(0.5 * math.log(math.exp(2) / z) + 0.5 * math.log(1 / z))
    assert float(listwise_ce(S, rel2, MASK)) == pytest.approx(expected2, rel=1e-5)


def test_kinds_dispatch_and_gradients_flow():
    for kind in ("pointwise", "margin_mse", "listwise"):
        s = S.clone().requires_grad_(True)
        terms = rerank_loss(s, REL, MASK, T, RerankLossConfig(kind=kind, alpha=0.5))
        terms.total.backward()
        assert s.grad is not None and float(s.grad.abs().sum()) > 0
        assert float(s.grad[1, 2]) == 0.0  # padding gets no gradient
    listwise = rerank_loss(S, REL, MASK, T, RerankLossConfig(kind="listwise", alpha=0.0))
    assert float(listwise.total) == pytest.approx(float(listwise_kl(S, T, MASK, 1.0)))


def test_config_validation():
    with pytest.raises(ConfigError, match="choose one of"):
        RerankLossConfig(kind="pairwise")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        RerankLossConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        RerankLossConfig(temperature=0)
    with pytest.raises(ConfigError, match="supervised"):
        RerankLossConfig(supervised="hinge")
    with pytest.raises(ConfigError, match="no teacher scores"):
        rerank_loss(S, REL, MASK, None, RerankLossConfig(alpha=0.5))
    assert RerankLossConfig(alpha=1.0).labels_only and not RerankLossConfig().labels_only


@pytest.mark.parametrize(
    ("kind", "supervised"),
    [("pointwise", "bce"), ("margin_mse", "listwise"), ("listwise", "bce")],
)
def test_shard_factors_make_the_share_gradients_sum_to_the_global_batch(kind, supervised):
    """Unequal shares of one global batch: scaled shares, averaged like DDP does, give the
    global batch's loss and gradient for every term."""
    from kdedge.rerank.losses import shard_scale

    config = RerankLossConfig(kind=kind, alpha=0.4, supervised=supervised)
    torch.manual_seed(0)
    rel = torch.tensor([[2.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    mask = mask.bool()
    teacher = torch.randn(rel.shape)
    student = torch.randn(rel.shape, requires_grad=True)
    whole = rerank_loss(student, rel, mask, teacher, config, max_relevance=2.0).total
    (expected,) = torch.autograd.grad(whole, student)
    grades = [rel[q][mask[q]].numpy() for q in range(len(rel))]
    world, averaged, grad = 2, 0.0, torch.zeros_like(student)
    for rank in range(world):
        rows = list(range(rank, len(rel), world))  # 3 queries, then 2
        factors = shard_scale([grades[q] for q in rows], grades, config, world)
        share = rerank_loss(
            student[rows], rel[rows], mask[rows], teacher[rows], config,
            max_relevance=2.0, shard=factors,
        ).total  # fmt: skip
        averaged += float(share.detach()) / world
        grad += torch.autograd.grad(share, student)[0] / world
    assert averaged == pytest.approx(float(whole.detach()), abs=1e-6)
    torch.testing.assert_close(grad, expected)
