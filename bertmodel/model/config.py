"""Model configuration: one frozen dataclass, named presets, strict JSON loading."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os

from bertcommon.files import BadFile, read_json

_SIZES = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
          "max_position_embeddings", "type_vocab_size")
_RATES = ("dropout_rate", "attention_dropout_rate")
_SCALES = ("layer_norm_epsilon", "initializer_range")


def _size_problem(value) -> str | None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        return f"must be an integer, got {value!r}"
    return None if value >= 1 else f"must be positive, got {value}"


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)


HIDDEN_ACTS = ("gelu_tanh", "gelu")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Sizes of a BERT encoder (post-LN, learned positions, tied MLM output)."""

    # Pieces in the tokenizer, the 7 special pieces included; must match the records.
    vocab_size: int = 32_007
    # Width of every token vector.
    hidden_size: int = 256
    # Encoder blocks.
    num_layers: int = 3
    # Attention heads per block; hidden_size must divide by it.
    num_heads: int = 4
    # Width of the feed-forward layer inside each block.
    intermediate_size: int = 1024
    # Learned position embeddings; the longest sequence the model accepts.
    max_position_embeddings: int = 256
    # Segment (token type) embeddings: A and B.
    type_vocab_size: int = 2
    # Dropout after embeddings, attention output and feed-forward output.
    dropout_rate: float = 0.1
    # Dropout on attention probabilities.
    attention_dropout_rate: float = 0.1
    # LayerNorm epsilon (the reference used Keras' default, 1e-3).
    layer_norm_epsilon: float = 1e-3
    # Stddev of the truncated-normal initializer.
    initializer_range: float = 0.02
    # The feed-forward and MLM-transform activation: GELU's tanh approximation (this
    # project's models, and google-research/bert's), or the exact GELU most published
    # checkpoints use (hidden_act "gelu" in transformers).
    hidden_act: str = "gelu_tanh"

    def __post_init__(self):
        for f in _SIZES:
            problem = _size_problem(getattr(self, f))
            if problem:
                raise ValueError(f"{f} {problem}")
        for f in _RATES:  # a dropout of 1 or more zeroes every activation
            value = getattr(self, f)
            if not _real(value) or not 0 <= value < 1:
                raise ValueError(f"{f} must be a number in [0, 1), got {value!r}")
        for f in _SCALES:
            value = getattr(self, f)
            if not _real(value) or value <= 0:
                raise ValueError(f"{f} must be a positive number, got {value!r}")
        if self.hidden_act not in HIDDEN_ACTS:
            raise ValueError(f"hidden_act must be one of {', '.join(HIDDEN_ACTS)}, got "
                             f"{self.hidden_act!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_heads {self.num_heads}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> BertConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; known keys: {sorted(known)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:  # a value of the wrong type or range
            raise ValueError(f"{source}: {e}") from None


# The MLM loss is multiplied by this against the NSP loss, as the reference did.
DEFAULT_MLM_LOSS_WEIGHT = 20.0
# ELECTRA (bertmodel.model.electra): the generator's MLM loss counts once, the
# discriminator's replaced-token detection 50 times (Clark et al. 2020's λ), and the
# generator is a quarter of the discriminator's width (the paper's best at small sizes).
ELECTRA_MLM_LOSS_WEIGHT = 1.0
DEFAULT_RTD_LOSS_WEIGHT = 50.0
DEFAULT_GENERATOR_SIZE = 0.25

PRESETS = {
    # For tests: a few thousand parameters, trains in seconds.
    "tiny": BertConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                       max_position_embeddings=128),
    # The demo's size: trains to a visible MLM accuracy on the sample corpus in minutes.
    "mini": BertConfig(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512,
                       max_position_embeddings=128),
    # The reference model of the course notebook (10.7 M parameters at 32,007 pieces).
    "seed": BertConfig(),
    # BERT-base and BERT-large sizes (Devlin et al.), with 512 positions.
    "base": BertConfig(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                       max_position_embeddings=512, layer_norm_epsilon=1e-12),
    "large": BertConfig(hidden_size=1024, num_layers=24, num_heads=16,
                        intermediate_size=4096, max_position_embeddings=512,
                        layer_norm_epsilon=1e-12),
}


# The peak learning rate each preset trains with unless --learning_rate says otherwise.
# Small models need larger steps to leave the unigram plateau (always predicting the most
# frequent pieces) in a run of a few thousand steps: measured on held-out real prose
# (benchmarks/learning_rates.py on the NSMC corpus, figures in docs/benchmarks.md): the
# lowest held-out MLM loss after 2,000 steps of 64 among 5e-4..4e-3 was at 2e-3 for `tiny`
# and 1e-3 for `mini`; after 1,000 steps among 1.25e-4..2e-3, at 1e-3 for `seed` (the
# reference's 2.5e-4 was third; 2e-3 never left the plateau). base and large use the 1e-4
# of Devlin et al. (not measured here).
PRESET_LEARNING_RATES = {"tiny": 2e-3, "mini": 1e-3, "seed": 1e-3, "base": 1e-4,
                         "large": 1e-4}


def _rate_by_width(rates: dict[str, float], config: BertConfig) -> float:
    """The rate of the widest preset that is not wider than CONFIG (for JSON configs too)."""
    fitting = [(PRESETS[name].hidden_size, rate) for name, rate in rates.items()
               if PRESETS[name].hidden_size <= config.hidden_size]
    return max(fitting)[1] if fitting else rates["tiny"]


def default_learning_rate(config: BertConfig) -> float:
    """The peak pretraining learning rate for a model of this width."""
    return _rate_by_width(PRESET_LEARNING_RATES, config)


# Fine-tuning peaks, chosen by width as above. Measured on NSMC (10,000 reviews, 2 epochs,
# dev split; docs/results.md): `mini` (128 wide) 1e-3 beat 3e-4 pretrained (0.805
# against 0.794) and from scratch (0.812 against 0.811), and on the sample task 1e-3 beat
# 2e-4 for both (benchmarks/finetune_gain.py); `seed` (256) 5e-4 beat 1e-4 and the former
# default of a fifth of its pretraining peak, 5e-5 (dev 0.790 against 0.764 and 0.690
# pretrained, 0.794 against 0.763 and 0.581 from scratch). base and large keep 2e-5, the
# usual BERT-base fine-tuning rate (a fifth of their 1e-4 pretraining peak); not measured
# here.
PRESET_FINETUNE_LEARNING_RATES = {"tiny": 1e-3, "mini": 1e-3, "seed": 5e-4, "base": 2e-5,
                                  "large": 2e-5}


def default_finetune_learning_rate(config: BertConfig) -> float:
    """bertmodel.finetune's default peak learning rate for a model of this width."""
    return _rate_by_width(PRESET_FINETUNE_LEARNING_RATES, config)


def load_config(name_or_path: str, **overrides) -> BertConfig:
    """A preset name or a JSON file (strict: unknown keys are an error), plus overrides."""
    if name_or_path in PRESETS:
        cfg = PRESETS[name_or_path]
    elif name_or_path.endswith(".json") or os.path.exists(name_or_path):
        if not os.path.isfile(name_or_path):
            raise ValueError(f"--config {name_or_path}: no such file (a preset name or a "
                             "JSON file of BertConfig fields)")
        try:
            data = read_json(name_or_path)
        except BadFile as e:
            raise ValueError(f"--config {e} (a JSON object of BertConfig fields)") from None
        cfg = BertConfig.from_dict(data, source=f"--config {name_or_path}")
    else:
        raise ValueError(f"--config {name_or_path!r} is neither a preset "
                         f"({', '.join(PRESETS)}) nor a JSON file")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
