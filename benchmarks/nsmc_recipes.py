"""Pretraining recipes compared on NSMC at one budget: same model, steps, batch and text.

    python -m benchmarks.nsmc_recipes --workdir=runs/nsmc_recipes --corpus_mb=12 \
        --dupe_factor=1 --pretrain_steps=800 --finetune_examples=10000 --learning_rates=0.001

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

import dataclasses
import logging
import os
import sys

from benchmarks.common import (
    TIMINGS,
    NsmcSettings,
    corpus_slice,
    finetune_tuned,
    make_data,
    run_pretraining,
    train_reference_tokenizer,
    write_tasks,
)
from bertcommon import cli
from bertcommon.files import write_json
from bertdata.tfdata.dataset_files import read_metadata

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


@dataclasses.dataclass(frozen=True)
class RecipeSettings(cli.Settings):
    nsmc: NsmcSettings
    corpus_mb: float = cli.flag(12.0, check=cli.positive, help="the corpus's first N MB")
    recipes: tuple[str, ...] = cli.flag(tuple(RECIPES), help=f"from {', '.join(RECIPES)}")

    def problems(self):
        unknown = [name for name in self.recipes if name not in RECIPES]
        if unknown:
            yield f"--recipes: unknown {', '.join(unknown)}; known: {', '.join(RECIPES)}"


def run_recipe(args: NsmcSettings, name: str, spm_model: str, corpus: str,
               tasks: dict) -> dict:
    nsp_mode, rate, masking = RECIPES[name]
    recipe = dataclasses.replace(
        args, nsp_mode=nsp_mode, masked_lm_prob=rate, masking=masking,
        max_predictions_per_seq=round(args.max_predictions_per_seq * rate / 0.15))
    work = os.path.join(args.workdir, name)
    TIMINGS.seconds = {}
    data = make_data(recipe, corpus, spm_model, os.path.join(work, "data"))
    examples = read_metadata(data).splits["train"].num_examples
    model_dir = os.path.join(work, "model")
    pretraining = run_pretraining(recipe, data, spm_model, model_dir)
    finetuned = finetune_tuned(recipe, model_dir, tasks, scratch=False)
    return {"settings": {"nsp_mode": nsp_mode, "masked_lm_prob": rate, "masking": masking,
                         "max_predictions_per_seq": recipe.max_predictions_per_seq},
            "train_examples": examples, "pretraining": pretraining, "nsmc": finetuned,
            "seconds": dict(TIMINGS.seconds)}


def table(results: dict, args: NsmcSettings) -> str:
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
    write_json(path, results, default=str)


def read_results(path: str) -> dict:
    """The recipes a stopped run finished (this benchmark's own file)."""
    import json

    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def measure(settings: RecipeSettings) -> None:
    args = settings.nsmc
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "recipes.json")
    results = read_results(path)
    tasks = write_tasks(args, args.workdir)
    corpus = corpus_slice(args.corpus, settings.corpus_mb,
                          os.path.join(args.workdir, "corpus.txt"))
    spm_model = os.path.join(args.workdir, "ko.model")
    if not os.path.exists(spm_model):
        train_reference_tokenizer(corpus, args.workdir)
    for name in settings.recipes:
        if name in results:
            log.info("%s: done before, kept", name)
            continue
        results[name] = run_recipe(args, name, spm_model, corpus, tasks)
        save(results, path)
        print(table(results, args), flush=True)
        if "from scratch" not in results:
            model_dir = os.path.join(args.workdir, name, "model")
            results["from scratch"] = finetune_tuned(args, model_dir, tasks, scratch=True)
            save(results, path)
    print(f"\n{args.config}, {args.pretrain_steps} steps of {args.batch_size}, "
          f"{settings.corpus_mb} MB of text, dupe factor {args.dupe_factor}:")
    print(table(results, args))


def main(argv=None) -> int:
    return cli.run_command(RecipeSettings, measure, argv, description=__doc__.splitlines()[0],
                           tensorflow=True)


if __name__ == "__main__":
    sys.exit(main())
