"""param_norm_changes: relative norm change per parameter between checkpoints, frozen ones highlighted."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import collapse_nb  # noqa: E402
from collapse_nb import plots  # noqa: E402

from collapse_nb.plots.checkpoints import checkpoint_labels  # noqa: E402

from . import example_run, text_log_run  # noqa: E402
from .test_data import params_table  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_param_norm_changes_from_a_params_table():
    ax = plots.param_norm_changes(params_table())
    img = ax.images[0].get_array()
    assert img.shape == (4, 2)                                          # parameters x transitions
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows == ["enc.weight", "frozen.weight", "zero.bias", "grow.bias"]
    assert np.allclose(img[0], np.log10([1.0, 0.5]))                     # enc.weight: +100%, +50%
    assert img.mask[1].all() and img.mask[2].all()                       # unchanged: drawn in the dead colour
    overlay = ax.images[1]
    assert to_hex(overlay.get_cmap()(1.0)) == plots.DEAD_COLOR
    assert list(~overlay.get_array().mask[:, 0]) == [False, True, True, False]
    red = {t.get_text() for t in ax.get_yticklabels() if to_hex(t.get_color()) == plots.DEAD_COLOR}
    assert red == {"frozen.weight", "zero.bias"}
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert cols == ["step-100.pt →\nstep-200.pt", "step-200.pt →\nstep-300.pt"]
    cells = [t.get_text() for t in ax.texts]
    assert "+1.0e+00" in cells and "+5.0e-01" in cells
    assert "norm unchanged (frozen)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_title(loc="left") and ax.get_xlabel() and ax.get_ylabel() == "parameter"
    assert ax.images[0].colorbar.ax.get_ylabel() == "log10(|Δ norm| / norm)"


def test_param_norm_changes_from_a_run():
    run = collapse_nb.Run(example_run().scalars, {}, extra={"params": params_table()})
    ax = plots.param_norm_changes(run)
    assert ax.images[0].get_array().shape == (4, 2)


def test_param_norm_changes_on_the_example_shows_the_per_epoch_checkpoints():
    run = example_run()
    ax = plots.param_norm_changes(run)
    ch = plots.param_norm_change_table(run.params)
    steps = sorted(run.params["step"].astype(float).unique())
    assert steps == [10, 20, 30, 40, 50, 60]                             # one checkpoint per epoch
    img = ax.images[0].get_array()
    params = list(dict.fromkeys(run.params["param"].astype(str)))
    assert img.shape == (len(params), 5) == (12, 5)                      # parameters x transitions
    assert [t.get_text() for t in ax.get_yticklabels()] == params
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        f"epoch_00{k}.pt (step {10 * k}) →\nepoch_00{k + 1}.pt (step {10 * (k + 1)})" for k in range(1, 6)]
    rel = ch.pivot(index="param", columns="to_step", values="rel_change").reindex(params)
    arr = rel.to_numpy(float)
    live = arr != 0
    assert np.allclose(img.data[live], np.log10(np.abs(arr[live])))
    cells = [t.get_text() for t in ax.texts]
    assert cells == [f"{v:+.1e}" if v != 0 else "0" for v in arr.ravel()]
    head = rel.loc["projection.weight"].to_numpy(float)                  # the tiny head grows fastest at first
    assert head[0] == arr[:, 0].max() > 1


def test_param_norm_changes_without_checkpoints():
    with pytest.raises(plots.MissingDataError, match="run.params .* it is empty"):
        plots.param_norm_changes(text_log_run())
    one = params_table()
    with pytest.raises(plots.MissingDataError, match="at least 2 checkpoints; found 1"):
        plots.param_norm_changes(one[one["step"] == 100])
    with pytest.raises(TypeError, match="needs a collapse_nb Run or its params table"):
        plots.param_norm_changes([1, 2])


def test_checkpoint_labels_keep_the_parts_that_differ():
    hf = [f"runs/exp/checkpoint-{s}/pytorch_model.bin" for s in (1000, 2000)]
    assert checkpoint_labels(hf, [1000.0, 2000.0]) == ["checkpoint-1000", "checkpoint-2000"]
    assert checkpoint_labels(["a/first.pt", "a/second.pt"], [10.0, float("nan")]) == ["first.pt (step 10)",
                                                                                      "second.pt"]
    assert checkpoint_labels(["model.pt"], [5.0]) == ["model.pt (step 5)"]


def test_param_norm_changes_on_checkpoints_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model[0].weight.requires_grad_(False)                               # frozen
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for k in range(3):
        for _ in range(5):
            x = torch.randn(16, 4)
            loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        ema = {n: t * 0.5 for n, t in model.state_dict().items()}      # a second state dict, same names
        torch.save({"model": model.state_dict(), "ema": ema, "step": (k + 1) * 5}, tmp_path / f"ckpt_{k}.pt")
    run = collapse_nb.load(tmp_path)
    ax = plots.param_norm_changes(run)
    assert ax.images[0].get_array().shape == (4, 2)
    red = {t.get_text() for t in ax.get_yticklabels() if to_hex(t.get_color()) == plots.DEAD_COLOR}
    assert red == {"0.weight"}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ckpt_0.pt (step 5) →\nckpt_1.pt (step 10)",
                                                           "ckpt_1.pt (step 10) →\nckpt_2.pt (step 15)"]
