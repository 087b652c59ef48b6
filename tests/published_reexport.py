"""What transformers makes of a bertmodel.export_hf folder of a run that continued a
published checkpoint. Run as a separate process (no module of this project is imported):
`python tests/published_reexport.py REQUEST.json RESULT.json`.

REQUEST: {"source": the checkpoint folder, "export": the export folder, "lines": texts,
"fill_mask": texts with one [MASK] each}. RESULT: {"source_ids", "export_ids": AutoTokenizer's
ids of each line from either folder; "missing", "unexpected": the keys
AutoModelForPreTraining reports when loading the export; "fill_mask": the top 5 the
fill-mask pipeline proposes for each text, as {token id: score}}."""

import json
import sys

import transformers

transformers.logging.set_verbosity_error()


def main(request_path, result_path):
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    ids = {}
    for key in ("source", "export"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(request[key])
        ids[f"{key}_ids"] = [tokenizer(line)["input_ids"] for line in request["lines"]]
    _, info = transformers.AutoModelForPreTraining.from_pretrained(
        request["export"], output_loading_info=True)
    fill = transformers.pipeline("fill-mask", model=request["export"], top_k=5)
    proposals = [{int(p["token"]): float(p["score"]) for p in fill(text)}
                 for text in request["fill_mask"]]
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump({**ids, "missing": sorted(info["missing_keys"]),
                   "unexpected": sorted(info["unexpected_keys"]), "fill_mask": proposals}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
