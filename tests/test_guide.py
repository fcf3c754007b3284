"""The Guide: finds guided layers anywhere, scores each kind once per step, warm-up."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ydrop
from ydrop import ActivationDropout, ExcitationDropout, Guide, YDrop


class TwoBranchNet(nn.Module):
    """Not an nn.Sequential: guided layers live in nested attributes."""

    def __init__(self, first: nn.Module, second: nn.Module, classes: int = 5):
        super().__init__()
        self.body = nn.ModuleDict({"fc1": nn.Linear(12, 16), "fc2": nn.Linear(16, 16)})
        self.first, self.second = first, second
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        h = self.first(F.relu(self.body["fc1"](x)))
        h = self.second(F.relu(self.body["fc2"](h)))
        return self.head(h)


def count_forwards(model):
    calls = []
    model.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls


def test_finds_layers_in_any_module_and_refuses_a_model_without_them():
    model = TwoBranchNet(YDrop(), ExcitationDropout())
    assert list(Guide(model).layers) == ["first", "second"]
    with pytest.raises(ValueError, match="holds no guided dropout layer"):
        Guide(nn.Sequential(nn.Linear(2, 2), nn.Dropout()))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        Guide("model")


def test_one_pass_per_score_kind_for_all_layers():
    torch.manual_seed(0)
    model = TwoBranchNet(YDrop(warmup_epochs=0), YDrop(warmup_epochs=0)).train()
    guide = Guide(model)
    guide.set_epoch(0)
    calls = count_forwards(model)
    given = guide.step(torch.randn(64, 12), torch.randint(0, 5, (64,)))
    assert len(calls) == 1  # both Y-Drop layers from one conductance pass
    # B_c = max(1, floor(B / n_c)) = 12 samples for B = 64, n_c = 5 (Eq. 9).
    assert given["first"].shape == (12, 16) and given["second"].shape == (12, 16)
    assert model.training and all(m.training for m in model.modules())


def test_mixed_kinds_run_one_pass_each():
    model = TwoBranchNet(YDrop(warmup_epochs=0), ExcitationDropout()).train()
    guide = Guide(model)
    guide.set_epoch(0)
    calls = count_forwards(model)
    given = guide.step(torch.randn(10, 12), torch.randint(0, 5, (10,)))
    assert len(calls) == 2
    assert given["first"].shape == (2, 16) and given["second"].shape == (10, 16)


def test_scores_handed_over_are_the_conductances_of_random_batch_samples():
    torch.manual_seed(1)
    model = TwoBranchNet(YDrop(warmup_epochs=0, steps=4), nn.Identity()).train()
    guide = Guide(model)
    guide.set_epoch(0)
    x, y = torch.randn(20, 12), torch.randint(0, 5, (20,))
    given = guide.step(x, y)["first"]
    full = ydrop.conductance(model, x, y, [model.first], steps=4)[model.first]
    assert given.shape == (5, 16)
    distances = torch.cdist(given, full)
    assert torch.all(distances.min(1).values < 1e-5)
    assert len(set(distances.argmin(1).tolist())) == 5  # five distinct samples


def test_excitation_scores_are_per_sample_in_batch_order():
    torch.manual_seed(2)
    model = TwoBranchNet(nn.Identity(), ExcitationDropout()).train()
    guide = Guide(model)
    x, y = torch.randn(9, 12), torch.randint(0, 5, (9,))
    given = guide.step(x, y)["second"]
    expected = ydrop.excitation_backprop(model, x, y, [model.second])[model.second]
    torch.testing.assert_close(given, expected)


def test_excitation_policy_with_conductance_gets_every_sample_in_order():
    torch.manual_seed(3)
    model = TwoBranchNet(YDrop(warmup_epochs=0), ExcitationDropout(score="conductance")).train()
    guide = Guide(model)
    guide.set_epoch(0)
    x, y = torch.randn(10, 12), torch.randint(0, 5, (10,))
    given = guide.step(x, y)
    expected = ydrop.conductance(model, x, y, [model.second])[model.second]
    torch.testing.assert_close(given["second"], expected, rtol=1e-5, atol=1e-6)
    assert given["first"].shape == (2, 16)
    model(x).sum().backward()  # the training forward consumes them


def test_every_score_policy_pair_trains():
    torch.manual_seed(4)
    for policy in (YDrop, ExcitationDropout):
        for score in ("conductance", "excitation", "activation"):
            model = TwoBranchNet(policy(score=score, warmup_epochs=0), policy(score=score, warmup_epochs=0))
            guide = Guide(model)
            guide.set_epoch(0)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no fallback warning: scores did arrive
                for _ in range(3):
                    guide.step(x, y)
                    loss = F.cross_entropy(model.train()(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            assert torch.isfinite(loss)


def test_no_scoring_pass_while_every_layer_is_in_warmup():
    model = TwoBranchNet(YDrop(warmup_epochs=2), YDrop(warmup_epochs=1)).train()
    guide = Guide(model)
    calls = count_forwards(model)
    x, y = torch.randn(8, 12), torch.randint(0, 5, (8,))
    guide.set_epoch(0)
    assert guide.step(x, y) == {} and not calls
    guide.set_epoch(1)
    assert list(guide.step(x, y)) == ["second"] and len(calls) == 1
    guide.set_epoch(2)
    assert sorted(guide.step(x, y)) == ["first", "second"]


def test_activation_layers_need_no_pass():
    model = TwoBranchNet(ActivationDropout(), ActivationDropout())
    calls = count_forwards(model)
    assert Guide(model).step(torch.randn(4, 12), torch.randint(0, 5, (4,))) == {}
    assert not calls


def test_forward_on_another_batch_after_an_excitation_step_raises():
    model = TwoBranchNet(nn.Identity(), ExcitationDropout()).train()
    guide = Guide(model)
    guide.step(torch.randn(8, 12), torch.randint(0, 5, (8,)))
    with pytest.raises(ValueError, match="scores for 8 samples but the batch has 6"):
        model(torch.randn(6, 12))


def test_warns_once_when_set_epoch_is_never_called():
    model = TwoBranchNet(YDrop(warmup_epochs=2), nn.Identity())
    guide = Guide(model)
    with pytest.warns(RuntimeWarning, match="set_epoch"):
        guide.step(torch.randn(4, 12), torch.randint(0, 5, (4,)))


def test_bad_targets_and_epochs_are_named():
    model = TwoBranchNet(YDrop(warmup_epochs=0), nn.Identity())
    guide = Guide(model)
    guide.set_epoch(0)
    x = torch.randn(4, 12)
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        guide.step(x, torch.tensor([0, 1]))
    # Y-Drop scores B_c random samples: the classes of the rows a pass reads are checked.
    with pytest.raises(ValueError, match=r"target holds class index 9, outside \[0, 4\]"):
        guide.step(x, torch.tensor([9, 9, 9, 9]))
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -1"):
        guide.set_epoch(-1)


def test_state_dict_round_trip_restores_epoch():
    model = TwoBranchNet(YDrop(warmup_epochs=3), nn.Identity())
    guide = Guide(model)
    guide.set_epoch(4)
    other = Guide(TwoBranchNet(YDrop(warmup_epochs=3), nn.Identity()))
    other.load_state_dict(guide.state_dict())
    assert other.epoch == 4 and not other.layers["first"].in_warmup


# ------------------------------------------------------------------ score_every
def test_score_every_four_runs_the_scoring_pass_on_one_step_in_four():
    torch.manual_seed(5)
    model = TwoBranchNet(YDrop(warmup_epochs=0, score_every=4, elasticity=1.0),
                         YDrop(warmup_epochs=0, score_every=4, elasticity=1.0)).train()
    guide = Guide(model)
    guide.set_epoch(0)
    x, y = torch.randn(32, 12), torch.randint(0, 5, (32,))
    passes, strong, high_rates = [], [], []
    for _ in range(12):
        passes.append(bool(guide.step(x, y)))
        model(x)
        rates = model.first.drop_rate  # elasticity 1: the EMA is this step's g_B
        strong.append(rates > rates.median())
        high_rates.append(rates.max().item())
    assert passes == [True, False, False, False] * 3
    for start in (0, 4, 8):  # the ranking of a scored step is reused for the next three
        assert all(torch.equal(strong[start], strong[start + i]) for i in range(1, 4))
    assert len(set(high_rates)) == 12  # bucket rates are drawn at every step


def test_score_every_skips_the_forward_of_the_pass():
    model = TwoBranchNet(YDrop(warmup_epochs=0, score_every=4), nn.Identity()).train()
    guide = Guide(model)
    guide.set_epoch(0)
    calls = count_forwards(model)
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    for _ in range(8):
        guide.step(x, y)
        model(x)
    assert len(calls) == 8 + 2  # eight training forwards, two scoring passes


# ----------------------------------------------- Excitation Backprop in the forward
def chain_net(dropout: nn.Module) -> nn.Sequential:
    torch.manual_seed(11)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), dropout, nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 5)).train()


def test_excitation_in_the_forward_equals_the_separate_pass():
    x, y = torch.randn(64, 12), torch.randint(0, 5, (64,))
    results = []
    for reuse in (True, False):
        model = chain_net(ExcitationDropout())
        guide = Guide(model, reuse_forward=reuse)
        lower = count_forwards(model[1])
        torch.manual_seed(12)
        given = guide.step(x, y)
        out = model(x)
        results.append((model[3]._scores, out))
        # Fast path: the layer below runs once (the training forward); else twice.
        assert len(lower) == (1 if reuse else 2)
        assert ("3" in given) is not reuse
    (fast_p, fast_out), (slow_p, slow_out) = results
    torch.testing.assert_close(fast_p, slow_p, rtol=0, atol=1e-7)
    torch.testing.assert_close(fast_out, slow_out, rtol=0, atol=1e-6)
    expected = ydrop.excitation_backprop(chain_net(ExcitationDropout()), x, y, ["3"])
    torch.testing.assert_close(fast_p, next(iter(expected.values())), rtol=1e-6, atol=1e-7)


def test_two_excitation_layers_are_scored_from_the_lower_ones_input_as_by_the_separate_pass():
    # The upper layer must not be scored on activations the lower one has already
    # dropped: both layers get the eval-mode p_EB of the separate pass, from one EB
    # pass over the modules above the lower layer.
    def two_layer_net():
        torch.manual_seed(11)
        return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), ExcitationDropout(), nn.Linear(32, 32), nn.ReLU(),
                             ExcitationDropout(), nn.Linear(32, 5)).train()

    x, y = torch.randn(64, 12), torch.randint(0, 5, (64,))
    scores = []
    for reuse in (True, False):
        model = two_layer_net()
        guide = Guide(model, reuse_forward=reuse)
        lower = count_forwards(model[0])
        given = guide.step(x, y)
        model(x)
        assert len(lower) == (1 if reuse else 2) and (given == {}) is reuse
        scores.append([model[2]._scores, model[5]._scores])
    for fast, slow in zip(*scores):
        torch.testing.assert_close(fast, slow, rtol=0, atol=1e-7)


def test_excitation_layer_above_batch_norm_takes_the_separate_pass():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), ExcitationDropout(),
                          nn.Linear(32, 5)).train()
    guide = Guide(model)
    assert set(guide.step(torch.randn(16, 12), torch.randint(0, 5, (16,)))) == {"3"}


def test_excitation_in_the_forward_refuses_another_batch():
    model = chain_net(ExcitationDropout())
    guide = Guide(model)
    guide.step(torch.randn(8, 12), torch.randint(0, 5, (8,)))
    with pytest.raises(ValueError, match="guide.step was given a batch of 8 samples but the next training "
                                         "forward has 6"):
        model(torch.randn(6, 12))


TINY = {"width_multiplier": 0.05, "hidden": (16, 16)}


@pytest.mark.parametrize(
    "name, in_shape, options, fast",
    [
        ("fc1", None, {"hidden": (16, 16)}, True),
        ("s2", None, TINY, True),
        ("m1", None, TINY, False),  # batch norm below the layers: the separate pass
        ("cnn2", None, TINY, True),
        ("vgg16", (3, 32, 32), TINY, True),
        ("alexnet", (3, 64, 64), TINY, True),
        ("wrn-10-1", None, {"width_multiplier": 0.5}, False),  # residual additions: no chain
    ],
)
def test_which_models_score_excitation_in_the_forward(name, in_shape, options, fast):
    model = ydrop.models.create(name, in_shape=in_shape, dropout="excitation", **options).train()
    guide = Guide(model)
    shape = in_shape or (1, 28, 28) if name.startswith("fc") else in_shape or (3, 32, 32)
    x, y = torch.rand(4, *shape), torch.randint(0, 10, (4,))
    given = guide.step(x, y)
    assert (given == {}) is fast
    model(x).sum().backward()  # the forward consumes the scores, whichever path


# -------------------------------------------------------- no host-device sync
@pytest.fixture
def no_host_reads(monkeypatch):
    """Make every way of reading a tensor's value on the host raise; a GPU step
    that did any of these would wait for the device. The argument checks read
    values only where that is free (the CPU): here they act as on a GPU."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a tensor was read on the host in the per-step path")

    def install():
        monkeypatch.setattr(ydrop._validation, "_reads_are_free", lambda _tensor: False)
        for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"):
            monkeypatch.setattr(torch.Tensor, name, refuse)

    return install


