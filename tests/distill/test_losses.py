"""The seed 001 dry runs, reproduced to four decimals, plus the edge cases of each term."""

from __future__ import annotations

import pytest
import torch

from kdedge.distill.losses import (
    IGNORE_INDEX,
    LossConfig,
    attention_mse,
    distillation_loss,
    hard_ce,
    hidden_mse,
    kd_loss,
    rare_class_weights,
    soft_targets,
)
from kdedge.errors import ConfigError

TEACHER = torch.tensor([[2.8, 2.2, 0.5, -1.0]])
STUDENT = torch.tensor([[2.1, 1.7, 0.8, -0.5]])
GOLD = torch.tensor([0])  # order_tracking


def test_soft_targets_match_seed_table_at_t4():
    probs = soft_targets(TEACHER, 4.0)[0]
    assert probs.tolist() == pytest.approx([0.3559, 0.3063, 0.2002, 0.1376], abs=1e-4)


def test_kd_loss_is_t_squared_kl():
    assert kd_loss(STUDENT, soft_targets(TEACHER, 4.0), 4.0).item() == pytest.approx(
        0.1170, abs=1e-4
    )


def test_hard_ce():
    assert hard_ce(STUDENT, GOLD).item() == pytest.approx(0.7017, abs=1e-4)


@pytest.mark.parametrize(("alpha", "total"), [(0.3, 0.5263), (0.5, 0.4094), (0.7, 0.2924)])
def test_combined_loss_alpha_table(alpha, total):
    terms = distillation_loss(
        STUDENT, GOLD, soft_targets(TEACHER, 4.0), LossConfig(alpha=alpha, temperature=4.0)
    )
    assert terms.total.item() == pytest.approx(total, abs=1e-4)
    assert terms.rare.item() == 0.0


def test_kd_gradient_direction_matches_seed():
    student = STUDENT.clone().requires_grad_(True)
    kd_loss(student, soft_targets(TEACHER, 4.0), 4.0).backward()
    # d(T^2 KL)/dz = T * (p_S - p_T); the seed's pattern after T^2 scaling is T^2 * (p_S - p_T)
    expected = torch.tensor([-0.6133, -0.3037, 0.4668, 0.4502]) / 4.0
    assert student.grad[0].tolist() == pytest.approx(expected.tolist(), abs=2e-3)


def test_hidden_mse_seed_value():
    teacher = torch.tensor([[[0.8, -0.1, 0.2, 0.5]]])
    student = torch.tensor([[[0.5, 0.0, 0.4, 0.1]]])
    assert hidden_mse(student, teacher).item() == pytest.approx(0.075, abs=1e-6)
    assert hidden_mse(student, teacher, torch.ones(1, 1)).item() == pytest.approx(0.075, abs=1e-6)


def test_attention_mse_seed_value():
    teacher = torch.tensor([[[[0.7, 0.3], [0.2, 0.8]]]])
    student = torch.tensor([[[[0.6, 0.4], [0.25, 0.75]]]])
    assert attention_mse(student, teacher).item() == pytest.approx(0.00625, abs=1e-7)


def test_attention_mse_averages_heads_when_counts_differ():
    teacher = torch.rand(2, 4, 3, 3)
    student = teacher.mean(dim=1, keepdim=True).expand(2, 2, 3, 3)
    assert attention_mse(student, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_masked_hidden_mse_ignores_padding():
    teacher = torch.zeros(1, 3, 2)
    student = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert hidden_mse(student, teacher, mask).item() == pytest.approx(1.0)


def test_unlabeled_rows_only_feed_kd():
    labels = torch.tensor([0, IGNORE_INDEX])
    logits = torch.cat([STUDENT, STUDENT])
    only_first = hard_ce(STUDENT, GOLD)
    assert hard_ce(logits, labels).item() == pytest.approx(only_first.item())
    none = hard_ce(logits, torch.tensor([IGNORE_INDEX, IGNORE_INDEX]))
    assert none.item() == 0.0


def test_seed_hybrid_weights_rare_rows_up():
    # 0.45 hard + 0.35 KD + 0.20 rare-weighted, with class 3 rare (boost 5)
    config = LossConfig(alpha=0.35, temperature=4.0, rare_weight=0.20)
    assert config.hard_weight == pytest.approx(0.45)
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5]])
    labels = torch.tensor([0, 3])
    weights = rare_class_weights(4, [3], boost=5.0)
    terms = distillation_loss(logits, labels, soft_targets(logits, 4.0), config, None, weights)
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert terms.rare.item() == pytest.approx(((ce[0] + 5 * ce[1]) / 6).item(), abs=1e-6)
    expected = 0.45 * terms.hard + 0.35 * terms.kd + 0.20 * terms.rare
    assert terms.total.item() == pytest.approx(expected.item(), abs=1e-6)


def test_example_weights_change_the_mean():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0])
    even = hard_ce(logits, labels).item()
    heavy_wrong = hard_ce(logits, labels, torch.tensor([1.0, 3.0])).item()
    assert heavy_wrong > even


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 1.5}, "must be in"),
        ({"alpha": 0.9, "rare_weight": 0.2}, "would be negative"),
        ({"temperature": 0}, "temperature"),
    ],
)
def test_bad_loss_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LossConfig(**kwargs)
