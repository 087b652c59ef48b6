"""What leaves a run: the SavedModel, Hugging Face folders (both ways) and the model card."""