# A model for each route a training step can take (the Guide's passes, the layers).
EVERY_ROUTE = [
    lambda: TwoBranchNet(YDrop(warmup_epochs=0), YDrop(warmup_epochs=0, score_every=2)),
    lambda: TwoBranchNet(YDrop(warmup_epochs=0), ExcitationDropout()),  # separate passes
    lambda: chain_net(ExcitationDropout()),  # excitation in the forward
    lambda: chain_net(YDrop(warmup_epochs=0)),  # conductance with the written backward
    lambda: chain_net(YDrop(warmup_epochs=0, score="gradxact")),  # gradxact in the forward
    # ... where the one-hot target starts below a ReLU on the logits
    lambda: nn.Sequential(chain_net(YDrop(warmup_epochs=0)), nn.ReLU()),
    lambda: TwoBranchNet(ActivationDropout(), YDrop(warmup_epochs=0, score="activation")),
    lambda: TwoBranchNet(YDrop(warmup_epochs=0, score="excitation"), ExcitationDropout(score="conductance")),
]


def training_steps(make):
    """A function that runs n training steps of the model ``make()`` with its Guide,
    after one first step."""
    torch.manual_seed(13)
    model = make().train()
    guide = Guide(model)
    guide.set_epoch(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))

    def steps(n):
        for _ in range(n):
            guide.step(x, y)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    steps(1)  # the first step may probe the model's structure once
    return steps


