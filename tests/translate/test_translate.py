"""The translation model and its parts: attention masking, the Luong fast path against the
step-by-step reference, greedy and beam search, codecs and parallel text."""

import math

import pytest
import torch
from budget import SEED, train_until

from rnnkit.data.buckets import Sequences
from rnnkit.translate.attention import BahdanauAttention, LuongAttention, masked_softmax
from rnnkit.translate.batches import Encoded, PairBatches
from rnnkit.translate.decode import beam_search, greedy
from rnnkit.translate.model import Seq2Seq
from rnnkit.translate.pairs import read_pairs
from rnnkit.translate.text import BOS_ID, EOS_ID, PAD_ID, Codec


def batch(B=4, S=7, T=6, V=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (B, S), generator=g)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S
    src[torch.arange(S) >= lengths.unsqueeze(1)] = PAD_ID
    tgt_in = torch.randint(4, V, (B, T), generator=g)
    tgt_in[:, 0] = BOS_ID
    targets = torch.randint(4, V, (B, T), generator=g)
    targets[1, 3:] = PAD_ID  # a shorter target: ignored by the loss
    return src, lengths, tgt_in, targets


def model(attention="luong", cell="gru", V=20, **kw):
    torch.manual_seed(0)
    return Seq2Seq(V, V, cell=cell, attention=attention, embed=8, hidden=12, **kw).eval()


@pytest.mark.parametrize("cls", [LuongAttention, BahdanauAttention])
@pytest.mark.parametrize("steps", [None, 5])
def test_attention_weights_sum_to_one_on_valid_positions_and_zero_on_padding(cls, steps):
    torch.manual_seed(0)
    B, S, Q, M = 3, 6, 5, 4
    attn = cls(Q, M)
    memory = torch.randn(B, S, M)
    lengths = torch.tensor([6, 2, 4])
    mask = torch.arange(S) < lengths.unsqueeze(1)
    query = torch.randn(B, Q) if steps is None else torch.randn(B, steps, Q)
    context, a = attn(query, attn.keys(memory), memory, mask)
    if steps is None:
        a = a.unsqueeze(1)
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:2]))
    assert (a.masked_select(~mask.unsqueeze(1).expand_as(a)) == 0).all()
    assert (a.masked_select(mask.unsqueeze(1).expand_as(a)) > 0).all()
    # padding holds garbage: it must not reach the context
    garbage = memory.clone()
    garbage[~mask] = 1e6
    context2, _ = attn(query, attn.keys(garbage), garbage, mask)
    torch.testing.assert_close(context, context2)


def test_masked_softmax_matches_softmax_over_the_valid_prefix():
    scores = torch.randn(2, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    a = masked_softmax(scores, mask)
    torch.testing.assert_close(a[0, :3], scores[0, :3].softmax(-1))
    torch.testing.assert_close(a[1], scores[1].softmax(-1))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_luong_whole_target_fast_path_equals_the_step_by_step_decoder(cell):
    m = model("luong", cell).double()
    src, lengths, tgt_in, targets = batch()
    fast, loss_fast = m((src, lengths, tgt_in), targets)
    memory, state = m.encode(src, lengths)
    slow = m._unroll(tgt_in, state, memory, forced=True)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    # and every gradient
    weight = torch.linspace(-1, 1, fast.shape[-1], dtype=torch.float64)
    grads = []
    for path in ("fast", "slow"):
        m.zero_grad()
        if path == "fast":
            logits, _ = m((src, lengths, tgt_in))
        else:
            memory, state = m.encode(src, lengths)
            logits = m._unroll(tgt_in, state, memory, forced=True)
        (logits * weight).sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-9, atol=1e-10)


def test_loss_ignores_padded_targets_and_is_the_mean_token_cross_entropy():
    m = model("bahdanau")
    src, lengths, tgt_in, targets = batch()
    logits, loss = m((src, lengths, tgt_in), targets)
    keep = targets != PAD_ID
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, expected)
    changed = targets.clone()
    assert (changed[1, 3:] == PAD_ID).all()


