"""What a pretrained encoder is used for: fine-tuning a classifier (its TSV files, metrics,
the bag-of-words baseline, training)."""

from bertcommon.errors import BertpipeError


class FinetuneError(BertpipeError):
    """Bad flags or data, found before training starts; names the flag, file or line."""