@pytest.mark.parametrize("make", EVERY_ROUTE)
def test_training_steps_never_read_tensors_on_the_host(make, no_host_reads):
    steps = training_steps(make)
    no_host_reads()
    steps(3)


def live_tensors() -> int:
    import gc

    gc.collect()
    return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())


@pytest.mark.filterwarnings("ignore::FutureWarning")  # gc.get_objects meets torch's deprecated aliases
@pytest.mark.parametrize("make", EVERY_ROUTE)
def test_training_steps_leave_no_tensors_behind(make):
    """A pass that kept its graph alive (a reference cycle through autograd's C++
    nodes, which no collector frees) grew the memory of an MNIST run by 0.6 GB an epoch."""
    steps = training_steps(make)
    steps(2)
    before = live_tensors()
    steps(5)
    # At most as many: tensors of earlier tests may be freed meanwhile (torch.compile's).
    assert live_tensors() <= before


class Wrapped(nn.Module):
    """A model whose own forward calls an nn.Sequential, returning its output as is
    or changed."""

    def __init__(self, change: bool):
        super().__init__()
        self.net, self.change = chain_net(ExcitationDropout()), change

    def forward(self, x):
        out = self.net(x)
        return out * 2.0 if self.change else out


@pytest.mark.parametrize("change", [False, True])
def test_a_wrapped_chain_is_fast_only_when_its_output_is_the_models(change):
    model = Wrapped(change).train()
    guide = Guide(model)
    x, y = torch.randn(8, 12), torch.randint(0, 5, (8,))
    assert ("net.3" in guide.step(x, y)) is change
    model(x).sum().backward()


