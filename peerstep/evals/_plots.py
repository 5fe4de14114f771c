"""The report's figures, drawn with matplotlib (the ``report`` extra) on the non-interactive Agg backend.

Each figure function takes a PooledReport and returns a Figure; ``svg`` and ``png`` turn one into inline SVG
(text kept as text, so the page stays searchable and small) or a print-resolution PNG. matplotlib is imported
only here, and only when a figure is drawn, so the rest of peerstep never needs it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peerstep._errors import InputError
from peerstep.evals._pool import PooledReport, Status, SummaryRow, is_baseline
from peerstep.evals._report import StrategySummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PRINT_DPI = 300
STATUS_COLOURS: dict[Status, str] = {"correct": "#2e8b57", "wrong": "#d1495b", "error": "#edae49",
                                     "missing": "#e6e6e6"}
_PALETTE = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#2ca02c", "#d62728"]
_BASELINE_COLOURS = ["#555555", "#999999"]


def require_matplotlib() -> None:
    """Fail now, with the install hint, rather than after a long eval that was asked for a report."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise InputError("eval reports draw their plots with matplotlib, which is not installed: "
                         "pip install 'peerstep[report]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.titlesize": 10})
    return plt


def colours(report: PooledReport) -> dict[str, str]:
    """A fixed colour per strategy, greys for the bare-model baselines, the same in every figure."""
    out, base, other = {}, iter(_BASELINE_COLOURS * 4), iter(_PALETTE * 4)
    for name in report.labels:
        out[name] = next(base) if is_baseline(name) else next(other)
    return out


def _panels(report: PooledReport) -> list[tuple[str, list[SummaryRow]]]:
    """One panel per dataset, plus "all" when there are several."""
    rows = report.rows()
    keys = report.datasets + (["all"] if len(report.datasets) > 1 else [])
    return [(k, [r for r in rows if r.dataset == k]) for k in keys]


def _err(s: StrategySummary) -> list[list[float]]:
    """The interval as error-bar lengths (never negative: at 100% the Wilson bound can round just below p)."""
    return [[max(0.0, s.accuracy - s.ci_low)], [max(0.0, s.ci_high - s.accuracy)]]


def accuracy(report: PooledReport) -> Figure:
    """Accuracy with its Wilson 95% interval, one row per strategy, one panel per dataset (and pooled)."""
    plt = _pyplot()
    panels = _panels(report)
    names = report.labels
    colour = colours(report)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1.4, 0.42 * len(names) + 1.3),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (title, rows) in zip(axes[0], panels, strict=True):
        for r in rows:
            y = names.index(r.label)
            s = r.summary
            ax.errorbar(s.accuracy, y, xerr=_err(s), fmt="o",
                        color=colour[r.label], capsize=3, markersize=5)
            ax.annotate(f"{s.correct}/{s.episodes}", (s.accuracy, y), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=7, color="#333333")
        ax.set_title(title if title != "all" else "all (pooled)")
        ax.set_xlim(-0.03, 1.03)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_xticklabels(["0", "25%", "50%", "75%", "100%"])
        ax.grid(axis="x", color="#eeeeee")
        ax.set_xlabel("accuracy (95% CI)")
    axes[0][0].set_yticks(range(len(names)))
    axes[0][0].set_yticklabels(names)
    axes[0][0].set_ylim(len(names) - 0.4, -0.6)
    return fig


def _spread(wanted: list[float], gap: float, low: float, high: float) -> list[float]:
    """Label heights as close to ``wanted`` (sorted ascending) as they can be while ``gap`` apart within
    [low, high]: a push up, then a push down from the top, so labels never overlap."""
    out: list[float] = []
    for w in wanted:
        out.append(max(w, low, out[-1] + gap if out else low))
    for i in range(len(out) - 1, -1, -1):
        out[i] = min(out[i], high if i == len(out) - 1 else out[i + 1] - gap)
    return out


