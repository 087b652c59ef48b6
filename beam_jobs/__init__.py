"""Apache Beam jobs of bertpipe (run locally or on Dataflow, Flink, Spark)."""

from bertcommon import logs as _logs

# Importing Beam without the dataflow extra logs a warning through the root logger, which
# would configure it (see bertcommon.logs.root_logger_left_alone).
with _logs.root_logger_left_alone():
    import apache_beam  # noqa: F401