# ------------------------------------------- conductance from the stem's output
def two_ydrop_net(first: nn.Module | None = None, **options) -> nn.Sequential:
    torch.manual_seed(14)
    return nn.Sequential(nn.Flatten(), first or nn.Linear(12, 32), nn.ReLU(), YDrop(warmup_epochs=0, **options),
                         nn.Linear(32, 32), nn.ReLU(), YDrop(warmup_epochs=0, **options), nn.Linear(32, 5)).train()


def started_guide(model, reuse=True):
    """A Guide past warm-up (epoch 0; the layers here have warmup_epochs=0)."""
    guide = Guide(model, reuse_forward=reuse)
    guide.set_epoch(0)
    return guide


def count_calls(module):
    """Calls of ``module``'s forward, counted without a hook (a hooked stem takes the
    separate pass)."""
    calls, forward = [], module.forward
    module.forward = lambda *args: calls.append(1) or forward(*args)
    return calls


def scored_step(model, x, y, reuse, seed=12):
    """One Guide step and training forward after a first one (which may probe the
    model's structure); (what step returned, the layers' mean scores after the
    forward, stem calls, the Guide)."""
    guide = started_guide(model, reuse)
    guide.step(x, y)
    model(x)
    stem_calls = count_calls(model[1])
    torch.manual_seed(seed)
    given = guide.step(x, y)
    model(x)
    means = [layer.mean_score.clone() for layer in guide.layers.values()]
    return given, means, len(stem_calls), guide


