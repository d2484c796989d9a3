"""trainer.model and trainer.predict: the loss ignores padding, decoding is constrained."""

import dataclasses
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.data import Vocab, collate
from trainer.model import ModelConfig, SpanModel, span_loss
from trainer.predict import Predictor, decode_spans

torch.set_num_threads(1)
VOCAB = Vocab()
TERMS = ["λx.x", "(λx.x x) (λy.y)", "f ((λx.x) y)", "λz.z ((λx.x) z)"]
SPANS = [(0, 0), (1, 16), (3, 12), (7, 15)]  # token spans (BOS + 1)


def tiny_model(depth=True, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=len(VOCAB), pad_id=VOCAB.pad_id, open_id=VOCAB.open_id,
                      close_id=VOCAB.close_id, n_layer=2, n_head=2, d_model=32, d_ff=64,
                      depth_embedding=depth)
    return SpanModel(cfg).eval()


def padded(ids, T):
    x, mask = collate(ids)
    pad = T - x.shape[1]
    return (torch.nn.functional.pad(x, (0, pad), value=VOCAB.pad_id),
            torch.nn.functional.pad(mask, (0, pad), value=False))


@pytest.mark.parametrize("depth", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_does_not_depend_on_padding(depth, smoothing):
    model = tiny_model(depth)
    ids = [VOCAB.encode(t) for t in TERMS]
    L = max(len(b) for b in ids)
    targets = torch.tensor(SPANS)
    losses = []
    for T in (L, 2 * L):
        x, mask = padded(ids, T)
        s, e = model(x, mask, targets[:, 0])
        assert torch.isinf(s[~mask]).all() and torch.isfinite(s[mask]).all()
        assert torch.isinf(e[~mask]).all() and torch.isfinite(e[mask]).all()
        losses.append(span_loss(s, e, mask, targets, smoothing).item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_loss_smoothing_counts_only_real_positions():
    # two positions with logits 0 and log 3: p = (1/4, 3/4); the padded third must not matter
    s = torch.tensor([[0.0, torch.log(torch.tensor(3.0)), float("-inf")]])
    mask = torch.tensor([[True, True, False]])
    tgt = torch.tensor([[1, 1]])
    logp = torch.log(torch.tensor([0.25, 0.75]))
    eps = 0.2
    want = (1 - eps) * -logp[1] + eps * -logp.mean()
    assert span_loss(s, s, mask, tgt, eps).item() == pytest.approx(want.item(), abs=1e-6)


def test_loss_gradients_reach_the_model():
    model = tiny_model().train()
    x, mask = collate([VOCAB.encode(t) for t in TERMS])
    targets = torch.tensor(SPANS)
    s, e = model(x, mask, targets[:, 0])
    span_loss(s, e, mask, targets, 0.05).backward()
    assert model.tok.weight.grad is not None and model.tok.weight.grad.abs().sum() > 0
    assert model.end_q.weight.grad.abs().sum() > 0  # the end pointer reads the start


def test_end_given_starts_is_a_row_of_end_given_every_start():
    model = tiny_model()
    x, mask = collate([VOCAB.encode(t) for t in TERMS])
    starts = torch.tensor([0, 1, 3, 7])
    s1, e1 = model(x, mask, starts)
    s2, e_all = model(x, mask)
    assert e_all.shape == (len(TERMS), x.shape[1], x.shape[1])
    torch.testing.assert_close(s1, s2)
    torch.testing.assert_close(e1, e_all[torch.arange(len(TERMS)), starts])


def test_paren_depth():
    model = tiny_model()
    x, _ = collate([VOCAB.encode("f ((λx.x) y)")])
    #        BOS f _ ( ( λ x . x ) _ y ) EOS
    want = [0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1, 0]
    assert model.paren_depth(x)[0].tolist() == want


def brute_force(ls, le, n):
    best, arg = ls[0] + le[0][0], (0, 0)
    for s in range(1, n + 1):
        for e in range(s + 1, n + 2):
            if ls[s] + le[s][e] > best:
                best, arg = ls[s] + le[s][e], (s, e)
    return arg, best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=4), st.integers(0, 2 ** 31))
def test_decode_is_the_best_valid_span(lengths_chars, seed):
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths_chars), max(lengths_chars) + 2 + 3
    start = torch.randn(B, T, generator=g) * 3
    end = torch.randn(B, T, T, generator=g) * 3
    lengths = torch.tensor([n + 2 for n in lengths_chars])
    mask = torch.arange(T)[None, :] < lengths[:, None]
    start, end = start.masked_fill(~mask, float("-inf")), end.masked_fill(~mask[:, None, :], float("-inf"))
    s, e, sc, ec = decode_spans(start, end, lengths)
    ls, le = start.log_softmax(-1), end.log_softmax(-1)
    for i, n in enumerate(lengths_chars):
        got = (int(s[i]), int(e[i]))
        assert got == (0, 0) or 1 <= got[0] < got[1] <= n + 1
        want, best = brute_force(ls[i].tolist(), le[i].tolist(), n)
        assert float(ls[i, got[0]] + le[i, got[0], got[1]]) == pytest.approx(best, abs=1e-5)
        assert float(sc[i]) == pytest.approx(float(ls[i, got[0]].exp()))
        assert float(ec[i]) == pytest.approx(float(le[i, got[0], got[1]].exp()))


