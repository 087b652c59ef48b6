"""Data side of bertpipe: tokenizer, corpus reading, example building, records, input function.

Everything here except `make_dataset` imports without TensorFlow or Beam, so the Beam job's
workers and small scripts stay light. `make_dataset` is loaded on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "make_dataset"]


def __getattr__(name):
    # Lazy so that `import bertdata.pretraining` on a Beam worker does not pull in TensorFlow.
    if name == "make_dataset":
        from bertdata.input_pipeline import make_dataset

        return make_dataset
    raise AttributeError(f"module 'bertdata' has no attribute {name!r}")