def test_conductance_in_the_forward_equals_the_separate_pass_and_captum_style_reference():
    x, y = torch.randn(64, 3, 4), torch.randint(0, 5, (64,))
    fast_given, fast, fast_calls, guide = scored_step(two_ydrop_net(), x, y, reuse=True)
    slow_given, slow, slow_calls, _ = scored_step(two_ydrop_net(), x, y, reuse=False)
    # Fast: the stem runs once (the training forward) and step lists no scores.
    assert (fast_calls, slow_calls) == (1, 2)
    assert fast_given == {} and sorted(slow_given) == ["3", "6"] and guide.scored_layers == ["3", "6"]
    for fast_mean, slow_mean in zip(fast, slow):
        torch.testing.assert_close(fast_mean, slow_mean, rtol=1e-5, atol=1e-6)
    # The same B_c = 12 samples as the separate pass: the first 12 of randperm(64).
    torch.manual_seed(12)
    subset = torch.randperm(64)[:12]
    model = two_ydrop_net()
    expected = ydrop.conductance(model, x[subset], y[subset], [model[3], model[6]], steps=5)
    for fast_mean, layer in zip(fast, (model[3], model[6])):
        torch.testing.assert_close(fast_mean, expected[layer].mean(0), rtol=1e-5, atol=1e-6)


def test_a_convolutional_stem_in_a_plain_sequential_is_scored_in_the_forward():
    def cnn():
        torch.manual_seed(15)
        return nn.Sequential(nn.Flatten(0, 0), nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             YDrop(warmup_epochs=0), nn.Flatten(), nn.Linear(36, 5)).train()

    x, y = torch.randn(20, 2, 6, 6), torch.randint(0, 5, (20,))
    fast_given, fast, fast_calls, _ = scored_step(cnn(), x, y, reuse=True)
    slow_given, slow, slow_calls, _ = scored_step(cnn(), x, y, reuse=False)
    assert fast_given == {} and list(slow_given) == ["4"] and (fast_calls, slow_calls) == (1, 2)
    torch.testing.assert_close(fast[0], slow[0], rtol=1e-5, atol=1e-6)


def test_per_sample_and_ranking_layers_share_the_pass_in_the_forward():
    def net():
        torch.manual_seed(16)
        return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), ExcitationDropout(score="conductance"), nn.Linear(32, 32),
                             nn.ReLU(), YDrop(warmup_epochs=0), nn.Linear(32, 5)).train()

    x, y = torch.randn(10, 12), torch.randint(0, 5, (10,))
    results = []
    for reuse in (True, False):
        model = net()
        guide = started_guide(model, reuse)
        torch.manual_seed(17)
        given = guide.step(x, y)
        assert (given == {}) is reuse
        model(x)
        results.append((model[2]._scores, model[5].mean_score.clone()))
    (fast_p, fast_mean), (slow_p, slow_mean) = results
    assert fast_p.shape == (10, 32)  # every sample, in order, for the per-sample policy
    torch.testing.assert_close(fast_p, slow_p, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_mean, slow_mean, rtol=1e-5, atol=1e-6)


def test_evaluation_forwards_before_the_training_forward_leave_the_scoring_to_it():
    model = two_ydrop_net(elasticity=1.0)
    guide = started_guide(model)
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    guide.step(x, y)
    model.eval()
    model(torch.randn(3, 12))  # another batch: not scored, not refused
    assert model[3].mean_score.numel() == 0  # nothing scored yet
    model.train()
    model(x)
    assert model[3].mean_score.shape == (32,)


def test_conductance_in_the_forward_refuses_another_batch():
    model = two_ydrop_net()
    guide = started_guide(model)
    guide.step(torch.randn(8, 12), torch.randint(0, 5, (8,)))
    with pytest.raises(ValueError, match="guide.step was given a batch of 8 samples but the next training "
                                         "forward has 6"):
        model(torch.randn(6, 12))


