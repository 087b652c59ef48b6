"""The network: its config, layers, the Keras BERT and the in-graph text preprocessor."""
