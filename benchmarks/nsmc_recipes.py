"""Pretraining recipes compared on NSMC at one budget: same model, steps, batch and text.

    python benchmarks/nsmc_recipes.py --train=../shared/corpus/nsmc/nsmc_train.txt.gz \
        --test=../shared/corpus/nsmc/nsmc_test.txt.gz \
        --corpus=../shared/corpus/nsmc/nsmc_corpus.txt.gz --workdir=runs/nsmc_recipes \
        --corpus_mb=12 --dupe_factor=1 --pretrain_steps=800 --finetune_examples=10000 \
        --learning_rates=0.001

One tokenizer (32,000 + 7 pieces) on the first --corpus_mb of the corpus; then, for each
recipe, the data job with that recipe's settings, `bertmodel.train` for --pretrain_steps, its
held-out MLM accuracy (on its own eval split: each recipe masks its own way), and
`bertmodel.finetune` on NSMC (the rate best on the dev split, scored once on test). The same
fine-tuning from random weights runs once, as the floor every recipe must clear. Recipes
already in WORKDIR/recipes.json are not run again, so a stopped run resumes. The table
prints as Markdown.

Static and dynamic masking only differ once an example is seen twice: with --dupe_factor=1
and a corpus slice smaller than the budget, every example is seen several times, which is the
case dynamic masking is for.
"""

from __future__ import annotations

import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nsmc  # noqa: E402

from bertcommon import files, logs  # noqa: E402

log = logging.getLogger("bertpipe.nsmc_recipes")

# name: (nsp_mode, masked_lm_prob, masking); max_predictions_per_seq scales with the rate.
RECIPES = {
    "swap-15-static": ("swap", 0.15, "static"),
    "random_doc-15-static": ("random_doc", 0.15, "static"),
    "none-15-static": ("none", 0.15, "static"),
    "none-30-static": ("none", 0.30, "static"),
    "none-15-dynamic": ("none", 0.15, "dynamic"),
    "none-30-dynamic": ("none", 0.30, "dynamic"),
}


def run_recipe(args, name: str, spm_model: str, corpus: str, tasks: dict) -> dict:
    nsp_mode, rate, masking = RECIPES[name]
    recipe_args = vars(args) | {
        "nsp_mode": nsp_mode, "masked_lm_prob": rate, "masking": masking,
        "max_predictions_per_seq": round(args.max_predictions_per_seq * rate / 0.15)}
    recipe = type(args)(**recipe_args)
    work = os.path.join(args.workdir, name)
    nsmc.RESULTS["seconds"] = {}
    data = nsmc.make_data(recipe, corpus, spm_model, os.path.join(work, "data"))
    with open(os.path.join(data, "stats.json")) as f:
        examples = json.load(f)["train_examples"]
    model_dir = os.path.join(work, "model")
    pretraining = nsmc.run_pretraining(recipe, data, spm_model, model_dir)
    finetuned = nsmc.finetune_tuned(recipe, model_dir, tasks, scratch=False)
    return {"settings": {"nsp_mode": nsp_mode, "masked_lm_prob": rate, "masking": masking,
                         "max_predictions_per_seq": recipe.max_predictions_per_seq},
            "train_examples": examples, "pretraining": pretraining, "nsmc": finetuned,
            "seconds": dict(nsmc.RESULTS["seconds"])}


def table(results: dict, args) -> str:
    budget = args.pretrain_steps * args.batch_size
    lines = ["| recipe | examples | epochs | held-out MLM acc | NSP acc | NSMC dev | NSMC test "
             "| lr |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        if name == "from scratch":
            continue
        ev = r["pretraining"]["eval"] or {}
        nsp = f"{ev['nsp_accuracy']:.3f}" if "nsp_accuracy" in ev else "-"
        lines.append(f"| {name} | {r['train_examples']:,} | {budget / r['train_examples']:.1f} "
                     f"| {ev.get('mlm_accuracy', float('nan')):.4f} | {nsp} "
                     f"| {r['nsmc']['dev_accuracy']:.4f} | {r['nsmc']['test_accuracy']:.4f} "
                     f"| {r['nsmc']['chosen_learning_rate']} |")
    if "from scratch" in results:
        s = results["from scratch"]
        lines.append(f"| from scratch | - | - | - | - | {s['dev_accuracy']:.4f} "
                     f"| {s['test_accuracy']:.4f} | {s['chosen_learning_rate']} |")
        lines.append(f"| bag of words | - | - | - | - | - "
                     f"| {s['test_bag_of_words_accuracy']:.4f} | - |")
    return "\n".join(lines)


def save(results: dict, path: str) -> None:
    with files.atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(results, f, indent=2, default=str)


def main():
    p = nsmc.parser(__doc__.splitlines()[0])
    p.add_argument("--corpus_mb", type=float, default=12.0)
    p.add_argument("--recipes", default=",".join(RECIPES),
                   help=f"comma-separated, from {', '.join(RECIPES)}")
    args = p.parse_args()
    chosen = args.recipes.split(",")
    unknown = [name for name in chosen if name not in RECIPES]
    if unknown:
        p.error(f"--recipes: unknown {unknown}; known: {', '.join(RECIPES)}")
    logs.configure("info")
    logs.import_tensorflow_quietly()
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "recipes.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    tasks = nsmc.write_tasks(args, args.workdir)
    corpus = nsmc.corpus_slice(args.corpus, args.corpus_mb,
                               os.path.join(args.workdir, "corpus.txt"))
    spm_model = os.path.join(args.workdir, "ko.model")
    if not os.path.exists(spm_model):
        nsmc.train_reference_tokenizer(corpus, args.workdir)
    for name in chosen:
        if name in results:
            log.info("%s: done before, kept", name)
            continue
        results[name] = run_recipe(args, name, spm_model, corpus, tasks)
        save(results, path)
        print(table(results, args), flush=True)
        if "from scratch" not in results:
            model_dir = os.path.join(args.workdir, name, "model")
            results["from scratch"] = nsmc.finetune_tuned(args, model_dir, tasks, scratch=True)
            save(results, path)
    print(f"\n{args.config}, {args.pretrain_steps} steps of {args.batch_size}, "
          f"{args.corpus_mb} MB of text, dupe factor {args.dupe_factor}:")
    print(table(results, args))


if __name__ == "__main__":
    main()
