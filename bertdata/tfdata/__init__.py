"""The TensorFlow side of the data: `make_dataset`, dynamic masking, record integrity and
inspection. Nothing outside this folder in bertdata imports TensorFlow (tests enforce it), so
the Beam job's workers never load it."""
