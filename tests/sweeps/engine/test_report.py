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


def test_a_single_objective_plots_its_own_axes_and_marks_its_front_on_them():
    from sweeps.margin_sweep import OBJECTIVES

    axes = OBJECTIVES.axes("single", "robust_score")
    assert [m for m, _ in axes] == ["knowledge_retention", "benign_accuracy", "robust_score"]
    assert OBJECTIVES.axes("single", "score") == OBJECTIVES.multi == OBJECTIVES.axes("multi", "robust_score")
    from sweeps.engine.report import pareto_front

    rows = [{"trial_id": "a", "knowledge_retention": 0.2, "benign_accuracy": 0.9, "robust_score": 0.7},
            {"trial_id": "b", "knowledge_retention": 3.0, "benign_accuracy": 0.9, "robust_score": -0.1},  # dominated
            {"trial_id": "c", "knowledge_retention": 0.5, "benign_accuracy": 1.0, "robust_score": 0.5}]
    assert pareto_front(rows, axes) == {0, 2}
    for i, r in enumerate(rows):
        r["pareto"] = i in {0, 2}
    fig = pareto_figure(rows, axes)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "knowledge_retention (lower is better)"
    assert ax.get_ylabel() == "benign_accuracy (higher is better)"
    assert "robust-score" in fig.axes[1].get_ylabel()  # the colour bar: the objective itself (may be < 0)
