"""How pretraining examples are cut and masked: the data job's example settings, and the
names of what it counts while building them (stats.json)."""

from __future__ import annotations

import dataclasses

from bertcommon import cli
from bertdata.schema import MASKING_MODES

NSP_MODES = ("swap", "random_doc", "none")

# Counter keys for stats.json, one per reason.
DOCUMENTS_SINGLE_LINE = "documents_single_line"
LINES_TRAILING_DROPPED = "lines_trailing_dropped"
EXAMPLES = "examples"
EXAMPLES_TRUNCATED = "examples_truncated"
EXAMPLES_NO_MASK = "examples_without_masked_tokens"
EXAMPLES_NOT_NEXT = "examples_not_next"
RANDOM_DOC_UNAVAILABLE = "random_next_unavailable"


@dataclasses.dataclass(frozen=True)
class ExampleSettings(cli.Settings):
    """How examples are cut from documents and masked (the data job's flags)."""

    max_seq_length: int = cli.flag(
        128, check=cli.at_least(5), help="pieces per example, [CLS] and [SEP]s included")
    max_predictions_per_seq: int = cli.flag(
        20, check=cli.non_negative, help="upper bound on masked pieces per example")
    masked_lm_prob: float = cli.flag(
        0.15, check=cli.between(0.0, 1.0, high_included=True),
        help="share of the non-special pieces to mask (budget: int((length - 3) * prob))")
    short_seq_prob: float = cli.flag(
        0.0, check=cli.between(0.0, 1.0, high_included=True),
        help="probability that a document's target length is drawn uniformly from [2, max]")
    dupe_factor: int = cli.flag(
        1, check=cli.positive,
        help="passes over each document, each with a fresh random stream")
    nsp_mode: str = cli.flag(
        "swap", choices=NSP_MODES,
        help="swap: B is A's continuation, swapped half the time (the reference; ALBERT's "
             "SOP); random_doc: half the time B comes from another document (original BERT); "
             "none: MLM only, each example one contiguous span of a document")
    masking: str = cli.flag(
        "static", choices=MASKING_MODES,
        help="static: masks drawn here and stored; dynamic: records keep the unmasked ids "
             "and make_dataset masks anew every epoch")
    # Of the masked words: this share becomes [MASK], random_token_rate random pieces, the
    # rest stays unchanged (80/10/10).
    mask_token_rate: float = cli.flag(0.8, check=cli.non_negative,
                                      help="share of masked words shown as [MASK]")
    random_token_rate: float = cli.flag(0.1, check=cli.non_negative,
                                        help="share of masked words shown as a random piece")
    seed: int = cli.flag(12345, help="each document's random stream derives from this seed "
                                      "and the document's content")

    def problems(self):
        if self.mask_token_rate + self.random_token_rate > 1.0:
            yield "--mask_token_rate and --random_token_rate must sum to <= 1"