def test_predictor_returns_character_spans_in_input_order():
    model = tiny_model()
    p = Predictor(model, VOCAB, batch_tokens=40)  # several batches, sorted by length inside
    terms = TERMS + ["a"]
    got = p.predict_many(terms)
    assert len(got) == len(terms)
    for t, (s, e, sc, ec) in zip(terms, got):
        assert (s, e) == (0, 0) or 0 <= s < e <= len(t)
    assert p.predict(TERMS[1]) == pytest.approx(got[1])


def length_model(position_scale=1.0, depth_rotary=0, depth=True, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=len(VOCAB), pad_id=VOCAB.pad_id, open_id=VOCAB.open_id,
                      close_id=VOCAB.close_id, n_layer=2, n_head=2, d_model=32, d_ff=64,
                      depth_embedding=depth, position_scale=position_scale, depth_rotary=depth_rotary)
    return SpanModel(cfg)


def test_the_rotary_frequencies_of_a_model_without_the_length_options_are_the_earlier_ones():
    """Checkpoints from before position_scale/depth_rotary load into the same network."""
    model = length_model()
    hd = 32 // 2
    assert torch.equal(model.inv_freq, 1.0 / 10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    assert model.depth_freq.numel() == 0


def test_position_scale_stretches_training_positions_only():
    ids, mask = collate([VOCAB.encode(t) for t in TERMS])
    plain, scaled = length_model(), length_model(position_scale=3.0)
    scaled.load_state_dict(plain.state_dict())
    plain.eval(), scaled.eval()
    with torch.no_grad():  # evaluation: positions as they are, the same network
        assert torch.allclose(plain(ids, mask)[0], scaled(ids, mask)[0])
        plain.train(), scaled.train()
        torch.manual_seed(1)
        a = plain(ids, mask)[0]
        torch.manual_seed(1)
        b = scaled(ids, mask)[0]
    finite = mask
    assert not torch.allclose(a[finite], b[finite])  # training: stretched


def test_depth_rotary_attention_sees_depth_differences_not_depths():
    """With the depth embedding off, a depth-rotary model sees depths only through attention, as
    differences: adding the same amount to every token's depth changes nothing, doubling them
    does (through the model's own forward, its depths shifted)."""
    model = length_model(depth_rotary=4, depth=False).eval()
    ids, mask = collate([VOCAB.encode(t) for t in TERMS])
    real = model.paren_depth

    def run(change):
        model.paren_depth = lambda x, clamp=True: change(real(x, clamp))
        try:
            with torch.no_grad():
                start, end = model(ids, mask)
        finally:
            model.paren_depth = real
        return start[mask], end[mask[:, :, None] & mask[:, None, :]]

    base = run(lambda d: d)
    for got, want in zip(run(lambda d: d + 7), base):
        assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(run(lambda d: d * 2)[0], base[0], atol=1e-4)


def test_the_depth_rotary_model_reads_depth_from_the_parentheses():
    model = length_model(depth_rotary=4, depth=False).eval()
    shallow = VOCAB.encode("f (g x) y")
    deep = VOCAB.encode("f (((g x))) y")
    for term in (shallow, deep):  # runs, gives finite scores over the real tokens
        ids, mask = collate([term])
        start, end = model(ids, mask)
        assert torch.isfinite(start[mask]).all() and end.shape == (1, len(term), len(term))
    ids, mask = collate([deep])
    assert model.paren_depth(ids, clamp=False).max() == 3


@pytest.mark.parametrize("field, value, fragment", [
    ("position_scale", 0.5, "position_scale: expected a number >= 1, got 0.5"),
    ("position_scale", float("nan"), "position_scale: expected a number >= 1, got nan"),
    ("depth_rotary", -1, "depth_rotary -1 must leave positions"),
    ("decode", "redexes", "decode: one of free, redex, got 'redexes'"),
    ("end_depth_bias", -1, "end_depth_bias: 0 (off) to 64, got -1"),
    ("end_depth_bias", 65, "end_depth_bias: 0 (off) to 64, got 65"),
    ("end_space_bias", -1, "end_space_bias: 0 (off) to 16, got -1"),
    ("end_space_bias", 17, "end_space_bias: 0 (off) to 16, got 17"),
])
def test_the_library_refuses_bad_length_options_too(field, value, fragment):
    """TrainConfig through the library, not the command line: a bad value is a ConfigError
    naming its field, not an option silently off."""
    import dataclasses

    from trainer.config import ConfigError, TrainConfig, check_config

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        check_config(dataclasses.replace(TrainConfig(), **{field: value}))


def test_the_end_depth_bias_sees_depth_differences_and_agrees_between_given_and_every_start():
    """The end pointer's bias by relative depth: the (B, T, T) scores of decoding, read at the
    gold starts, are the (B, T) scores of training; shifting every depth by the same amount
    changes nothing; a model without the option has no such table and scores as before."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(VOCAB), pad_id=VOCAB.pad_id, open_id=VOCAB.open_id,
                      close_id=VOCAB.close_id, n_layer=2, n_head=2, d_model=32, d_ff=64, end_depth_bias=3)
    model = SpanModel(cfg).eval()
    with torch.no_grad():  # a table far from zero, so that it shows
        model.end_depth.weight.copy_(torch.arange(7, dtype=torch.float32)[:, None] * 0.7 - 2.0)
    ids, mask = collate([VOCAB.encode(t) for t in TERMS])
    starts = torch.tensor([min(2, int(m.sum()) - 1) for m in mask])
    with torch.no_grad():
        _, every = model(ids, mask)
        _, given = model(ids, mask, starts=starts)
        rows = every[torch.arange(len(starts)), starts]
        assert torch.allclose(rows[mask], given[mask], atol=1e-5)
        scores = model.end_depth_scores(ids, None)
        depth = model.paren_depth(ids, clamp=False)
        b, s, e = 0, 1, int(mask[0].sum()) - 1
        rel = max(-3, min(3, int(depth[b, e] - depth[b, s])))
        assert scores[b, s, e].item() == pytest.approx(rel * 0.7 - 2.0 + 3 * 0.7)
        real = model.paren_depth
        model.paren_depth = lambda x, clamp=True: real(x, clamp) + 5
        try:
            shifted = model.end_depth_scores(ids, None)
        finally:
            model.paren_depth = real
        assert torch.equal(shifted, scores)
        zero = SpanModel(dataclasses.replace(cfg, end_depth_bias=0)).eval()
        assert zero.end_depth is None and "end_depth.weight" not in zero.state_dict()
        state = {k: v for k, v in model.state_dict().items() if k != "end_depth.weight"}
        zero.load_state_dict(state)
        model.end_depth.weight.zero_()
        assert torch.allclose(zero(ids, mask)[1][mask[:, :, None] & mask[:, None, :]],
                              model(ids, mask)[1][mask[:, :, None] & mask[:, None, :]], atol=1e-6)


def test_the_end_space_bias_counts_the_shallower_spaces_a_span_crosses():
    """With end_space_bias the end pointer's table is read by (relative depth, spaces shallower
    than the start between start and end): a redex's end, wherever it is, is one such space
    after its start and one level up; the (B, T, T) scores of decoding agree with the (B, T) of
    training; the count is the same for a redex as long as none in training."""
    from lambdascope.spans import char_to_token_span
    from lambdascope.terms import parse, redex_span

    torch.manual_seed(0)
    K, C = 2, 3
    cfg = ModelConfig(vocab_size=len(VOCAB), pad_id=VOCAB.pad_id, open_id=VOCAB.open_id,
                      close_id=VOCAB.close_id, space_id=VOCAB.space_id, n_layer=2, n_head=2, d_model=32,
                      d_ff=64, end_depth_bias=K, end_space_bias=C)
    model = SpanModel(cfg).eval()
    assert model.end_depth.weight.shape == ((2 * K + 1) * (C + 1), 1)
    with torch.no_grad():  # entry i scores i, so the score names (relative depth, count)
        model.end_depth.weight.copy_(torch.arange((2 * K + 1) * (C + 1), dtype=torch.float32)[:, None])
    long_arg = "(" + " ".join(["a"] * 60) + ")"
    terms = ["f ((λx.x) y) z", "(λx.x x) (λy.y) a b", "a (b ((λx.x x) c)) d", f"(λx.x) {long_arg} a"]
    ids, mask = collate([VOCAB.encode(t) for t in terms])
    spans = [char_to_token_span(*redex_span(parse(t))) for t in terms]
    starts = torch.tensor([s for s, _ in spans])
    with torch.no_grad():
        every = model.end_depth_scores(ids, None)
        given = model.end_depth_scores(ids, starts)[:, 0]
    assert torch.equal(every[torch.arange(len(terms)), starts], given)
    for b, (term, (s, e)) in enumerate(zip(terms, spans)):
        code = int(given[b, e])
        assert divmod(code, C + 1) == (K - 1, 1), term  # one level up, one space crossed
        text = "\x00" + term + "\x00"  # token positions: BOS, the characters, EOS
        depth = model.paren_depth(ids, clamp=False)[b]
        for t in range(s + 1, int(mask[b].sum())):  # by hand: the shallower spaces before t
            n = sum(1 for u in range(s + 1, t) if text[u] == " " and depth[u] < depth[s])
            rel = max(-K, min(K, int(depth[t] - depth[s])))
            assert int(given[b, t]) == (rel + K) * (C + 1) + min(n, C), (term, t)
    # without the option the table has 2K + 1 rows, as before (checkpoints saved before it load)
    plain = SpanModel(dataclasses.replace(cfg, end_space_bias=0))
    assert plain.end_depth.weight.shape == (2 * K + 1, 1)
    # a count with no space to count would be 0 everywhere: refused, not silently a depth-only table
    with pytest.raises(AssertionError, match="space_id"):
        SpanModel(dataclasses.replace(cfg, space_id=-1))
