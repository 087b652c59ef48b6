"""Trains transformers' BertForPreTraining in PyTorch with bertpipe's trainer's loss, optimizer
and schedule, written out here from their definitions, and reports the loss of every step.
Run as a separate process (no module of this project is imported):
`python tests/published_training.py REQUEST.json BATCHES.npz RESULT.json`.

REQUEST: {"folder": the checkpoint (dropout 0), "peak_learning_rate", "warmup_steps",
"total_steps", "beta_2", "mlm_loss_weight"}. BATCHES: the trainer's batches, in order, as
arrays named "<step>/<feature>". RESULT: {"losses": [...]}, one per batch.

- loss: mlm_loss_weight x (cross-entropy summed over masked positions, times their weights,
  over the weights' sum) + the mean next-sentence cross-entropy;
- schedule: linear warm-up from 0 over warmup_steps, then cosine decay to 0 at total_steps,
  read at the update's 0-based index;
- optimizer: Keras' Adam (beta_1 0.9, beta_2, epsilon 1e-9): m and v as usual, and the step
  lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon).
"""

import json
import math
import sys

import numpy as np
import torch
import transformers

transformers.logging.set_verbosity_error()
BETA_1, EPSILON = 0.9, 1e-9


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    # float32, as the trainer's schedule computes it
    step32 = np.float32(step)
    if step < warmup:
        return float(np.float32(peak) * step32 / np.float32(max(warmup, 1)))
    progress = np.clip((step32 - warmup) / np.float32(max(total - warmup, 1)), 0, 1)
    return float(np.float32(0.5 * peak) * (np.float32(1) + np.cos(np.float32(math.pi) * progress,
                                                                  dtype=np.float32)))


def loss_of(model, batch: dict, mlm_loss_weight: float) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["input_mask"],
                token_type_ids=batch["segment_ids"])
    positions = batch["masked_lm_positions"]
    logits = torch.gather(out.prediction_logits, 1, positions[..., None].expand(
        -1, -1, out.prediction_logits.shape[-1]))
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1),
                                           batch["masked_lm_ids"].flatten(), reduction="none")
    weights = batch["masked_lm_weights"].flatten()
    mlm = (ce * weights).sum() / weights.sum().clamp(min=1.0)
    nsp = torch.nn.functional.cross_entropy(out.seq_relationship_logits,
                                            batch["next_sentence_labels"].flatten())
    return mlm_loss_weight * mlm + nsp


def main(request_path, batches_path, result_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    arrays = np.load(batches_path)
    steps = sorted({int(k.split("/")[0]) for k in arrays.files})
    model = transformers.BertForPreTraining.from_pretrained(request["folder"]).train()
    params = [p for p in model.parameters() if p.requires_grad]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    beta_2, losses = request["beta_2"], []
    for step in steps:
        batch = {k.split("/")[1]: torch.from_numpy(arrays[k]) for k in arrays.files
                 if k.startswith(f"{step}/")}
        batch = {k: t.long() if k != "masked_lm_weights" else t.float()
                 for k, t in batch.items()}
        model.zero_grad()
        loss = loss_of(model, batch, request["mlm_loss_weight"])
        loss.backward()
        losses.append(float(loss))
        lr = learning_rate(step, request["peak_learning_rate"], request["warmup_steps"],
                           request["total_steps"])
        t = step + 1
        alpha = lr * math.sqrt(1 - beta_2 ** t) / (1 - BETA_1 ** t)
        with torch.no_grad():
            for p, mp, vp in zip(params, m, v, strict=True):
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                mp += (g - mp) * (1 - BETA_1)
                vp += (g * g - vp) * (1 - beta_2)
                p -= alpha * mp / (vp.sqrt() + EPSILON)
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump({"losses": losses}, f)


if __name__ == "__main__":
    torch.manual_seed(0)
    main(*sys.argv[1:])