def test_a_step_without_a_forward_is_replaced_by_the_next_step():
    model = two_ydrop_net(score_every=2)
    guide = started_guide(model)
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    guide.step(torch.randn(8, 12), torch.randint(0, 5, (8,)))  # its forward never comes
    guide.step(x, y)
    model(x)  # scored for this batch: no complaint about the first one's size
    assert model[3].mean_score.shape == (32,)
    guide.step(x, y)  # score_every = 2: this step reuses the ranking
    before = model[3].mean_score.clone()
    model(torch.randn(4, 12))  # nothing armed: another batch size is fine
    assert guide.scored_layers == [] and torch.equal(model[3].mean_score, before)


def test_bad_targets_are_named_by_the_forward_that_scores_them():
    model = two_ydrop_net()
    guide = started_guide(model)
    x = torch.randn(5, 12)
    guide.step(x, torch.tensor([9, 9, 9, 9, 9]))
    with pytest.raises(ValueError, match=r"target holds class index 9, outside \[0, 4\]"):
        model(x)


@pytest.mark.parametrize("front", [nn.Dropout(0.2), nn.BatchNorm1d(12)], ids=["dropout", "batch-norm"])
def test_a_stem_reading_what_trains_differently_takes_the_separate_pass(front):
    model = nn.Sequential(front, *two_ydrop_net()[1:]).train()
    guide = started_guide(model)
    assert sorted(guide.step(torch.randn(16, 12), torch.randint(0, 5, (16,)))) == ["3", "6"]


def test_under_autocast_the_forward_scores_close_to_float32():
    """bfloat16 keeps 8 bits: the scores of either pass under CPU autocast follow
    the float32 ones (correlation over units above 0.95), not their last bits."""
    x, y = torch.randn(64, 12), torch.randint(0, 5, (64,))
    means = []
    for reuse, autocast in ((True, True), (False, True), (False, False)):
        model = two_ydrop_net()
        guide = started_guide(model, reuse)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            torch.manual_seed(18)
            assert (guide.step(x, y) == {}) is reuse
            model(x)
        means.append(model[3].mean_score)
    for mixed in means[:2]:
        assert torch.corrcoef(torch.stack([mixed, means[2]]))[0, 1] > 0.95


@pytest.mark.parametrize(
    "name, options, fast",
    [
        ("fc1", {"hidden": (16, 16)}, True),
        ("fc3", {"hidden": (16, 16, 16)}, True),
        ("s2", TINY, False),  # a forward of its own between the convolutions and the classifier
        ("m1", TINY, False),
    ],
)
def test_which_models_score_conductance_in_the_forward(name, options, fast):
    model = ydrop.models.create(name, dropout="ydrop", dropout_kwargs={"warmup_epochs": 0}, **options).train()
    guide = started_guide(model)
    shape = (1, 28, 28) if name.startswith("fc") else (3, 32, 32)
    x, y = torch.rand(10, *shape), torch.randint(0, 10, (10,))
    assert (guide.step(x, y) == {}) is fast
    model(x).sum().backward()
    assert all(layer.mean_score.numel() > 0 for layer in guide.layers.values())


def _two_step_counts_net(steps_first: int, steps_second: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), YDrop(warmup_epochs=0, steps=steps_first),
                         nn.Linear(16, 16), nn.ReLU(), YDrop(warmup_epochs=0, steps=steps_second), nn.Linear(16, 3))


def test_layers_with_different_steps_are_all_scored_as_by_the_separate_pass():
    # Two conductance groups (n_c 5 and 7) share the stem as their anchor inside the
    # training forward: each must get its own scores, equal to the separate pass's.
    torch.manual_seed(0)
    model = _two_step_counts_net(5, 7)
    x, y = torch.randn(14, 8), torch.randint(0, 3, (14,))
    means = []
    for reuse_forward in (True, False):
        copy_ = copy.deepcopy(model).train()
        guide = Guide(copy_, reuse_forward=reuse_forward)
        guide.set_epoch(0)
        torch.manual_seed(1)
        guide.step(x, y)
        copy_(x)
        assert guide.scored_layers == ["2", "5"]
        means.append([copy_[2].mean_score.clone(), copy_[5].mean_score.clone()])
    for in_forward, separate in zip(*means):
        assert in_forward.shape == (16,)
        torch.testing.assert_close(in_forward, separate, rtol=1e-5, atol=1e-6)


