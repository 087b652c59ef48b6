"""Whether several replicas train as one device does: one SGD step on the same global batch,
under a one-device strategy and under a MirroredStrategy (gpu_check runs it on GPUs, the
tests on two logical CPU devices)."""

from __future__ import annotations

from bertmodel.model.bert import BertPretrainer, dummy_inputs
from bertmodel.model.electra import ElectraPretrainer


def one_step_losses(strategy, config, features: dict, labels: dict,
                    learning_rate: float = 0.01, objective: str = "mlm") -> tuple[float, float]:
    """(the loss fit reports, the loss after the step) for one SGD step on the whole batch
    under STRATEGY, from the weights of seed 3, for OBJECTIVE (mlm or electra).

    A strategy with several replicas gets the batch distributed, each replica its share:
    fit's own splitting of an undistributed dataset gave replicas batches of different
    sizes. The loss after the step is computed eagerly on the whole batch, so that no
    evaluation graph is traced only to read it.
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensors((features, labels))
    with strategy.scope():
        tf.keras.utils.set_random_seed(3)
        model = (ElectraPretrainer if objective == "electra" else BertPretrainer)(config=config)
        model(dummy_inputs(config))
        model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate), jit_compile=False)
        model.optimizer.build(model.trainable_variables)  # or fit would trace twice
    if strategy.num_replicas_in_sync > 1:
        data = strategy.experimental_distribute_dataset(data)
    history = model.fit(data, epochs=1, verbose=0, shuffle=False)
    after = model.compute_loss(features, labels, model(features, training=False),
                               training=False)
    return history.history["loss"][0], float(after)
