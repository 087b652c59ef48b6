"""Loads a Hugging Face export with transformers alone and reports what it computes.

Run as a separate process: `python tests/hf_consumer.py REQUEST.json RESULT.json`. Importing
anything of this project here is an error (a meta-path hook refuses it), so what it reports
is what a transformers user gets. The request names the folder and the inputs; the result
holds ids, logits and pipeline answers for the test to compare with the Keras model's (its
arrays in RESULT.json.npz).
"""

import importlib.abc
import json
import sys

OURS = ("bertdata", "bertmodel", "beam_jobs", "bertpipe")


class _RefuseOurPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OURS:
            raise ImportError(f"{name} imported while loading the export")
        return None


sys.meta_path.insert(0, _RefuseOurPackages())

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()


def tokenize(tok, request) -> dict:
    singles = [tok(text, add_special_tokens=False)["input_ids"] for text in request["texts"]]
    pairs = []
    for a, b in request["pairs"]:
        enc = tok(a, b)
        pairs.append([enc["input_ids"], enc["token_type_ids"]])
    truncated = []
    for a, b in request["truncate_pairs"]:
        enc = tok(a, b, truncation="longest_first", max_length=request["max_length"])
        truncated.append([enc["input_ids"], enc["token_type_ids"]])
    truncated_singles = [tok(a, truncation=True, max_length=request["max_length"])["input_ids"]
                         for a in request["truncate_texts"]]
    return {"singles": singles, "pairs": pairs, "truncated_pairs": truncated,
            "truncated_singles": truncated_singles}


def tensors(batch) -> dict:
    return {"input_ids": torch.tensor(batch["input_ids"]),
            "attention_mask": torch.tensor(batch["input_mask"]),
            "token_type_ids": torch.tensor(batch["segment_ids"])}


def run_models(folder, request) -> dict:
    out = {}
    inputs = tensors(request["batch"])
    with torch.no_grad():
        pre, info = transformers.AutoModelForPreTraining.from_pretrained(
            folder, output_loading_info=True)
        pre.eval()
        res = pre(**inputs)
        out["pretraining_class"] = type(pre).__name__
        out["pretraining_missing"] = sorted(info["missing_keys"])
        out["prediction_logits"] = res.prediction_logits.numpy()
        out["seq_relationship_logits"] = res.seq_relationship_logits.numpy()
        mlm, info = transformers.AutoModelForMaskedLM.from_pretrained(
            folder, output_loading_info=True)
        out["masked_lm_class"] = type(mlm).__name__
        out["masked_lm_missing"] = sorted(info["missing_keys"])
        out["masked_lm_logits"] = mlm.eval()(**inputs).logits.numpy()
        base = transformers.AutoModel.from_pretrained(folder).eval()
        res = base(**inputs)
        out["model_class"] = type(base).__name__
        out["sequence_output"] = res.last_hidden_state.numpy()
        out["pooled_output"] = res.pooler_output.numpy()
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        enc = tok(request["encode"], padding=True, return_tensors="pt")
        out["encode_pooled_output"] = base(**enc).pooler_output.numpy()
        cls, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            folder, output_loading_info=True)
        out["classifier_new_keys"] = sorted(info["missing_keys"])
        out["classifier_num_labels"] = cls.config.num_labels
    return out


def fill_mask(folder, request) -> list:
    fill = transformers.pipeline("fill-mask", model=folder, tokenizer=folder, top_k=5,
                                 device="cpu")
    answers = []
    for text in request["fill_mask"]:
        result = fill(text)
        rows = result if isinstance(result[0], list) else [result]
        answers.append([[r["token"] for r in row] for row in rows])
    return answers


def classify(folder, request) -> dict:
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok(request["classify"], padding=True, truncation=True,
              max_length=request["max_length"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    labels = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    return {"labels": labels, "probabilities": logits.softmax(-1).numpy(),
            "architecture": type(model).__name__}


def run_electra(request) -> dict:
    """An ELECTRA export: the discriminator (the folder) on the replaced input with the
    replaced labels, the generator (its subfolder) on the masked input with MLM labels,
    each loss computed by transformers' own model classes."""
    masked = tensors(request["batch"])
    replaced = tensors({**request["batch"], "input_ids": request["replaced_ids"]})
    out = {}
    with torch.no_grad():
        disc, info = transformers.AutoModelForPreTraining.from_pretrained(
            request["folder"], output_loading_info=True)
        res = disc.eval()(**replaced, labels=torch.tensor(request["replaced_labels"]))
        out.update(discriminator_class=type(disc).__name__,
                   discriminator_missing=sorted(info["missing_keys"]),
                   rtd_loss=float(res.loss), rtd_logits=res.logits.numpy())
        gen, info = transformers.AutoModelForMaskedLM.from_pretrained(
            request["generator"], output_loading_info=True)
        res = gen.eval()(**masked, labels=torch.tensor(request["mlm_labels"]))
        out.update(generator_class=type(gen).__name__,
                   generator_missing=sorted(info["missing_keys"]),
                   mlm_loss=float(res.loss), mlm_logits=res.logits.numpy())
        out["model_class"] = type(transformers.AutoModel.from_pretrained(request["folder"])
                                  ).__name__
        cls, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            request["folder"], num_labels=2, output_loading_info=True)
        out["classifier_class"] = type(cls).__name__
        out["classifier_new_keys"] = sorted(info["missing_keys"])
    out["fill_mask"] = fill_mask(request["generator"], request)
    return out


def main(request_path, result_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    result = {}
    for folder in request.get("tokenizers", []):
        result.setdefault("tokenizers", {})[folder] = tokenize(
            transformers.AutoTokenizer.from_pretrained(folder), request)
    if "pretrained" in request:
        folder = request["pretrained"]
        result.update(run_models(folder, request))
        result["fill_mask"] = fill_mask(folder, request)
    if "mlm_only" in request:
        with torch.no_grad():
            model, info = transformers.AutoModelForMaskedLM.from_pretrained(
                request["mlm_only"], output_loading_info=True)
            logits = model.eval()(**tensors(request["batch"])).logits
        result["mlm_only"] = {"class": type(model).__name__,
                              "missing": sorted(info["missing_keys"]),
                              "logits": logits.numpy()}
    if "classifier" in request:
        result["classify"] = classify(request["classifier"], request)
    if "electra" in request:
        result["electra"] = run_electra(request["electra"])
    save(result, result_path)


def save(result: dict, path: str) -> None:
    """RESULT as JSON, its arrays beside it in PATH.npz under their key paths ("a/b"):
    written as JSON lists, the logits took seconds to write and read."""
    arrays = {}

    def move_arrays(node, prefix):
        for key, value in list(node.items()):
            if isinstance(value, np.ndarray):
                arrays[prefix + key] = node.pop(key)
            elif isinstance(value, dict):
                move_arrays(value, f"{prefix}{key}/")

    move_arrays(result, "")
    np.savez(path + ".npz", **arrays)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
