"""Figures: learning curves and waveform comparisons (matplotlib, Agg backend)."""

import numpy as np

from .files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows, path, title="learning curves", listen=None, kept=None):
    """Train and valid loss per epoch from history rows, written atomically: MSE (log
    scale) for MSE heads, bits per sample for categorical heads. When the run listened
    (``listen_every``: rows with ``listen_*`` values), a second panel shows what it
    heard per epoch: q and the voiced and silent shares, with ``listen`` (the
    validation audio's own ``{"voiced", "silent"}``) as dashed lines. ``kept``:
    ``(epoch, best_by)`` of the epoch ``model.keras`` holds, marked in every panel."""
    plt = _pyplot()
    heard = [r for r in rows if np.isfinite(r.get("listen_voiced", np.nan))]
    fig, axes = plt.subplots(2 if heard else 1, 1, figsize=(6, 7 if heard else 4), squeeze=False, sharex=True)
    ax = axes[0, 0]
    epochs = [r["epoch"] for r in rows]
    bits = all(np.isfinite(r.get("bits", np.nan)) for r in rows)
    keys = ("bits", "val_bits") if bits else ("loss", "val_loss")
    ax.plot(epochs, [r[keys[0]] for r in rows], "o-", label="train")
    ax.plot(epochs, [r[keys[1]] for r in rows], "s-", label="valid")
    finite = [v for r in rows for v in (r[keys[0]], r[keys[1]]) if np.isfinite(v) and v > 0]
    if finite and not bits:
        ax.set_yscale("log")
    ax.set_ylabel("bits per sample" if bits else "MSE (normalised units)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if heard:
        ax = axes[1, 0]
        at = [r["epoch"] for r in heard]
        for key, style, label in (("listen_q", "o-", "q"), ("listen_voiced", "s-", "voiced"),
                                  ("listen_silent", "^-", "silent")):
            line = ax.plot(at, [r[key] for r in heard], style, label=f"{label} (generated)")[0]
            if listen and label in listen:
                ax.axhline(listen[label], color=line.get_color(), ls="--", lw=1, label=f"{label} (validation audio)")
        ax.set_ylabel("generated from validation primes")
        ax.grid(True, alpha=0.3)
    if kept:
        epoch, by = kept
        for a in axes[:, 0]:
            a.axvline(epoch, color="grey", ls=":", lw=1.5, label=f"model.keras (best by {by.replace('_', ' ')})")
    for i, a in enumerate(axes[:, 0]):
        a.legend(fontsize=7 if i or kept else None)
    axes[-1, 0].set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_waveforms(panels, rate, path, title=None):
    """Stacked waveform panels: ``panels`` is a list of (label, samples)."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.8 * len(panels)), sharex=True, squeeze=False)
    for ax, (label, samples) in zip(axes[:, 0], panels):
        t = np.arange(len(samples)) / rate
        ax.plot(t, samples, lw=0.4)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("seconds")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
