"""`report sales --chart FILE`: the net revenue as a bar chart, in SVG or PNG, with matplotlib.

matplotlib is a well-kept library that writes both formats itself (no system library, no
browser), and is imported here only, when a chart is asked for. It is an optional dependency
(``pip install 'bookpay[chart]'``); without it --chart says how to get it. The figure is drawn
through matplotlib's object API (``Figure``), never pyplot's global state, and the SVG is made
reproducible (no creation date, a fixed hash salt), so the same report gives the same file.
"""

from __future__ import annotations

from pathlib import Path

from bookpay.errors import ConfigError, OutputUnwritable
from bookpay.money import exponent, format_amount

INK = "#1d1d1f"
POSITIVE = "#4f46e5"  # the shop's accent colour
NEGATIVE = "#b42318"


def write_chart(report, path: Path) -> None:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "Writing a chart needs matplotlib, which is not installed.",
            hint="Install it with: pip install 'bookpay[chart]'.",
        ) from None
    matplotlib.rcParams["svg.hashsalt"] = "bookpay"  # stable ids in the SVG
    parts = report.currencies or []
    figure = Figure(figsize=(9, 3.2 * max(1, len(parts))), layout="constrained")
    axes = figure.subplots(max(1, len(parts)), 1, squeeze=False)[:, 0]
    if not parts:
        axes[0].text(0.5, 0.5, "No sales", ha="center", va="center", color=INK)
        axes[0].set_axis_off()
    for ax, part in zip(axes, parts, strict=False):
        _draw(ax, part, report.by)
    metadata = {"Date": None} if path.suffix.lower() == ".svg" else {}
    try:
        figure.savefig(path, format=path.suffix.lower()[1:], dpi=150, metadata=metadata)
    except OSError as exc:
        raise OutputUnwritable(f"Cannot write the chart to {path}: {exc.strerror}.") from exc


def _draw(ax, part, by: str) -> None:
    scale = 10 ** exponent(part.currency)
    labels = [row.key if by != "book" else row.label for row in part.rows]
    labels = [label if len(label) <= 28 else label[:27] + "…" for label in labels]
    values = [row.net / scale for row in part.rows]
    colours = [NEGATIVE if value < 0 else POSITIVE for value in values]
    positions = range(len(values))
    ax.bar(positions, values, color=colours, width=0.7)
    # parse_math=False: a title with two "$" is text, not TeX (which may not even parse).
    ax.set_xticks(list(positions), labels, rotation=45 if len(labels) > 6 else 0, ha="right"
                  if len(labels) > 6 else "center", fontsize=8, parse_math=False)  # fmt: skip
    ax.axhline(0, color=INK, linewidth=0.8)
    total = format_amount(part.total.net, part.currency)
    title = f"Net revenue per {by}, {part.currency.upper()} (total {total})"
    ax.set_title(title, color=INK, parse_math=False)
    ax.set_ylabel(part.currency.upper(), color=INK)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dedbd2", linewidth=0.6)
    ax.set_axisbelow(True)
