"""bertpipe: the orchestration above the three packages.

`bertdata` (tokenizer, corpus, records, input function), `beam_jobs` (the data job) and
`bertmodel` (the Keras BERT, training, export, fine-tuning) do not depend on each other
beyond bertdata; `bertpipe.end_to_end` runs them one after the other.
"""
