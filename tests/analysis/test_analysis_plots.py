"""What the spread figure draws: one line per model on each panel, the top-unit
markers on the cumulative curve and the shares in the legend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ydrop.analysis import plots, spread_from_scores


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, kept open for inspection."""
    figures = []

    def keep(fig, path):
        figures.append(fig)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    yield figures
    for fig in figures:
        plots.plt.close(fig)


def test_spread_figure_lines_markers_and_legends(drawn, tmp_path):
    seeds = [spread_from_scores(torch.tensor([4.0, 1.0, 3.0, 2.0]), (0.25, 0.5)),
             spread_from_scores(torch.tensor([2.0, 2.0, 6.0, 0.0]), (0.25, 0.5))]
    bare = spread_from_scores(torch.tensor([1.0, 1.0]), ())
    path = plots.plot_conductance_spread({"ydrop": seeds, "plain": bare}, tmp_path / "s.png", title="T")
    assert path == tmp_path / "s.png"
    fig, = drawn
    left, right = fig.axes
    assert fig._suptitle.get_text() == "T"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["ydrop", "plain"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == [
        "ydrop (total 10; top 25/50 %: 50.0/75.0 %)", "plain (total 2)"]
    sorted_line, = left.lines[:1]
    assert np.allclose(sorted_line.get_ydata(), [5.0, 2.5, 2.0, 0.5])  # mean over the two seeds
    cumulative, markers, bare_cumulative, bare_markers = right.lines
    assert np.allclose(cumulative.get_ydata(), [5.0, 7.5, 9.5, 10.0])
    assert list(markers.get_xdata()) == [1, 2] and np.allclose(markers.get_ydata(), [5.0, 7.5])
    assert markers.get_color() == cumulative.get_color()
    assert len(bare_markers.get_xdata()) == 0 and list(bare_cumulative.get_xdata()) == [1, 2]


def test_spread_figure_refuses_mixed_widths(drawn, tmp_path):
    mixed = [spread_from_scores(torch.ones(3)), spread_from_scores(torch.ones(4))]
    with pytest.raises(ValueError, match=r"spreads\['m'\] mixes layers of different widths: \[3, 4\]"):
        plots.plot_conductance_spread({"m": mixed}, tmp_path / "s.png")
    assert not drawn


def test_spread_figure_that_fails_while_drawing_leaves_no_figure_open(drawn, tmp_path):
    # Seeds of one model scored with different top fractions cannot be averaged.
    seeds = [spread_from_scores(torch.tensor([4.0, 1.0, 3.0, 2.0]), (0.25,)),
             spread_from_scores(torch.tensor([2.0, 2.0, 6.0, 0.0]), (0.5,))]
    open_before = plots.plt.get_fignums()
    with pytest.raises(KeyError):
        plots.plot_conductance_spread({"ydrop": seeds}, tmp_path / "s.png")
    assert plots.plt.get_fignums() == open_before and not drawn
