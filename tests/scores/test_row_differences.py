"""rows_times_weight equals the dense product and takes the sparse route only where
little changes; in the conductance pass it keeps Captum's numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ydrop.scores import _row_differences as row_differences
from ydrop.scores import _chain_backward as chain_backward
from ydrop.scores._row_differences import RepeatedRows, repeated_by_class, rows_times_weight
from ydrop.scores.conductance import conductance

from test_conductance import assert_close, captum_conductance, matmul_multiply_adds as _multiply_adds


@pytest.fixture(autouse=True)
def small_products_take_the_route(monkeypatch):
    """The tests' products are small; the size rule has its own test."""
    monkeypatch.setattr(row_differences, "MIN_GROUP_MULTIPLY_ADDS", 0)


def _groups(changed_fractions, rows=6, out=40, dtype=torch.float64, seed=0):
    """(len + 1, rows, out): group g equals group g + 1 except in
    ``changed_fractions[g]`` of its entries, like the points of a path."""
    generator = torch.Generator().manual_seed(seed)
    groups = [torch.randn(rows, out, generator=generator, dtype=dtype)]
    for fraction in reversed(changed_fractions):
        changed = torch.rand(rows, out, generator=generator) < fraction
        groups.insert(0, torch.where(changed, torch.randn(rows, out, generator=generator, dtype=dtype), groups[0]))
    return torch.stack(groups)


@pytest.mark.parametrize(
    "fractions",
    [[], [0.0], [0.0, 0.0, 0.0], [0.02, 0.1, 0.5], [0.9, 0.05], [1.0, 1.0], [0.0, 0.9, 0.05, 0.9, 0.0]],
    ids=["one group", "equal", "all equal", "mixed", "dense first", "all dense", "alternating runs"],
)
def test_equals_the_dense_product(fractions):
    rows = _groups(fractions)
    weight = torch.randn(40, 30, dtype=torch.float64)
    torch.testing.assert_close(rows_times_weight(rows, weight), rows @ weight, rtol=1e-12, atol=1e-12)


def test_float32_equal_up_to_rounding():
    rows = _groups([0.03, 0.1, 0.12], rows=16, out=512, dtype=torch.float32)
    weight = torch.randn(512, 256)
    reference = rows.double() @ weight.double()
    error = (rows_times_weight(rows, weight).double() - reference).abs().max() / reference.abs().max()
    assert error < 1e-6


def test_a_row_without_changes_and_rows_with_some():
    """Bags of a sparse group may be empty (rows equal to the reference's) next to
    non-empty ones: every row gets its own sum."""
    rows = _groups([0.0, 0.0])
    rows[0, 2, 5] += 1.0
    rows[1, 4, :3] -= 2.0
    weight = torch.randn(40, 30, dtype=torch.float64)
    torch.testing.assert_close(rows_times_weight(rows, weight), rows @ weight, rtol=1e-12, atol=1e-12)


def test_only_groups_that_change_much_are_multiplied_densely():
    """Dense multiply-adds: the last group and each group with more than
    SPARSE_FRACTION of its entries changed from the next; the others go through
    the sparse bag."""
    rows, out, inner = 6, 40, 30
    fractions = [0.0, 0.05, 0.6, 0.1, 0.8]
    groups = _groups(fractions, rows=rows, out=out)
    changed = (groups[:-1] != groups[1:]).flatten(1).float().mean(1)
    dense = 1 + int((changed > row_differences.SPARSE_FRACTION).sum())
    assert dense == 3
    weight = torch.randn(out, inner, dtype=torch.float64)
    assert _multiply_adds(lambda: rows_times_weight(groups, weight)) == dense * rows * out * inner


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_stays_dense(dtype):
    groups = _groups([0.0, 0.0], dtype=dtype)
    weight = torch.randn(40, 30, dtype=dtype)
    assert _multiply_adds(lambda: rows_times_weight(groups, weight)) == 3 * 6 * 40 * 30
    torch.testing.assert_close(rows_times_weight(groups, weight), groups @ weight)


