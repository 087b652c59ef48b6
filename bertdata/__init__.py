"""Data side of bertpipe: tokenizer, corpus reading, example building, records, input function.

Everything here except `make_dataset` (and its `InputSettings`) imports without TensorFlow or
Beam, so the Beam job's workers and small scripts stay light. They are loaded on first use.
"""

__version__ = "0.1.0"

__all__ = ["InputSettings", "__version__", "make_dataset"]


def __getattr__(name):
    # Lazy so that `import bertdata.pretraining` on a Beam worker does not pull in TensorFlow.
    if name in ("make_dataset", "InputSettings"):
        from bertdata.tfdata import input_pipeline

        return getattr(input_pipeline, name)
    raise AttributeError(f"module 'bertdata' has no attribute {name!r}")