def test_scheduled_sampling_trains_and_full_teacher_forcing_equals_forced():
    m = model("luong", teacher_forcing=0.5).train()
    src, lengths, tgt_in, targets = batch()
    _, loss = m((src, lengths, tgt_in), targets)
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None for p in m.decoder.parameters())


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_of_one_is_greedy(attention, cell):
    m = model(attention, cell)
    src, lengths, _, _ = batch(B=6, seed=3)
    g = greedy(m, src, lengths, max_length=12)
    b = beam_search(m, src, lengths, beam=1, max_length=12)
    assert [h.tokens for h in g] == [h.tokens for h in b]
    for x, y in zip(g, b, strict=True):
        assert x.score == pytest.approx(y.score * (len(y.tokens) + 1), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batched_decoding_equals_one_sentence_at_a_time(search):
    m = model("bahdanau")
    src, lengths, _, _ = batch(B=5, seed=4)

    def run(s, n):
        if search == "greedy":
            return greedy(m, s, n, max_length=10)
        return beam_search(m, s, n, beam=3, max_length=10)

    together = run(src, lengths)
    for i in range(5):
        alone = run(src[i : i + 1, : int(lengths[i])], lengths[i : i + 1])
        assert alone[0].tokens == together[i].tokens
        assert alone[0].score == pytest.approx(together[i].score, abs=1e-4)


def test_beam_search_scores_are_the_normalised_log_probability_of_their_tokens():
    m = model("luong")
    src, lengths, _, _ = batch(B=3, seed=5)
    for alpha in (0.0, 1.0):
        hyps = beam_search(m, src, lengths, beam=4, alpha=alpha, max_length=8, attention=True)
        for i, h in enumerate(hyps):
            y = torch.tensor([BOS_ID, *h.tokens])
            logits, _ = m((src[i : i + 1], lengths[i : i + 1], y.unsqueeze(0)))
            logp = logits.log_softmax(-1)[0]
            full = torch.tensor([*h.tokens, EOS_ID])
            total = logp.gather(1, full.unsqueeze(1)).sum().item()
            # ended by </s> or by the budget (where </s> is forced, and scored too)
            assert h.score == pytest.approx(total / len(full) ** alpha, abs=1e-4)
            assert h.attention.shape == (len(h.tokens) + 1, int(lengths[i]))
            torch.testing.assert_close(h.attention.sum(1), torch.ones(len(h.tokens) + 1))


def test_beam_search_rejects_bad_settings():
    m = model()
    src, lengths, _, _ = batch()
    with pytest.raises(ValueError, match="beam must be a positive int, got 0"):
        beam_search(m, src, lengths, beam=0)
    with pytest.raises(ValueError, match="alpha"):
        beam_search(m, src, lengths, alpha=-1.0)


def random_sequences(n: int, V: int, g: torch.Generator) -> list[list[int]]:
    return [
        torch.randint(4, V, (int(k),), generator=g).tolist()
        for k in torch.randint(2, 6, (n,), generator=g)
    ]


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_a_model_learns_to_reverse_sequences_perfectly_greedy_and_beam(attention):
    """Trained until greedy and beam search both reverse 40 unseen sequences without a slip
    (asked every 50 steps; the four settings and seeds 0-2 needed 150-700 steps)."""
    torch.manual_seed(SEED)
    g, V, lr = torch.Generator().manual_seed(SEED), 12, 1e-2
    seqs = random_sequences(4096, V, g)
    data = Encoded(Sequences(seqs), Sequences([s[::-1] for s in seqs]))
    m = Seq2Seq(V, V, attention=attention, embed=32, hidden=64, dropout=0.0, label_smoothing=0.0)
    batches = PairBatches(data, 64, seed=SEED)
    opt = torch.optim.Adam(m.parameters(), lr)
    test = random_sequences(40, V, g)  # (almost all) never seen in training
    (src, lengths), _, _ = Sequences(test).batch(torch.arange(len(test)))

    def step(k: int) -> None:
        inputs, targets, _ = batches(k)
        _, loss = m.train()(inputs, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def reverses_all() -> bool:
        m.eval()
        expected = [t[::-1] for t in test]
        if [h.tokens for h in greedy(m, src, lengths)] != expected:
            return False
        return [h.tokens for h in beam_search(m, src, lengths, beam=4)] == expected

    train_until(step, reverses_all, budget=2000, every=50)


def test_word_codec_round_trip_and_unknown_tokens():
    codec = Codec.build(["a b c", "a b", "a d"], "word", min_freq=2)
    assert codec.vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert codec.decode(codec.encode("a b")) == "a b"
    assert codec.unknown("a zebra c") == ["zebra", "c"]
    again = Codec.from_dict(codec.to_dict())
    assert again.encode("b a x") == codec.encode("b a x")


def test_subword_codec_is_trained_on_the_text_and_restores_it():
    texts = [f"der hund {w} im park ." for w in ("läuft", "spielt", "schläft", "bellt")] * 20
    codec = Codec.build(texts, "subword", vocab_size=60)
    ids = codec.encode("der hund spielt im park .")
    assert ids and PAD_ID not in ids and BOS_ID not in ids
    assert codec.decode(ids) == "der hund spielt im park ."
    again = Codec.from_dict(codec.to_dict())
    assert again.encode("der hund bellt .") == codec.encode("der hund bellt .")
    assert len(again) == len(codec)


def test_parallel_files_of_different_lengths_name_both_counts(tmp_path):
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\n")
    (tmp_path / "a.en").write_text("one\ntwo\n")
    with pytest.raises(ValueError, match=r"a\.de has 3 lines, .*a\.en has 2"):
        read_pairs(tmp_path / "a.de", tmp_path / "a.en")


def test_empty_lines_are_skipped_and_counted_and_tsv_is_read(tmp_path):
    (tmp_path / "a.de").write_text("eins\n\ndrei\nvier\n")
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n  \n")
    pairs = read_pairs(tmp_path / "a.de", tmp_path / "a.en")
    assert (pairs.source, pairs.target, pairs.skipped) == (["eins", "drei"], ["one", "three"], 2)
    (tmp_path / "p.tsv").write_text("eins\tone\n\nzwei\ttwo\n")
    pairs = read_pairs(tmp_path / "p.tsv")
    assert (pairs.source, pairs.target, pairs.skipped) == (["eins", "zwei"], ["one", "two"], 1)
    (tmp_path / "bad.tsv").write_text("eins\tone\tuno\n")
    with pytest.raises(ValueError, match=r"bad\.tsv:1: expected source<TAB>target"):
        read_pairs(tmp_path / "bad.tsv")
    with pytest.raises(ValueError, match="no such file"):
        read_pairs(tmp_path / "missing.de", tmp_path / "a.en")


def test_pair_batches_shift_the_target_and_end_it_with_eos():
    data = Encoded(Sequences([[5, 6, 7], [8]]), Sequences([[9, 10], [11, 12, 13]]))
    (src, lengths, tgt_in), tgt_out, n = data.batch(torch.tensor([0, 1]))
    assert src.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert tgt_in.tolist() == [[BOS_ID, 9, 10, 0], [BOS_ID, 11, 12, 13]]
    assert tgt_out.tolist() == [[9, 10, EOS_ID, 0], [11, 12, 13, EOS_ID]]
    assert n == 7


def test_tied_embeddings_share_the_target_embedding_with_the_output_layer():
    m = model("luong", tie_embeddings=True)
    assert not hasattr(m, "out")
    src, lengths, tgt_in, targets = batch()
    _, loss = m.train()((src, lengths, tgt_in), targets)
    loss.backward()
    grad = m.tgt_embedding.weight.grad
    assert grad is not None
    never_input = sorted(set(range(20)) - set(tgt_in.flatten().tolist()))
    assert grad[never_input].abs().sum() > 0  # reached only through the output layer
    with torch.no_grad():
        m.tgt_embedding.weight[5] += 1.0
    logits, _ = m.eval()((src, lengths, tgt_in))
    memory, state = m.encode(src, lengths)
    logits2 = m._unroll(tgt_in, state, memory, forced=True)
    torch.testing.assert_close(logits, logits2)
