"""Apache Beam jobs of bertpipe (run locally or on Dataflow, Flink, Spark)."""
