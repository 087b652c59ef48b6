"""Device policy of the trainer: which strategy, which precision, whether to use XLA."""

from __future__ import annotations

import os

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class DeviceError(Exception):
    """A strategy that cannot be set up here (a missing TF_CONFIG, say)."""


def cpu_has_bf16() -> bool:
    """True on x86 CPUs with bf16 matrix instructions (AVX512-BF16 or AMX), via oneDNN."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str) -> str:
    """'auto': bf16 on GPUs with bf16 tensor cores (compute capability >= 8) and on CPUs with
    bf16 instructions (measured: 1.5x fp32 on a 2-core AVX512-BF16 CPU), fp16 on older GPUs,
    fp32 elsewhere."""
    if name != "auto":
        return name
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "bf16" if cpu_has_bf16() else "fp32"
    cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return "bf16" if cc and cc[0] >= 8 else "fp16"


def resolve_jit(flag: str, replicas: int, precision: str) -> bool:
    """'auto': XLA on a single device, except bf16 on a CPU, where XLA's CPU backend does not
    use the bf16 instructions (measured 47 against 66 seq/s without XLA); never under a
    multi-replica strategy (it failed there with Keras 3)."""
    if flag != "auto":
        return flag == "true"
    import tensorflow as tf

    if replicas > 1:
        return False
    return bool(tf.config.list_physical_devices("GPU")) or precision == "fp32"


def split_cpu(devices: int) -> None:
    """Splits the CPU into this many logical devices (to try strategies without GPUs). Once
    TensorFlow has started, only a split already made so is accepted (a RuntimeError
    otherwise)."""
    import tensorflow as tf

    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        wanted = [tf.config.LogicalDeviceConfiguration()] * devices
        if tf.config.get_logical_device_configuration(cpu) != wanted:
            tf.config.set_logical_device_configuration(cpu, wanted)


def make_strategy(name: str):
    import tensorflow as tf

    if name == "multi_worker":
        # Must come before anything initializes the TensorFlow runtime (listing devices
        # does), or collective ops cannot be configured.
        if "TF_CONFIG" not in os.environ:
            raise DeviceError("--strategy=multi_worker needs the TF_CONFIG environment "
                              "variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return mirrored_strategy(devices)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        except (ValueError, tf.errors.OpError) as e:  # no TPU attached or named
            raise DeviceError(f"--strategy=tpu: no TPU found here ({e})") from None
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise DeviceError(f"--strategy must be one of {STRATEGIES}, got {name!r}")


def mirrored_strategy(devices: list[str]):
    """MirroredStrategy over these devices. Over logical CPU devices the replicas' gradients
    are summed on one device rather than by collective ops: with collectives, a second
    MirroredStrategy in the same process failed ("Shape mismatch in the collective
    instance", tensorflow/tensorflow#62790). Keras' optimizer still reduces by collectives,
    so a second strategy training another model in one process can fail the same way: make
    one per process (the tests share one)."""
    import tensorflow as tf

    on_cpus = all(":CPU:" in d.upper() for d in devices)
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice() if on_cpus else None)


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                            and resolver.task_id == 0)


LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


def needs_legacy_keras(strategy: str) -> bool:
    """Keras 3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585; here it
    raised "Attempt to convert a value ({'input_ids': PerReplica...})"), so that strategy
    runs the same model code under tf-keras, which TensorFlow picks when it loads with
    TF_USE_LEGACY_KERAS=1. True when the strategy needs it and this process lacks it."""
    return strategy == "multi_worker" and os.environ.get(LEGACY_KERAS) != "1"
