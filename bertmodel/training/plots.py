"""The run's plots: the reference's NSP/MLM loss and accuracy per epoch (`save_plots`), and
fine-tuned accuracy against pretraining steps (`save_score_plot`)."""

from __future__ import annotations

from bertcommon.files import atomic_path


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display on training machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> None:
    """FIG as a PNG at PATH, written whole under a temporary name, then closed."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    pyplot().close(fig)


def save_plots(history: dict, path: str) -> None:
    """Two plots side by side, train and eval, written atomically to `path` (a PNG)."""
    plt = pyplot()
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
    save_figure(fig, path)


def save_score_plot(rows: list[dict], path: str, title: str) -> None:
    """Eval accuracy of the fine-tuned encoders against their pretraining step (rows of
    bertmodel.score_encoders, step 0 being random weights), with the from-scratch and
    bag-of-words accuracies as horizontal lines; written atomically to `path` (a PNG)."""
    plt = pyplot()

    pretrained = [r for r in rows if r["step"] > 0]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in pretrained], [r["eval_accuracy"] for r in pretrained], "o-",
            label="pretrained encoder, fine-tuned")
    for r in rows:
        if r["step"] == 0:
            ax.axhline(r["eval_accuracy"], color="gray", linestyle="--",
                       label="from scratch, same fine-tuning")
    ax.axhline(rows[0]["bag_of_words_accuracy"], color="tab:red", linestyle=":",
               label="bag of words (Naive Bayes)")
    ax.set_xlabel("pretraining step")
    ax.set_ylabel("eval accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
