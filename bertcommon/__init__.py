"""What every bertpipe package shares: the command-line layer (`cli`), the console's log
lines (`logs`) and whole-or-nothing outputs (`files`). It imports nothing of the project, so
the data side (`bertdata`, `beam_jobs`) and the model side (`bertmodel`) both build on it."""
