"""bertpipe's benchmarks: one module per question, each run as `python -m benchmarks.NAME`.

Every benchmark declares its flags with `bertcommon.cli` and prints its figures and the ratios
to the peer it is measured against; `benchmarks.common` holds what several of them share (the
NSMC corpus and task files, the pretraining and fine-tuning stages). docs/benchmarks.md lists
each with its question, its command and its latest figures.
"""
