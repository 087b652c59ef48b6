"""The reference's training plots: NSP/MLM loss and NSP/MLM accuracy per epoch."""

from __future__ import annotations

from bertcommon.files import atomic_path


def save_plots(history: dict, path: str) -> None:
    """Two plots side by side, train and eval, written atomically to `path` (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for ax, kind in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for head in ("nsp", "mlm"):
            for prefix, style in (("", "-"), ("val_", "--")):
                key = f"{prefix}{head}_{kind}"
                if key in history:
                    ax.plot(epochs, history[key], style, marker="o",
                            label=f"{head.upper()} {'eval' if prefix else 'train'}")
        ax.set_xlabel("epoch")
        ax.set_title(f"NSP / MLM {kind}")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
