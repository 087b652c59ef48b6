"""FLOPs of a training step and the peak of the device they run on, for MFU figures.

FLOPs per sequence (forward + backward) = 6*N_enc*S + 12*L*d*S^2 + 6*(d^2 + d*V)*P, with
N_enc the encoder blocks' parameters, S the (padded) sequence length, L layers, d the hidden
width, V the vocabulary and P the predictions per sequence (the MLM head runs at the masked
positions only). Model FLOPs utilisation (MFU) divides the FLOP/s this formula counts by the
device's dense peak. The pretrainer executes a little less than the formula (see
`skipped_flops_per_sequence`), so its utilisation of the work it does is higher.
"""

from __future__ import annotations

import os

# Dense (no sparsity) peaks in FLOP/s, from the vendors' data sheets, by a substring of the
# device name TensorFlow reports. bf16 also serves fp16 on these devices.
GPU_PEAKS = {
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362e12, "fp32": 91.6e12},
    "L4": {"bf16": 121e12, "fp32": 30.3e12},
    "A10": {"bf16": 125e12, "fp32": 31.2e12},
    "V100": {"bf16": 125e12, "fp32": 15.7e12},  # fp16 tensor cores; no bf16
    "T4": {"bf16": 65e12, "fp32": 8.1e12},  # fp16 tensor cores; no bf16
}


def encoder_params(hidden: int, layers: int, intermediate: int) -> int:
    per_block = 4 * hidden * hidden + 4 * hidden + 2 * hidden * intermediate \
        + intermediate + hidden + 4 * hidden
    return layers * per_block


def flops_per_sequence(cfg, seq: float, preds: float) -> float:
    n_enc = encoder_params(cfg.hidden_size, cfg.num_layers, cfg.intermediate_size)
    d, v, n_layers = cfg.hidden_size, cfg.vocab_size, cfg.num_layers
    return 6 * n_enc * seq + 12 * n_layers * d * seq * seq + 6 * (d * d + d * v) * preds


def electra_flops_per_sequence(cfg, generator, seq: float, preds: float) -> float:
    """ELECTRA's step: the discriminator (CFG) and its detection head at every position,
    and the generator (GENERATOR's sizes, reading the CFG-wide embeddings through a
    projection) with its MLM head at the masked positions."""
    d, g = cfg.hidden_size, generator.hidden_size
    discriminator = flops_per_sequence(cfg, seq, 0) + 6 * (d * d + d) * seq
    body = encoder_params(g, generator.num_layers, generator.intermediate_size)
    projection = 6 * d * g * seq if g != d else 0
    generating = (6 * body * seq + 12 * generator.num_layers * g * seq * seq + projection
                  + 6 * (g * d + d * cfg.vocab_size) * preds)
    return discriminator + generating


def skipped_flops_per_sequence(cfg, seq: float, preds: float) -> float:
    """FLOPs of the formula that the pretrainer does not execute.

    Its last block computes queries, attention output, LayerNorms and the feed-forward only
    at [CLS] and the masked positions; keys and values still cover every position.
    """
    d, inter = cfg.hidden_size, cfg.intermediate_size
    skipped = max(seq - preds - 1, 0)
    per_position = 2 * d * d + 2 * d * inter  # query and output projections, feed-forward
    return 6 * per_position * skipped + 12 * d * seq * skipped


def _cpu_ghz(cpuinfo: str) -> float:
    """The CPU clock /proc/cpuinfo reports (a VM's nominal clock; turbo is not counted)."""
    for line in cpuinfo.splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000.0
    return 2.5


def gpu_peak(device_name: str, precision: str) -> float | None:
    """The dense peak of a GPU by its name, or None when it is not in GPU_PEAKS."""
    kind = "fp32" if precision == "fp32" else "bf16"
    for key, peaks in GPU_PEAKS.items():
        if key in device_name:
            return peaks[kind]
    return None


def device_peak(precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s of one device TensorFlow will use, how it was found)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
        peak = gpu_peak(name, precision)
        if peak is None:
            return None, f"{name}: unknown peak, pass --peak_tflops"
        return peak, f"{name}, dense {precision} data sheet"
    cpuinfo = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    cores = os.cpu_count() or 1
    ghz = _cpu_ghz(cpuinfo)
    per_cycle = 32 if "avx512f" in cpuinfo else 16  # fp32 FMA lanes * 2
    if precision != "fp32" and "avx512_bf16" in cpuinfo:
        per_cycle *= 2
    return cores * ghz * 1e9 * per_cycle, (f"CPU estimate: {cores} cores x {ghz} GHz x "
                                           f"{per_cycle} FLOP/cycle")