def test_small_products_stay_dense(monkeypatch):
    """A group's product below MIN_GROUP_MULTIPLY_ADDS (a 10-class head) is not
    worth the route's fixed cost."""
    monkeypatch.setattr(row_differences, "MIN_GROUP_MULTIPLY_ADDS", 6 * 40 * 30 + 1)
    groups = _groups([0.0, 0.0])
    weight = torch.randn(40, 30, dtype=torch.float64)
    assert _multiply_adds(lambda: rows_times_weight(groups, weight)) == 3 * 6 * 40 * 30


def test_repeated_by_class_keeps_each_class_first_sample():
    repeated = repeated_by_class(torch.tensor([2, 0, 2, 1, 0]))
    assert repeated.kept.tolist() == [1, 3, 0]  # classes 0, 1, 2
    assert repeated.index.tolist() == [2, 0, 2, 1, 0]
    assert repeated_by_class(torch.tensor([3, 1, 2])) is None  # nothing repeats
    # Off the CPU the number of classes present would be read from the device.
    assert repeated_by_class(torch.empty(5, dtype=torch.long, device="meta")) is None


def _repeated_first_group(fractions, classes, out=40, seed=0):
    """Groups as ``_groups``, whose first group's rows depend on ``classes`` only, as
    the cotangents at a shared start do."""
    groups = _groups(fractions, rows=len(classes), out=out, seed=seed)
    target = torch.tensor(classes)
    groups[0] = torch.randn(max(classes) + 1, out, dtype=groups.dtype)[target]
    return groups, target


@pytest.mark.parametrize(
    "fractions", [[0.02, 0.1, 0.05], [0.9, 0.05, 0.02], [1.0, 1.0], [0.05, 0.9, 0.05]],
    ids=["only group 0 dense", "leading dense groups", "all dense", "a dense group later"],
)
def test_a_repeated_first_group_multiplies_its_distinct_rows_only(fractions):
    groups, target = _repeated_first_group(fractions, [0, 4, 0, 2, 4, 0])
    weight = torch.randn(40, 30, dtype=torch.float64)
    repeated = repeated_by_class(target)
    result = rows_times_weight(groups, weight, repeated)
    torch.testing.assert_close(result, groups @ weight, rtol=1e-12, atol=1e-12)
    without = _multiply_adds(lambda: rows_times_weight(groups, weight))
    assert _multiply_adds(lambda: rows_times_weight(groups, weight, repeated)) == without - (6 - 3) * 40 * 30


def test_repeated_rows_must_index_every_row_of_a_group():
    groups, _ = _repeated_first_group([0.1], [0, 1, 0])
    wrong = RepeatedRows(kept=torch.tensor([0, 1]), index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="repeated: 2 rows indexed, the groups have 3"):
        rows_times_weight(groups, torch.randn(40, 30, dtype=torch.float64), wrong)


@pytest.mark.parametrize("baseline", [None, "per-sample", "small weights"])
def test_the_pass_hands_the_class_repeats_only_at_a_shared_start(baseline, monkeypatch):
    """At a shared start the first point's cotangents repeat by class, and the chain's
    Linear gets them when its weight is large enough to pay for the lookup; a
    per-sample baseline starts every sample elsewhere."""
    seen = []
    original = chain_backward.rows_times_weight
    monkeypatch.setattr(chain_backward, "rows_times_weight",
                        lambda rows, weight, repeated=None: seen.append(repeated) or original(rows, weight, repeated))
    if baseline != "small weights":  # the net's 256 x 256 weights are below the size that pays
        monkeypatch.setattr(chain_backward, "MIN_REPEATS_WEIGHT", 256 * 256)
    model = wide_mlp()
    torch.manual_seed(4)
    x = torch.rand(12, 1, 8, 8)
    y = torch.tensor([0, 1, 0, 3, 1, 1, 5, 0, 7, 3, 9, 2])
    base = 0.05 * torch.rand_like(x) if baseline == "per-sample" else None
    layers = [model[3], model[6]]
    ours = conductance(model, x, y, layers, baseline=base, steps=5)
    if baseline is None:
        repeated = seen[-1]
        assert repeated.kept.tolist() == [0, 1, 11, 3, 6, 8, 10]  # classes 0, 1, 2, 3, 5, 7, 9
        assert torch.equal(y[repeated.kept[repeated.index]], y)  # each sample's kept row has its class
    else:
        assert seen[-1] is None
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5, baseline=base))


