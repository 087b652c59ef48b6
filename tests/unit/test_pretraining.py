import collections

import numpy as np
import pytest

from bertdata import pretraining as pt
from bertdata.tokenizer import SPECIAL_IDS
from tests.example_helpers import document_examples, mask_one, one_pass_examples, pack_pair

CLS, SEP, MASK = SPECIAL_IDS.cls, SPECIAL_IDS.sep, SPECIAL_IDS.mask


def reference_trim(a, b, max_tokens):
    """The reference's loop, literally."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        if len(a) > len(b):
            a.pop(0)
        else:
            b.pop()
    return a, b


def test_closed_form_trim_matches_the_reference_loop():
    rng = np.random.default_rng(0)
    for _ in range(3000):
        la, lb, m = (int(x) for x in rng.integers(1, 60, 3))
        a, b = reference_trim(range(la), range(100, 100 + lb), m)
        assert pt.truncated_lengths(la, lb, m) == (len(a), len(b))


def test_pack_pair_trims_like_the_reference_into_the_pair_layout():
    a = np.arange(10, 20, dtype=np.int32)  # 10 pieces
    b = np.arange(30, 34, dtype=np.int32)  # 4 pieces
    ids, seg, truncated = pack_pair(a, b, max_seq_length=13)  # room for 10
    want_a, want_b = reference_trim(a, b, 10)
    assert truncated
    assert ids.tolist() == [CLS, *want_a, SEP, *want_b, SEP]
    assert want_a[0] == 14 and want_b[-1] == 33  # A lost its front, B kept its end
    assert seg.tolist() == [0] * (len(want_a) + 2) + [1] * (len(want_b) + 1)


class Vocab:
    """A hand-made vocabulary: ids 7..26 start words ('▁x'), 27..46 continue them."""

    size = 47

    @classmethod
    def tables(cls):
        word_start = np.zeros(cls.size, bool)
        word_start[7:27] = True
        is_special = np.zeros(cls.size, bool)
        is_special[:7] = True
        return pt.VocabTables(word_start, is_special, np.arange(7, cls.size, dtype=np.int32),
                              SPECIAL_IDS)


def sequence(rng, n_words=30):
    """[CLS] a [SEP] b [SEP] over words of one word-start piece (7..26) and 0-2
    continuation pieces (27..46)."""
    lengths = 1 + rng.integers(0, 3, n_words)
    pieces = rng.integers(27, 47, lengths.sum())
    pieces[np.cumsum(lengths) - lengths] = rng.integers(7, 27, n_words)
    half = len(pieces) // 2
    return np.concatenate([[CLS], pieces[:half], [SEP], pieces[half:], [SEP]]).astype(np.int32)


def words_of(ids, vocab):
    """Position groups of whole words (the masking unit)."""
    groups, current = [], []
    for i, t in enumerate(ids):
        if vocab.is_special[t]:
            current = []
            continue
        if vocab.word_start[t] or not current:
            current = [i]
            groups.append(current)
        else:
            current.append(i)
    return groups


@pytest.mark.parametrize("rates,expect", [((1.0, 0.0), "mask"), ((0.0, 0.0), "keep"),
                                          ((0.0, 1.0), "random")])
def test_forced_rates_give_exact_ids(rates, expect):
    vocab = Vocab.tables()
    rng = np.random.default_rng(1)
    ids = sequence(rng)
    out, pos, labels = mask_one(ids, rng, vocab, masked_lm_prob=0.15,
                                           max_predictions=100, mask_token_rate=rates[0],
                                           random_token_rate=rates[1])
    assert len(pos) == int((len(ids) - 3) * 0.15)  # this vocabulary always fills the budget
    assert labels.tolist() == ids[pos].tolist()
    untouched = np.setdiff1d(np.arange(len(ids)), pos)
    assert out[untouched].tolist() == ids[untouched].tolist()
    if expect == "mask":
        assert set(out[pos].tolist()) == {MASK}
    elif expect == "keep":
        assert out.tolist() == ids.tolist()
    else:
        assert not np.any(vocab.is_special[out[pos]])
        assert np.all(np.isin(out[pos], vocab.replacement_ids))


def test_masking_keeps_whole_words_within_its_budget_never_choosing_specials():
    vocab = Vocab.tables()
    rng = np.random.default_rng(2)
    for trial in range(500):
        ids = sequence(rng, n_words=int(rng.integers(3, 60)))
        cap = int(rng.integers(1, 25))
        out, pos, labels = mask_one(ids, rng, vocab, masked_lm_prob=0.15,
                                               max_predictions=cap)
        budget = min(cap, int((len(ids) - 3) * 0.15))
        assert len(pos) <= budget
        assert list(pos) == sorted(pos) and len(set(pos.tolist())) == len(pos)
        assert not np.any(vocab.is_special[ids[pos]]), "a special piece was chosen"
        assert not np.any(vocab.is_special[out[pos]] & (out[pos] != MASK))
        chosen = set(pos.tolist())
        for word in words_of(ids, vocab):
            inside = [p in chosen for p in word]
            assert all(inside) or not any(inside), f"word {word} split in trial {trial}"
        # Special pieces stay where they were.
        assert np.all(out[vocab.is_special[ids]] == ids[vocab.is_special[ids]])


def test_masking_over_10000_examples_follows_the_15_percent_80_10_10_rule():
    """One batched call over 10,000 examples, each with its own stream."""
    vocab = Vocab.tables()
    rng = np.random.default_rng(3)
    rows = [sequence(rng, n_words=40) for _ in range(10_000)]
    batch = pt.ExampleBatch.from_rows(rows, SEP)
    original = batch.input_ids.copy()
    streams = [pt.document_stream(3, i.to_bytes(4, "little")) for i in range(len(rows))]
    pt.mask_whole_words(batch, streams, [1] * len(rows), vocab, masked_lm_prob=0.15,
                        max_predictions=1000)
    assert abs(batch.num_masked.sum() / (batch.lengths - 3).sum() - 0.15) < 0.01
    # Every masked piece, by what became of it (all pieces of a word share one draw).
    taken = np.arange(batch.masked_lm_positions.shape[1]) < batch.num_masked[:, None]
    rows = np.nonzero(taken)[0]
    positions = batch.masked_lm_positions[taken]
    now, before = batch.input_ids[rows, positions], original[rows, positions]
    assert np.array_equal(batch.masked_lm_ids[taken], before)
    # A continuation piece is [MASK] exactly when the piece before it (same word) is.
    follows = np.nonzero((rows[1:] == rows[:-1]) & (positions[1:] == positions[:-1] + 1)
                         & ~Vocab.tables().word_start[before[1:]])[0]
    assert len(follows) > 1000
    assert np.array_equal(now[follows] == MASK, now[follows + 1] == MASK)
    masked, kept = np.mean(now == MASK), np.mean(now == before)
    assert abs(masked - 0.8) < 0.01
    # A random draw may land on the original piece (1 in 40 here); it then counts as kept.
    assert abs(kept - 0.1 - 0.1 / 40) < 0.01
    assert abs(1 - masked - kept - 0.1 * 39 / 40) < 0.01


def tokenized_docs(tokenizer, sample_lines):
    from bertdata.corpus import documents_from_lines

    return [(pt.document_key(d), [np.array(x, np.int32) for x in tokenizer.encode(d)])
            for d in documents_from_lines(sample_lines)]


def _sample_examples(tokenizer, sample_lines, seed, counts=None):
    vocab = pt.VocabTables.from_tokenizer(tokenizer)
    cfg = pt.ExampleSettings(max_seq_length=64, dupe_factor=5, seed=seed)
    return cfg, [i for key, d in tokenized_docs(tokenizer, sample_lines)
                 for i in document_examples(d, cfg, vocab, key=key, counts=counts)]


def test_pairs_have_the_cls_sep_layout_with_balanced_labels(tokenizer, sample_lines):
    counts = collections.Counter()
    cfg, instances = _sample_examples(tokenizer, sample_lines, 11, counts)
    assert len(instances) > 500 and counts[pt.EXAMPLES] == len(instances)
    labels = [i.next_sentence_label for i in instances]
    assert abs(np.mean(labels) - 0.5) < 0.05
    for inst in instances:
        ids, seg = inst.input_ids, inst.segment_ids
        assert len(ids) <= 64 and ids[0] == CLS and ids[-1] == SEP
        seps = np.flatnonzero(ids == SEP)
        assert len(seps) == 2
        assert seg.tolist() == [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)
        assert np.all(inst.masked_lm_positions > 0) and np.all(inst.masked_lm_positions < len(ids))
        assert len(inst.masked_lm_positions) <= cfg.max_predictions_per_seq


def test_the_seed_alone_decides_the_examples(tokenizer, sample_lines):
    _, instances = _sample_examples(tokenizer, sample_lines, 11)
    _, again = _sample_examples(tokenizer, sample_lines, 11)
    _, changed = _sample_examples(tokenizer, sample_lines, 12)
    assert all(np.array_equal(x.input_ids, y.input_ids) for x, y in zip(instances, again,
                                                                           strict=True))
    assert [x.input_ids.tolist() for x in instances] != [x.input_ids.tolist() for x in changed]


def test_swap_mode_b_is_the_continuation_or_the_swap():
    vocab = Vocab.tables()
    doc = [np.array([7 + i, 27], np.int32) for i in range(6)]  # line i: word 7+i
    cfg = pt.ExampleSettings(max_seq_length=64, masked_lm_prob=0.0, seed=5)
    for dupe in range(50):
        rng = pt.document_stream(5, b"doc", dupe).generator()
        for inst in one_pass_examples(doc, rng, cfg, vocab):
            ids = inst.input_ids.tolist()
            a = ids[1:ids.index(SEP)]
            b = ids[ids.index(SEP) + 1:-1]
            first = a if inst.next_sentence_label == 0 else b
            second = b if inst.next_sentence_label == 0 else a
            assert first + second == [t for line in doc for t in line.tolist()]


def test_lines_no_pair_can_use_are_counted():
    vocab = Vocab.tables()
    cfg = pt.ExampleSettings(max_seq_length=8, masked_lm_prob=0.0)
    counts = collections.Counter()
    single = [np.array([7, 8, 9], np.int32)]
    assert one_pass_examples(single, np.random.default_rng(0), cfg, vocab,
                               counts=counts) == []
    assert counts[pt.DOCUMENTS_SINGLE_LINE] == 1
    # Lines of 5 pieces with a target of 5: two lines per chunk, the fifth line is alone.
    doc = [np.array([7, 8, 9, 10, 11], np.int32)] * 5
    out = one_pass_examples(doc, np.random.default_rng(0), cfg, vocab, counts=counts)
    assert len(out) == 2
    assert counts[pt.LINES_TRAILING_DROPPED] == 1


def test_random_doc_mode_draws_b_from_other_documents_returning_unused_lines():
    vocab = Vocab.tables()
    own = [np.array([7 + i], np.int32) for i in range(8)]  # ids 7..14
    # The pool holds text; this toy tokenizer reads a line's ids from its digits.
    others = [(bytes([k]), [f"{20 + k} {21 + k}"] * 3) for k in range(4)]
    own_text = [str(7 + i) for i in range(8)]
    pool = pt.RandomDocumentPool.from_documents(
        others + [(b"self", own_text)], lambda line: [int(x) for x in line.split()])
    cfg = pt.ExampleSettings(max_seq_length=7, masked_lm_prob=0.0, nsp_mode="random_doc")
    labels = []
    for dupe in range(200):
        rng = pt.document_stream(1, b"self", dupe).generator()
        for inst in one_pass_examples(own, rng, cfg, vocab, key=b"self", pool=pool):
            ids = inst.input_ids.tolist()
            b = ids[ids.index(SEP) + 1:-1]
            labels.append(inst.next_sentence_label)
            if inst.next_sentence_label:
                assert all(t >= 20 for t in b), "random B came from the same document"
            else:
                assert all(7 <= t <= 14 for t in b)
    assert abs(np.mean(labels) - 0.5) < 0.1
    # A lone line still makes an example with a random B.
    lone = one_pass_examples([np.array([7, 8], np.int32)], np.random.default_rng(0), cfg,
                               vocab, key=b"lone", pool=pool)
    assert len(lone) == 1 and lone[0].next_sentence_label == 1


def test_a_pool_segment_is_whole_lines_tokenized_up_to_the_target(tokenizer, sample_lines):
    from bertdata.corpus import documents_from_lines

    docs = list(documents_from_lines(sample_lines))[:30]
    pool = pt.RandomDocumentPool.from_documents(
        [(bytes([d]), lines) for d, lines in enumerate(docs)], tokenizer.encode_line)
    encoded = [[np.array(ids, np.int32) for ids in tokenizer.encode(lines)] for lines in docs]
    draws = pt.UniformDraws(np.random.default_rng(3))
    for _ in range(300):
        target = int(draws.integer(-2, 90))
        got = pool.sample(draws, target, exclude=b"")
        assert _is_whole_line_segment(got, encoded, target), target


def _is_whole_line_segment(got, documents, target):
    """Whether GOT is some start line of some document, then as few whole lines as reach
    the target (at least one, at most the rest of the document)."""
    for lines in documents:
        lengths = np.array([len(line) for line in lines])
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # The first line whose end reaches start + target closes the segment.
        last = np.searchsorted(ends, starts + target)
        last = np.clip(np.maximum(last, np.arange(len(lines))), 0, len(lines) - 1)
        flat = np.concatenate(lines)
        for start in np.flatnonzero(ends[last] - starts == len(got)):
            if np.array_equal(flat[starts[start]:ends[last[start]]], got):
                return True
    return False


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="dupe_factor"):
        pt.ExampleSettings(dupe_factor=0)
    with pytest.raises(ValueError, match="nsp_mode"):
        pt.ExampleSettings(nsp_mode="other")


def test_a_documents_masks_do_not_depend_on_its_batch(tokenizer, sample_lines):
    """The Beam job masks many documents per batch; each must come out as if alone."""
    vocab = pt.VocabTables.from_tokenizer(tokenizer)
    docs = tokenized_docs(tokenizer, sample_lines)[:40]
    cfg = pt.ExampleSettings(max_seq_length=64, dupe_factor=2, seed=21)
    alone = [i for key, d in docs for i in document_examples(d, cfg, vocab, key=key)]
    pairs, rngs, sizes = [], [], []
    for key, d in docs:
        for p, rng in pt.document_passes(d, cfg, key=key):
            pairs += p
            rngs.append(rng)
            sizes.append(len(p))
    together = pt.build_batch(pairs, rngs, sizes, cfg, vocab).instances()
    assert len(together) == len(alone) > 100
    for x, y in zip(alone, together, strict=True):
        assert x.input_ids.tolist() == y.input_ids.tolist()
        assert x.masked_lm_positions.tolist() == y.masked_lm_positions.tolist()
        assert x.masked_lm_ids.tolist() == y.masked_lm_ids.tolist()
        assert x.segment_ids.tolist() == y.segment_ids.tolist()
    # And the flat (ids, line lengths) form of a document cuts the same pairs as the lines.
    key, lines = docs[0]
    flat = (np.concatenate(lines), [len(x) for x in lines])
    for (a1, b1, l1), (a2, b2, l2) in zip(
            pt.document_pairs(lines, pt.document_stream(1, key), cfg),
            pt.document_pairs(flat, pt.document_stream(1, key), cfg), strict=True):
        assert (a1.tolist(), b1.tolist(), l1) == (a2.tolist(), b2.tolist(), l2)


def test_mlm_only_examples_are_consecutive_spans_of_one_segment():
    vocab = Vocab.tables()
    doc = [np.array([7 + i % 20, 27 + i % 20], np.int32) for i in range(13)]  # 26 pieces
    cfg = pt.ExampleSettings(max_seq_length=10, masked_lm_prob=0.0, nsp_mode="none")
    out = one_pass_examples(doc, np.random.default_rng(0), cfg, vocab)
    spans = []
    for inst in out:
        ids = inst.input_ids.tolist()
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 1 and len(ids) <= 10
        assert not inst.segment_ids.any() and inst.next_sentence_label == 0
        spans += ids[1:-1]
    # Nothing lost, nothing repeated, in order; a single-line document makes examples too.
    assert spans == [t for line in doc for t in line.tolist()]
    assert [len(i.input_ids) for i in out] == [10, 10, 10, 4]
    assert len(one_pass_examples(doc[:1], np.random.default_rng(0), cfg, vocab)) == 1


def test_mlm_only_masking_budget_counts_one_sep():
    vocab = Vocab.tables()
    doc = [np.arange(7, 27, dtype=np.int32)]  # 20 one-piece words
    cfg = pt.ExampleSettings(max_seq_length=22, masked_lm_prob=0.5, max_predictions_per_seq=20,
                           nsp_mode="none")
    (inst,) = one_pass_examples(doc, np.random.default_rng(0), cfg, vocab)
    assert len(inst.input_ids) == 22 and len(inst.masked_lm_positions) == 10  # (22 - 2) / 2
