"""Losses against an independent NumPy computation of docs/method.md's formulas."""
import numpy as np
import pytest
import torch

from pkd.method.losses import LossConfig, label_loss, patient_loss, pkd_loss, soft_label_loss

rng = np.random.default_rng(0)
B, C, L, H = 5, 3, 4, 8
LOGITS_S = rng.normal(size=(B, C)) * 2
LOGITS_T = rng.normal(size=(B, C)) * 3
LABELS = np.array([0, 2, 1, 1, 0])
CLS_S = rng.normal(size=(B, L, H))
CLS_T = rng.normal(size=(B, L, H)) * 5


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_kl_per_example(logits_s, logits_t, T):
    p_t = np_softmax(logits_t / T)
    p_s = np_softmax(logits_s / T)
    return (p_t * (np.log(p_t) - np.log(p_s))).sum(-1)


def t(x, grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("T", [1.0, 5.0, 10.0, 20.0])
def test_soft_label_loss_authors_mean_divides_by_classes(T):
    expected = np_kl_per_example(LOGITS_S, LOGITS_T, T).mean() / C * T**2
    got = soft_label_loss(t(LOGITS_S), t(LOGITS_T), T, reduction="mean")
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_soft_label_loss_batchmean_is_per_example_kl():
    T = 10.0
    expected = np_kl_per_example(LOGITS_S, LOGITS_T, T).mean() * T**2
    got = soft_label_loss(t(LOGITS_S), t(LOGITS_T), T, reduction="batchmean")
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_soft_label_loss_is_zero_when_student_matches_teacher():
    assert soft_label_loss(t(LOGITS_T), t(LOGITS_T), 5.0).item() == pytest.approx(0.0, abs=1e-12)


def test_soft_label_loss_regression_is_mse_to_teacher():
    s, te = rng.normal(size=(B, 1)), rng.normal(size=(B, 1))
    got = soft_label_loss(t(s), t(te), 10.0, is_regression=True)
    assert got.item() == pytest.approx(((s - te) ** 2).mean())


def test_patient_loss_normalised_mse_mean_over_batch_layers_hidden():
    ns = CLS_S / np.linalg.norm(CLS_S, axis=-1, keepdims=True)
    nt = CLS_T / np.linalg.norm(CLS_T, axis=-1, keepdims=True)
    expected = ((ns - nt) ** 2).mean()
    assert patient_loss(t(CLS_S), t(CLS_T)).item() == pytest.approx(expected, rel=1e-10)
    # Normalisation makes the loss blind to the teacher's scale.
    assert patient_loss(t(CLS_S), t(CLS_T * 7)).item() == pytest.approx(expected, rel=1e-10)


def test_patient_loss_without_normalisation():
    assert patient_loss(t(CLS_S), t(CLS_T), normalize=False).item() == pytest.approx(((CLS_S - CLS_T) ** 2).mean())


def test_label_loss_is_cross_entropy():
    p = np_softmax(LOGITS_S)
    expected = -np.log(p[np.arange(B), LABELS]).mean()
    assert label_loss(t(LOGITS_S), torch.tensor(LABELS)).item() == pytest.approx(expected)


def test_pkd_loss_combines_terms_with_alpha_and_beta():
    alpha, beta, T = 0.7, 100.0, 10.0
    ce = -np.log(np_softmax(LOGITS_S)[np.arange(B), LABELS]).mean()
    ds = np_kl_per_example(LOGITS_S, LOGITS_T, T).mean() / C * T**2
    ns = CLS_S / np.linalg.norm(CLS_S, axis=-1, keepdims=True)
    nt = CLS_T / np.linalg.norm(CLS_T, axis=-1, keepdims=True)
    pt = ((ns - nt) ** 2).mean()
    loss, parts = pkd_loss(
        t(LOGITS_S), torch.tensor(LABELS), LossConfig(alpha=alpha, beta=beta, temperature=T, matched_layers=(1,)),
        logits_t=t(LOGITS_T), states_s=t(CLS_S), states_t=t(CLS_T),
    )
    assert loss.item() == pytest.approx((1 - alpha) * ce + alpha * ds + beta * pt, rel=1e-10)
    assert parts["ce"].item() == pytest.approx(ce)
    assert parts["ds"].item() == pytest.approx(ds)
    assert parts["pt"].item() == pytest.approx(pt)


def test_ft_needs_no_teacher_and_equals_cross_entropy():
    loss, parts = pkd_loss(t(LOGITS_S), torch.tensor(LABELS), LossConfig())
    assert loss.item() == pytest.approx(label_loss(t(LOGITS_S), torch.tensor(LABELS)).item())
    assert parts["ds"].item() == 0 and parts["pt"].item() == 0


def test_missing_teacher_inputs_raise():
    with pytest.raises(ValueError, match="teacher's logits"):
        pkd_loss(t(LOGITS_S), torch.tensor(LABELS), LossConfig(alpha=0.5, temperature=5.0))
    with pytest.raises(ValueError, match="layer states"):
        pkd_loss(t(LOGITS_S), torch.tensor(LABELS), LossConfig(alpha=0.5, beta=10.0, temperature=5.0, matched_layers=(1,)),
                 logits_t=t(LOGITS_T))


def test_gradients_reach_the_student_only():
    logits_s, logits_t = t(LOGITS_S, grad=True), t(LOGITS_T, grad=True)
    cls_s, cls_t = t(CLS_S, grad=True), t(CLS_T, grad=True)
    loss, _ = pkd_loss(
        logits_s, torch.tensor(LABELS), LossConfig(alpha=0.5, beta=10.0, temperature=5.0, matched_layers=(1,)),
        logits_t=logits_t, states_s=cls_s, states_t=cls_t,
    )
    loss.backward()
    assert logits_s.grad is not None and logits_s.grad.abs().sum() > 0
    assert cls_s.grad is not None and cls_s.grad.abs().sum() > 0
    assert logits_t.grad is None and cls_t.grad is None


def test_soft_label_gradient_matches_hinton_form():
    # d/dz_s of T^2 KL(p_t || p_s(z/T)) = T (p_s - p_t); with 'mean' divided by B*C.
    T = 5.0
    logits_s = t(LOGITS_S, grad=True)
    soft_label_loss(logits_s, t(LOGITS_T), T, reduction="mean").backward()
    expected = T * (np_softmax(LOGITS_S / T) - np_softmax(LOGITS_T / T)) / (B * C)
    np.testing.assert_allclose(logits_s.grad.numpy(), expected, rtol=1e-8)