@pytest.fixture
def bags(monkeypatch):
    """The number of rows of every sparse product made, in call order."""
    sizes = []
    original = row_differences._sparse_rows_times_weight
    monkeypatch.setattr(row_differences, "_sparse_rows_times_weight",
                        lambda rows, weight: sizes.append(rows.shape[0]) or original(rows, weight))
    return sizes


def wide_mlp():
    """An MLP wide enough for the ReLU pattern to change in few units between the
    points of the path, as in the papers' FC nets."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10),
    )


@pytest.mark.parametrize("baseline", [None, "per-sample"])
def test_conductance_takes_the_sparse_route_and_keeps_captums_numbers(baseline, bags, backward):
    model = wide_mlp()
    torch.manual_seed(4)
    x = torch.rand(12, 1, 8, 8)
    y = torch.randint(0, 10, (12,))
    base = None if baseline is None else 0.05 * torch.rand_like(x)
    layers = [model[3], model[6]]
    ours = conductance(model, x, y, layers, baseline=base, steps=5)
    # Below the head at least one group changes little. Autograd also multiplies
    # the head by its one-hot cotangent, the same at every point (4 groups of 12
    # rows); the written backward reads the head's row instead.
    head = [] if backward == "written" else [4 * 12]
    assert bags[:-1] == head and bags[-1] >= 12
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5, baseline=base))


def test_off_the_cpu_the_route_is_off_and_reads_nothing_on_the_host(monkeypatch):
    """Choosing the route reads counts on the host, which on an accelerator would
    wait for the device; off the CPU (here the meta device) the product is dense and
    nothing is read."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("read a tensor on the host")

    for method in ("tolist", "item", "nonzero"):
        monkeypatch.setattr(torch.Tensor, method, refuse)
    groups = torch.empty(5, 12, 64, device="meta")
    weight = torch.empty(64, 32, device="meta")
    result = rows_times_weight(groups, weight)
    assert result.device.type == "meta" and result.shape == (5, 12, 32)


class TokenMLP(nn.Module):
    """A Linear on every token of (B, T, D) rows above a scored layer: its cotangent
    groups hold B T rows per point."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.body = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 128, 6))

    def forward(self, x):
        return self.head(self.body(x))


def test_token_rows_take_the_route_and_keep_captums_numbers(bags, backward):
    model = TokenMLP()
    torch.manual_seed(8)
    x = torch.rand(5, 3, 16)
    y = torch.randint(0, 6, (5,))
    layers = [model.body[2], model.body[5]]
    ours = conductance(model, x, y, layers, steps=5)
    # The token Linear's groups are B T rows (autograd's product for the head, B
    # rows of its one-hot cotangent in 4 equal groups, comes first).
    head = [] if backward == "written" else [4 * 5]
    assert bags[:-1] == head and bags[-1] > 0 and bags[-1] % (5 * 3) == 0
    for layer in layers:
        assert_close(ours[layer], captum_conductance(model, layer, x, y, 5))


def test_chunks_route_on_their_own_and_give_the_same_numbers():
    """With internal_batch_size each chunk of samples chooses its own route (the
    changed entries differ from chunk to chunk); the numbers stay the whole
    batch's up to float rounding."""
    model = wide_mlp()
    torch.manual_seed(9)
    x = torch.rand(12, 1, 8, 8)
    y = torch.randint(0, 10, (12,))
    layers = [model[3], model[6]]
    whole = conductance(model, x, y, layers, steps=5)
    chunked = conductance(model, x, y, layers, steps=5, internal_batch_size=4 * 6)
    for layer in layers:
        torch.testing.assert_close(chunked[layer], whole[layer], rtol=1e-5, atol=1e-6 * whole[layer].abs().max().item())
