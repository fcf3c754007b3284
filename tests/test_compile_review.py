"""torch.compile, as a demanding user uses it (review of the mask op, ``ydrop/_opaque.py``).

Several models in one process (a sweep, copies), copies that must draw with their
own state, errors raised inside the op, the in-place ``module.compile()`` and DDP.
Kept tiny: compiling costs seconds."""

from __future__ import annotations

import copy
import gc
import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.utils import counters

import ydrop


@pytest.fixture(autouse=True)
def fresh_counters(fresh_compiler):
    counters.clear()


def mlp(layer) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), layer(), nn.Linear(16, 3))


LAYERS = {
    "ydrop": lambda: ydrop.YDrop(warmup_epochs=0),
    "excitation": ydrop.ExcitationDropout,
    "activation": ydrop.ActivationDropout,
}


@pytest.mark.parametrize("method", list(LAYERS))
def test_models_of_the_same_architecture_share_one_compiled_graph(method):
    """A sweep builds and compiles model after model: a graph guarded on the layer
    object would recompile for each (nn.Dropout's models share one graph) and fall
    back to eager once Dynamo's recompile limit (8) is reached."""
    x = torch.randn(6, 8)
    models = []
    for _ in range(10):
        model = mlp(LAYERS[method])
        models.append(model)  # all alive: no cache entry is dropped
        if method != "activation":
            model[2].set_scores(torch.rand(6, 16))
        with torch._dynamo.config.patch(error_on_recompile=len(models) > 1):
            torch.compile(model, fullgraph=True)(x)
    assert counters["stats"]["unique_graphs"] == 1


def ema_moved(model: nn.Module) -> bool:
    return not torch.equal(model[2].drop_rate, torch.full((16,), 0.35))


def test_copies_share_the_graph_but_each_draws_with_its_own_state():
    """One graph for the original, a deep copy, a pickled copy and a model loaded from
    its state_dict: each compiled call must update that model's own EMA only (the
    layer is an input of the graph, not a constant of it)."""
    torch.manual_seed(0)
    original = mlp(lambda: ydrop.YDrop(warmup_epochs=0, num_units=16))
    copies = [copy.deepcopy(original), pickle.loads(pickle.dumps(original)),
              mlp(lambda: ydrop.YDrop(warmup_epochs=0, num_units=16))]
    copies[2].load_state_dict(original.state_dict())
    assert "_mask_key" not in str(list(original.state_dict()))
    models = [original, *copies]
    assert len({int(model[2]._mask_key) for model in models}) == len(models)
    x = torch.randn(6, 8)
    for i, model in enumerate(models):
        model[2].set_scores(torch.rand(6, 16))
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            torch.compile(model, fullgraph=True)(x)
        assert [ema_moved(m) for m in models] == [j <= i for j in range(len(models))]
    assert counters["stats"]["unique_graphs"] == 1


def test_a_model_compiled_after_another_was_garbage_collected():
    x = torch.randn(6, 8)
    first = mlp(LAYERS["ydrop"])
    first[2].set_scores(torch.rand(6, 16))
    torch.compile(first, fullgraph=True)(x)
    del first
    gc.collect()
    second = mlp(LAYERS["ydrop"])
    second[2].set_scores(torch.rand(6, 16))
    torch.compile(second, fullgraph=True)(x)
    assert ema_moved(second)


@pytest.mark.parametrize("guide_sees", ["compiled", "original"])
def test_guide_scores_in_the_forward_of_a_model_compiled_during_warmup(guide_sees):
    """Y-Drop's default warm-up: the model is compiled at the first step, the Guide's
    hook is added at the first guided one. Dynamo does not guard on module hooks, so
    the code compiled before would never call it: the layers would stay plain
    dropout for ever (one RuntimeWarning), while ``scored_layers`` lists them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ydrop.YDrop(warmup_epochs=1), nn.Linear(16, 16), nn.ReLU(),
                          ydrop.YDrop(warmup_epochs=1), nn.Linear(16, 3))
    compiled = torch.compile(model)
    guide = ydrop.Guide(compiled if guide_sees == "compiled" else model)
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))
    for step in range(3):
        guide.set_epoch(min(step, 1))
        guide.step(x, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # "ran in training mode without scores"
            compiled(x).sum().backward()
    assert guide.scored_layers == ["2", "5"]
    assert model[2].mean_score.shape == (16,) and model[5].mean_score.shape == (16,)


def test_an_error_raised_inside_the_compiled_op_reaches_the_user_as_is():
    model = mlp(ydrop.ExcitationDropout)
    model[2].set_scores(torch.rand(4, 16))  # scored on a batch of 4, fed a batch of 6
    with pytest.raises(ValueError, match="has scores for 4 samples but the batch has 6: call guide.step"):
        torch.compile(model, fullgraph=True)(torch.randn(6, 8))


class _WrongShape(ydrop.ActivationDropout):
    def _draw_mask(self, x):
        return super()._draw_mask(x)[:1]


def test_a_mask_of_another_shape_than_declared_is_refused_by_the_op():
    """A subclass whose ``_draw_mask`` disagrees with ``_mask_shape`` (what the
    compiled graph was built for) gets an error naming both shapes."""
    with pytest.raises(RuntimeError, match=r"_WrongShape._draw_mask returned a mask of shape \(1, 8\) but "
                                           r"_mask_shape declared \(4, 8\)"):
        torch.compile(_WrongShape(), fullgraph=True)(torch.rand(4, 8))


def test_the_mask_key_stays_on_the_cpu_whatever_the_default_device():
    """A model built on the meta device and materialised with ``to_empty``: a meta key
    (``to_empty`` moves only parameters and buffers) sent the op to its fake kernel,
    an uninitialised mask (values like 1e31). On a GPU the key's ``int()`` would
    wait for the device at every step."""
    with torch.device("meta"):
        layer = ydrop.ActivationDropout(p=0.5)
    layer.to_empty(device="cpu")
    assert layer._mask_key.device == torch.device("cpu")
    out = torch.compile(layer, fullgraph=True)(torch.ones(6, 8))
    assert ((out == 0) | ((out >= 1) & (out <= 8))).all()  # dropped, or kept times N / kept


@pytest.mark.parametrize("shape", [(4, 8), (4, 3, 5), (4, 3, 5, 5)])
def test_the_mask_op_passes_torch_opcheck(shape):
    """Schema, fake kernel and AOT dispatch (static and dynamic shapes) agree with the op."""
    layer = ydrop.ActivationDropout().train()  # building a layer defines the op
    x = torch.rand(shape)
    torch.library.opcheck(torch.ops.ydrop.mask.default, (x, layer._mask_key, list(layer._mask_shape(x))))