def frontier(report: PooledReport) -> Figure:
    """Accuracy against mean generated tokens per episode (log scale): up and to the left is better. Labels sit
    in a column right of every point, joined by a thin line, and give cost-of-pass (tokens per correct)."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = _panels(report)
    colour = colours(report)
    most = max(len(rows) for _, rows in panels)
    cols = min(len(panels), 2)  # two panels a row: wide enough for the label column at a readable size
    nrows = -(-len(panels) // cols)
    fig, grid = plt.subplots(nrows, cols, figsize=(4.4 * cols + 0.6, nrows * max(3.2, 0.36 * most + 1.6)),
                             sharey=True, squeeze=False, layout="constrained")
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (title, rows) in zip(axes, panels, strict=False):
        xs = [max(r.summary.mean_tokens, 1.0) for r in rows]
        lo, hi = min(xs, default=1.0), max(xs, default=10.0)
        label_x = hi * 1.5
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.5, hi * 9)  # the right part of the panel is the label column
        ax.set_ylim(-0.03, 1.05)
        placed = sorted(zip(xs, rows, strict=True), key=lambda p: p[1].summary.accuracy)
        heights = _spread([r.summary.accuracy for _, r in placed], gap=0.11, low=0.0, high=1.0)
        for (x, r), y in zip(placed, heights, strict=True):
            s = r.summary
            ax.errorbar(x, s.accuracy, yerr=_err(s), fmt="o", color=colour[r.label], capsize=2, markersize=5,
                        markerfacecolor="white" if r.baseline else colour[r.label], zorder=3)
            per = f"{s.tokens_per_correct:,.0f}" if s.tokens_per_correct is not None else "—"
            ax.annotate(f"{r.label}\n{per} tok/correct", (x, s.accuracy), xytext=(label_x, y), textcoords="data",
                        fontsize=7, color=colour[r.label], va="center", ha="left",
                        arrowprops={"arrowstyle": "-", "color": colour[r.label], "linewidth": 0.5, "alpha": 0.6,
                                    "shrinkA": 0, "shrinkB": 3})
        span = hi * 9 / (lo / 1.5)  # ticks thin out as the range grows, so their labels never touch
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span <= 30 else
                                              (1.0, 3.0) if span <= 300 else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title if title != "all" else "all (pooled)")
        ax.set_xlabel("tokens / episode (log scale)")
        ax.grid(color="#eeeeee")
    for row in grid:
        row[0].set_ylabel("accuracy (95% CI)")
    axes[0].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    return fig


def tool_calls(report: PooledReport) -> Figure:
    """Tool calls per episode, per strategy (all trajectories of an episode): a box and every episode as a dot."""
    plt = _pyplot()
    names = report.labels
    colour = colours(report)
    fig, ax = plt.subplots(figsize=(1.0 * len(names) + 1.6, 3.0), layout="constrained")
    data = [[o.tool_calls for o in report.of(name)] for name in names]
    ax.boxplot(data, positions=range(len(names)), widths=0.5, showfliers=False,
               medianprops={"color": "#222222"}, boxprops={"color": "#888888"}, whiskerprops={"color": "#888888"},
               capprops={"color": "#888888"})
    for i, (name, values) in enumerate(zip(names, data, strict=True)):
        spread = [(((k * 0.618) % 1) - 0.5) * 0.36 for k in range(len(values))]  # deterministic jitter
        ax.scatter([i + d for d in spread], values, s=9, color=colour[name], alpha=0.6, zorder=3)
        mean = sum(values) / len(values) if values else 0.0
        ax.annotate(f"mean {mean:.1f}", (i, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                    fontsize=7, color="#333333")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
    ax.set_ylabel("tool calls / episode")
    ax.set_ylim(bottom=-0.3)
    ax.grid(axis="y", color="#eeeeee")
    return fig


def outcome_grid(report: PooledReport) -> Figure:
    """Which strategy got which task: strategies down, tasks across (the page shows the same grid as a table)."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    names, tasks = report.labels, report.tasks
    order: list[Status] = ["correct", "wrong", "error", "missing"]
    cells = [[order.index(report.status(t, name)) for t in tasks] for name in names]
    fig, ax = plt.subplots(figsize=(min(0.16 * len(tasks) + 2.2, 16), 0.32 * len(names) + 1.6),
                           layout="constrained")
    ax.imshow(cells, cmap=ListedColormap([STATUS_COLOURS[s] for s in order]), vmin=0, vmax=len(order) - 1,
              aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([t for _, t in tasks], rotation=90, fontsize=5)
    ax.set_xticks([x - 0.5 for x in range(len(tasks) + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(len(names) + 1)], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for edge in _dataset_edges(report):
        ax.axvline(edge - 0.5, color="#222222", linewidth=1.2)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.legend(handles=[Patch(color=STATUS_COLOURS[s], label=s) for s in order], ncols=4, loc="lower left",
              bbox_to_anchor=(0, 1.0), frameon=False, fontsize=7)
    return fig


def _dataset_edges(report: PooledReport) -> list[int]:
    tasks = report.tasks
    return [i for i in range(1, len(tasks)) if tasks[i][0] != tasks[i - 1][0]]


PAGE_FIGURES = {"accuracy": accuracy, "frontier": frontier, "tool-calls": tool_calls}
ALL_FIGURES = {**PAGE_FIGURES, "outcomes": outcome_grid}


def svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue), closed after."""
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def write_pngs(report: PooledReport, directory: Path, dpi: int = PRINT_DPI) -> list[Path]:
    """Every figure (the outcome grid too) as ``DIR/NAME.png`` at print resolution, for papers."""
    plt = _pyplot()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--png {directory}: cannot create the directory ({exc.strerror})") from None
    written = []
    for name, draw in ALL_FIGURES.items():
        fig = draw(report)
        path = directory / f"{name}.png"
        fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        plt.close(fig)
        written.append(path)
    return written
