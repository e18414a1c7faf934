"""What every attack shares: seeded wrong labels for any number of classes, the input checks."""
import pytest
import torch

from advtut.attacks.base import AttackResult, check_attack_inputs, random_wrong_labels


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_random_wrong_labels_are_wrong_uniform_and_seeded(n_classes):
    y = torch.arange(n_classes).repeat(9000 // n_classes)
    t = random_wrong_labels(y, seed=3, n_classes=n_classes)
    assert t.dtype == torch.long and t.shape == y.shape
    assert (t != y).all() and ((t >= 0) & (t < n_classes)).all()
    assert torch.equal(t, random_wrong_labels(y, seed=3, n_classes=n_classes))
    assert not torch.equal(t, random_wrong_labels(y, seed=4, n_classes=n_classes)) or n_classes == 2
    counts = torch.bincount((t - y) % n_classes, minlength=n_classes)
    expected = len(y) / (n_classes - 1)
    assert counts[0] == 0 and (counts[1:] - expected).abs().max() < 0.1 * expected


def test_random_wrong_labels_does_not_touch_the_global_generator():
    before = torch.get_rng_state()
    random_wrong_labels(torch.tensor([0, 1, 2]), seed=0, n_classes=3)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("y, n_classes, match", [
    (torch.tensor([0, 1]), 1, "n_classes must be an integer >= 2"),
    (torch.tensor([0, 3]), 3, r"y must hold classes in \[0, 3\)"),
    (torch.tensor([0.0, 1.0]), 3, "y must be a long tensor"),
    (torch.zeros(2, 2, dtype=torch.long), 3, r"shape \(N,\)"),
])
def test_random_wrong_labels_refuses_bad_input(y, n_classes, match):
    with pytest.raises(ValueError, match=match):
        random_wrong_labels(y, seed=0, n_classes=n_classes)


def test_check_attack_inputs_reads_the_number_of_classes_from_the_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.rand(5, 1, 2, 2)
    with torch.no_grad():
        pred = model(x).argmax(1)
    check_attack_inputs(model, x, (pred + 1) % 3, targeted=True)   # fine: three classes
    with pytest.raises(ValueError, match=r"target must be a class in \[0, 3\)"):
        check_attack_inputs(model, x, torch.full((5,), 3), targeted=True)
    with pytest.raises(ValueError, match="current label"):
        check_attack_inputs(model, x, pred, targeted=True)
    check_attack_inputs(model, x, pred, targeted=True, allow_current=True)


def test_untargeted_checks_name_y_and_accept_any_true_label():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.rand(5, 1, 2, 2)
    with torch.no_grad():
        pred = model(x).argmax(1)
    check_attack_inputs(model, x, pred, targeted=False)      # the model's own label: fine
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 3\)"):
        check_attack_inputs(model, x, torch.full((5,), 3), targeted=False)
    with pytest.raises(ValueError, match=r"expected y to have shape \(5,\), got \(2,\)"):
        check_attack_inputs(model, x, pred[:2], targeted=False)
    with pytest.raises(ValueError, match="y must be a long tensor"):
        check_attack_inputs(model, x, pred.float(), targeted=False)
    with pytest.raises(ValueError, match="targeted must be True or False"):
        check_attack_inputs(model, x, pred, targeted=None)


def test_bounds_and_gradients_are_checked_only_when_asked():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = 3 * torch.rand(2, 4) - 1
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        check_attack_inputs(model, x, y, targeted=False)
    with pytest.raises(ValueError, match=r"x must lie in \[-0.5, 0.5\]"):
        check_attack_inputs(model, x, y, targeted=False, bounds=(-0.5, 0.5))
    check_attack_inputs(model, x, y, targeted=False, bounds=None)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="outside torch.inference_mode"):
            check_attack_inputs(model, x, y, targeted=False, bounds=None)
        check_attack_inputs(model, x, y, targeted=False, bounds=None, needs_grad=False)


def test_attack_result_is_frozen():
    r = AttackResult(*(torch.zeros(1) for _ in range(6)))
    with pytest.raises(AttributeError):
        r.distortion = torch.ones(1)
