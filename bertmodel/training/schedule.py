"""The reference learning-rate schedule and the optimizers."""

from __future__ import annotations

import math

import tensorflow as tf

keras = tf.keras


@keras.utils.register_keras_serializable(package="bertpipe")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to peak over warmup_steps, then cosine decay to 0 at total_steps.

    The reference used warmup_steps = max(100, total_steps // 10) and peak 2.5e-4.
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int):
        if total_steps < 1 or warmup_steps < 0:
            raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, got "
                             f"{total_steps}, {warmup_steps}")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        total = float(self.total_steps)
        decay_len = max(total - self.warmup_steps, 1.0)
        progress = tf.clip_by_value((step - self.warmup_steps) / decay_len, 0.0, 1.0)
        cosine = 0.5 * self.peak_learning_rate * (1.0 + tf.cos(math.pi * progress))
        warm = self.peak_learning_rate * step / warmup
        return tf.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def default_warmup_steps(total_steps: int) -> int:
    """The reference rule, kept below the total for very short runs."""
    return min(max(100, total_steps // 10), max(total_steps // 2, 1))


# Variables whose names contain these are not decayed by AdamW (LayerNorm and biases).
NO_DECAY = ["layer_norm", "bias", "LayerNorm"]


def make_optimizer(name: str, schedule, *, weight_decay: float = 0.01,
                   clipnorm: float | None = None, gradient_accumulation_steps: int = 1,
                   beta_2: float = 0.98):
    """'adam': the reference Adam(0.9, BETA_2 = 0.98, 1e-9); 'adamw': AdamW without decay on
    LayerNorm and biases; 'lamb': LAMB (layer-wise trust ratios, for large batches), the
    same exclusions. clipnorm clips the global gradient norm; with
    gradient_accumulation_steps=N the optimizer applies the mean gradient of N batches, and
    its iteration count (which the schedule reads) counts those updates."""
    kwargs = {"global_clipnorm": clipnorm} if clipnorm else {}
    if gradient_accumulation_steps > 1 or name == "lamb":
        if not hasattr(keras.optimizers, "Lamb"):  # tf-keras: the multi-worker path
            raise ValueError("--optimizer=lamb and --gradient_accumulation_steps need Keras 3;"
                             " the multi_worker strategy runs on tf-keras")
        if gradient_accumulation_steps > 1:
            kwargs["gradient_accumulation_steps"] = gradient_accumulation_steps
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=beta_2,
                                     epsilon=1e-9, **kwargs)
    if name in ("adamw", "lamb"):
        cls = keras.optimizers.AdamW if name == "adamw" else keras.optimizers.Lamb
        opt = cls(learning_rate=schedule, weight_decay=weight_decay, beta_1=0.9, beta_2=beta_2,
                  epsilon=1e-9 if name == "adamw" else 1e-6, **kwargs)
        opt.exclude_from_weight_decay(var_names=NO_DECAY)
        return opt
    raise ValueError(f"--optimizer must be 'adam', 'adamw' or 'lamb', got {name!r}")
