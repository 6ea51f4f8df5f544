"""The sweep's Pareto plot: tied trials drawn once with all their names, no label over another."""

from sweeps.engine.report import pareto_figure, plot_pareto, tie_groups

MULTI = (("asr", "min"), ("benign_accuracy", "max"), ("over_refusal", "min"))


def _rows():
    # three trials tied at one point (the default sweep's saturated case), two close to each other, one apart
    rows = [{"trial_id": f"trial_{i:05d}", "asr": 0.0, "benign_accuracy": 0.9375, "over_refusal": 0.0,
             "pareto": True} for i in range(3)]
    rows += [{"trial_id": "trial_00003", "asr": 0.01, "benign_accuracy": 0.94, "over_refusal": 0.1, "pareto": True},
             {"trial_id": "trial_00004", "asr": 0.012, "benign_accuracy": 0.935, "over_refusal": 0.2, "pareto": False},
             {"trial_id": "trial_00005", "asr": 0.5, "benign_accuracy": 0.5, "over_refusal": 0.0, "pareto": False}]
    return rows


def test_tied_trials_are_one_group():
    groups = tie_groups(_rows(), "asr", "benign_accuracy")
    assert sorted(len(g) for g in groups) == [1, 1, 1, 3]


def test_labels_name_every_trial_once_and_never_overlap(tmp_path):
    import matplotlib.pyplot as plt

    fig = pareto_figure(_rows(), MULTI)
    ax = fig.axes[0]
    texts = [t for t in ax.texts]
    assert len(texts) == 4  # one label per point
    assert any("(3 tied)" in t.get_text() for t in texts)
    named = ", ".join(t.get_text() for t in texts)
    assert all(named.count(f"trial_{i:05d}") == 1 for i in range(6))
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert ax.get_xlabel().startswith("asr (lower is better)")
    plt.close(fig)
    assert plot_pareto(_rows(), MULTI, tmp_path / "p.png").stat().st_size > 0
    assert plot_pareto([], MULTI, tmp_path / "q.png") is None
