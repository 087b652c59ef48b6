"""What test_finetune.py's unit and integration tests share."""

from bertmodel import finetune


def finetune_tiny_run(run, tsv, out, *extra):
    return finetune.main([f"--model_dir={run}", f"--train={tsv}", f"--eval={tsv}",
                          f"--output_dir={out}", "--epochs=1", "--max_seq_length=32", *extra])