def test_a_score_function_that_leaves_out_a_layer_or_rows_is_named(monkeypatch):
    from ydrop.scores import registry

    monkeypatch.setattr(registry, "_SCORES", dict(registry._SCORES))  # the registrations end with the test
    ydrop.register_score("partial_test", lambda model, inputs, target, layers: {})
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ExcitationDropout(score="partial_test"), nn.Linear(16, 3))
    x, y = torch.randn(6, 8), torch.randint(0, 3, (6,))
    guide = Guide(model.train())
    with pytest.raises(ValueError, match=r"score 'partial_test' returned None for layer '2'.*one row per sample \(6\)"):
        guide.step(x, y)
    ydrop.register_score("partial_test", lambda model, inputs, target, layers: {layers[0]: torch.ones(5, 16)})
    with pytest.raises(ValueError, match=r"score 'partial_test' returned shape \(5, 16\) for layer '2'"):
        guide.step(x, y)


def test_a_guided_layer_the_forward_never_runs_is_named():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), YDrop(warmup_epochs=0), nn.Linear(16, 3))
            self.spare = YDrop(warmup_epochs=0)

        def forward(self, x):
            return self.body(x)

    guide = Guide(WithSpare().train())
    guide.set_epoch(0)
    with pytest.raises(ValueError, match=r"layer 'spare' \(YDrop\) did not run in the model's forward"):
        guide.step(torch.randn(10, 8), torch.randint(0, 3, (10,)))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_made_between_step_and_forward_leaves_the_original_alone(how):
    """The copy of a model copies the Guide's hook on it: the copy's forward must not
    score the original's layers, and the original still takes its scores in its own."""
    import pickle

    model = two_ydrop_net()
    guide = started_guide(model)
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    guide.step(x, y)
    model(x)
    guide.step(x, y)
    copied = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    before = model[3].mean_score.clone()
    copied(torch.randn(16, 12))
    assert torch.equal(model[3].mean_score, before)
    torch.manual_seed(1)
    model(torch.randn(16, 12))  # the original's own forward scores its layers
    assert not torch.equal(model[3].mean_score, before)
    copy_guide = started_guide(copied)
    copy_guide.step(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied(x).sum().backward()


def test_resuming_from_a_state_dict_mid_training_continues_as_the_uninterrupted_run(tmp_path):
    """Model + optimizer + Guide saved after some Y-Drop steps (mid score_every cycle),
    loaded into a fresh model: the next steps equal those of the run that went on."""
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(16, 12, generator=g), torch.randint(0, 5, (16,), generator=g)) for _ in range(6)]

    def run(model, optimizer, guide, steps):
        outputs = []
        for index in steps:
            x, y = batches[index]
            guide.set_epoch(index // 2)
            torch.manual_seed(100 + index)
            guide.step(x, y)
            out = model(x)
            optimizer.zero_grad()
            F.cross_entropy(out, y).backward()
            optimizer.step()
            outputs.append(out.detach())
        return outputs

    def fresh():
        model = two_ydrop_net(score_every=2, elasticity=0.1)
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), Guide(model)

    whole = run(*fresh(), range(6))
    model, optimizer, guide = fresh()
    run(model, optimizer, guide, range(3))
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "guide": guide.state_dict()},
               tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    model, optimizer, guide = fresh()  # its Y-Drop layers lazy: no EMA, no ranking yet
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    guide.load_state_dict(saved["guide"])
    for got, expected in zip(run(model, optimizer, guide, range(3, 6)), whole[3:]):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_guide_built_every_epoch_leaves_no_hooks_behind():
    """Hooks of Guides that are gone remove themselves; a Guide used in one expression still scores."""
    model = two_ydrop_net()
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    for epoch in range(3):
        before = model[3].mean_score.clone()
        started_guide(model).step(x, y)  # this Guide lives on only in the hook it armed
        model(x)
        assert not torch.equal(model[3].mean_score, before)
    model(x)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_guided_layers_lists_the_guided_layers_at_any_depth_and_nothing_else():
    inner = nn.Sequential(nn.Linear(4, 4), ExcitationDropout(), nn.Dropout(0.5))
    model = nn.Sequential(nn.Linear(4, 4), YDrop(), inner, ActivationDropout(), nn.Linear(4, 2))
    found = ydrop.guided_layers(model)
    assert list(found) == ["1", "2.1", "3"]
    assert found["2.1"] is inner[1] and found == Guide(model).layers
    assert ydrop.guided_layers(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))) == {}
