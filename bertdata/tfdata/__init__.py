"""The TensorFlow side of the data: `make_dataset`, dynamic masking, record integrity and
inspection. Nothing outside this folder in bertdata imports TensorFlow (tests enforce it), so
the Beam job's workers never load it."""

from bertcommon import logs as _logs

# Every module here imports TensorFlow; loading it here first hides its C++ start-up lines
# (unless TF_CPP_MIN_LOG_LEVEL asks for them), as importing bertmodel does.
_logs.import_tensorflow_quietly()
