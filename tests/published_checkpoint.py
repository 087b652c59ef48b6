"""Builds a checkpoint in a published layout with transformers alone, and reports what
transformers computes on it. Run as a separate process (no module of this project is
imported): `python tests/published_checkpoint.py REQUEST.json RESULT.npz`.

REQUEST: {"folder": a folder holding a tokenizer (tests/published_layouts.py), "architecture":
"BertForPreTraining" | "BertForMaskedLM" | "BertModel", "weights": "safetensors" | "bin",
"batch": {"input_ids", "input_mask", "segment_ids"}, optionally "special_ids": ids whose MLM
bias is set very low, so that the fill-mask pipeline, which does not skip special tokens,
proposes what bertmodel.fill_mask does, "dropout": the rate of both dropouts, and
"initializer_range"}. Random weights (seed 0) with the sizes of a small published BERT
(exact GELU, LayerNorm epsilon 1e-12, 128 positions), initialized 10x wider than BERT
unless "initializer_range" says otherwise. RESULT holds
the MLM logits (and NSP logits where the head exists) of BertForPreTraining loaded from the
folder."""

import json
import os
import sys

import numpy as np
import torch
import transformers

transformers.logging.set_verbosity_error()


def build(request) -> None:
    folder = request["folder"]
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, hidden_act="gelu",
        layer_norm_eps=1e-12, pad_token_id=tok.pad_token_id,
        # By default wider than BERT's 0.02, so that activations reach where the exact and
        # the tanh GELU differ by more than the comparison's tolerance.
        initializer_range=request.get("initializer_range", 0.2),
        architectures=[request["architecture"]])
    if request.get("dropout") is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = request["dropout"]
    torch.manual_seed(0)
    model = getattr(transformers, request["architecture"])(config).eval()
    if request.get("special_ids"):
        with torch.no_grad():
            model.cls.predictions.bias[request["special_ids"]] = -1000.0
    if request["weights"] == "bin":
        config.save_pretrained(folder)
        torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))
    else:
        model.save_pretrained(folder)


def reference(request) -> dict:
    batch = request["batch"]
    inputs = {"input_ids": torch.tensor(batch["input_ids"]),
              "attention_mask": torch.tensor(batch["input_mask"]),
              "token_type_ids": torch.tensor(batch["segment_ids"])}
    with torch.no_grad():
        encoder = transformers.BertModel.from_pretrained(request["folder"]).eval()
        out = {"sequence_output": encoder(**inputs).last_hidden_state.numpy()}
        pretrainer = transformers.BertForPreTraining.from_pretrained(request["folder"]).eval()
        heads = pretrainer(**inputs)
    return {**out, "mlm_logits": heads.prediction_logits.numpy(),
            "nsp_logits": heads.seq_relationship_logits.numpy()}


def main(request_path, result_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    build(request)
    np.savez(result_path, **reference(request))


if __name__ == "__main__":
    main(*sys.argv[1:])
