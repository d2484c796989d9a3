"""What the model thought: the explicit attention path of trainer.model, the beliefs, attention and
head scores of trainer.predict.Predictor (lambdascope.predictor.BeliefPredictor), and the
structural pairs of lambdascope.structure they are scored on."""

import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdascope.diagnosis import error_kind
from lambdascope.predictor import has_beliefs
from lambdascope.structure import binder_pairs, paren_pairs
from lambdascope.terms import Lam, Var, parse, print_term, redex_spans, subterms
from trainer.data import Vocab, collate
from trainer.model import ModelConfig, SpanModel
from trainer.predict import Predictor, allowed_spans, redex_token_spans

from tests.strategies import terms as random_terms
from tests.trainer_helpers import TINY, write_generated

torch.set_num_threads(1)
VOCAB = Vocab()
TERMS = ["λx.x", "(λx.x x) (λy.y)", "f ((λx.x) y)", "λz.z ((λx.x) z)", "(λx.λy.x y) (λz.z) w"]


def model_of(seed=0, n_layer=2, n_head=2, scale=1.0):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=len(VOCAB), pad_id=VOCAB.pad_id, open_id=VOCAB.open_id,
                      close_id=VOCAB.close_id, n_layer=n_layer, n_head=n_head, d_model=32, d_ff=64)
    model = SpanModel(cfg).eval()
    with torch.no_grad():  # sharper pointers than a fresh model's near-uniform ones
        model.head.weight.mul_(scale)
        model.end_q.weight.mul_(scale)
    return model


# ---------------------------------------------------------------------------------------------
# the model: attention weights only when asked


@pytest.mark.parametrize("with_starts", [False, True])
def test_explicit_attention_gives_the_same_logits(with_starts):
    model = model_of(scale=20.0)
    x, mask = collate([VOCAB.encode(t) for t in TERMS], VOCAB.pad_id)  # padded: a mask
    starts = torch.tensor([0, 1, 3, 7, 2]) if with_starts else None
    with torch.no_grad():
        fast = model(x, mask, starts)
        s, e, att = model(x, mask, starts, return_attention=True)
    torch.testing.assert_close(s, fast[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(e, fast[1], rtol=1e-5, atol=1e-5)
    L, B, H, T = model.cfg.n_layer, len(TERMS), model.cfg.n_head, x.shape[1]
    assert att.shape == (L, B, H, T, T)
    torch.testing.assert_close(att.sum(-1), torch.ones(L, B, H, T))  # each query's row
    assert (att >= 0).all()
    pad_keys = ~mask[None, :, None, None, :].expand_as(att)
    assert (att[pad_keys] == 0).all()  # padding is never attended to
    # without padding there is no mask: the same again
    x1, m1 = collate([VOCAB.encode(TERMS[1])])
    with torch.no_grad():
        torch.testing.assert_close(model(x1, m1, return_attention=True)[0], model(x1, m1)[0])


def test_training_keeps_the_fused_attention(tmp_path, monkeypatch):
    from trainer import model as model_module
    from trainer.config import TrainConfig
    from trainer.train import train

    asked, fused = [], [0]
    forward, sdpa = model_module.SelfAttention.forward, model_module.F.scaled_dot_product_attention

    def watched_forward(self, x, cos, sin, attn_mask, return_attention=False):
        asked.append(return_attention)
        return forward(self, x, cos, sin, attn_mask, return_attention)

    def counted_sdpa(*args, **kw):
        fused[0] += 1
        return sdpa(*args, **kw)

    monkeypatch.setattr(model_module.SelfAttention, "forward", watched_forward)
    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention", counted_sdpa)
    data = tmp_path / "traces.jsonl"
    write_generated(data, 40, seed=5)
    cfg = TrainConfig(**dict(TINY, data=[str(data)], db=str(tmp_path / "store.db"), run_name="fast",
                             out_dir=str(tmp_path / "fast"), steps=3, eval_every="3",
                             peak_file=str(tmp_path / "none.json")))
    train(cfg)  # training steps, validation and an evaluation
    assert asked and not any(asked)
    assert fused[0] == len(asked)


# ---------------------------------------------------------------------------------------------
# beliefs


def brute_force(model, term, gold=None):
    """The decoder distribution of ``term`` from the raw logits, by the documented offsets
    (docs/DESIGN.md, "Tokens": character i is token i + 1, EOS at n + 1), pair by pair."""
    x, mask = collate([VOCAB.encode(term)])
    with torch.no_grad():
        s, e = model(x, mask)
    ls, le = s[0].log_softmax(-1).tolist(), e[0].log_softmax(-1).tolist()
    n = len(term)
    joint = {(0, 0): math.exp(ls[0] + le[0][0])}
    for a in range(1, n + 1):
        for b in range(a + 1, n + 2):
            joint[(a, b)] = math.exp(ls[a] + le[a][b])
    z = sum(joint.values())
    char = {((a - 1, b - 1) if (a, b) != (0, 0) else (0, 0)): p / z for (a, b), p in joint.items()}
    return char, z


def check_beliefs(model, term, gold=None):
    p = Predictor(model, VOCAB)
    b = p.beliefs(term, gold)
    n = len(term)
    joint, z = brute_force(model, term)
    assert b["n"] == n and len(b["start_probs"]) == n
    assert b["nf_prob"] + sum(b["start_probs"]) == pytest.approx(1.0, abs=1e-5)
    assert b["nf_prob"] == pytest.approx(joint[(0, 0)], rel=1e-4, abs=1e-7)
    for c in range(n):  # character c's cell holds P(start = c)
        want = sum(pr for (s, e), pr in joint.items() if (s, e) != (0, 0) and s == c)
        assert b["start_probs"][c] == pytest.approx(want, rel=1e-4, abs=1e-7)
    assert b["allowed_mass"] == pytest.approx(z, rel=1e-4)
    # the first top span is the decoder's (the stored prediction), the others follow by probability
    s, e, sc, ec = p.predict(term)
    top = b["top_spans"]
    assert top[0]["span"] == [s, e]
    assert top[0]["prob"] * b["allowed_mass"] == pytest.approx(sc * ec, rel=1e-4)
    best = sorted(joint.items(), key=lambda kv: -kv[1])
    assert len(top) == min(5, len(joint))
    assert top[0]["prob"] == pytest.approx(best[0][1], rel=1e-4)
    probs = [t["prob"] for t in top]
    assert probs[1:] == sorted(probs[1:], reverse=True)
    assert probs[1:] == pytest.approx([pr for span, pr in best if list(span) != top[0]["span"]][:len(top) - 1], rel=1e-4)
    for t in top:
        span = tuple(t["span"])
        assert span == (0, 0) or 0 <= span[0] < span[1] <= n
        assert t["prob"] == pytest.approx(joint[span], rel=1e-4)
        assert t["kind"] == error_kind(term, span)
    # the end distributions: over exclusive ends 0 .. n, only after the start
    assert b["start"] == (None if (s, e) == (0, 0) else s)
    for start, ends in ((b["start"], b["end_probs"]), (b["gold_start"], b["gold_end_probs"])):
        if start is None:
            continue
        assert len(ends) == n + 1 and sum(ends) == pytest.approx(1.0, abs=1e-5)
        assert all(v == 0.0 for v in ends[:start + 1])
        row = sum(pr for (a, _), pr in joint.items() if a == start and (a, _) != (0, 0))
        for end in range(start + 1, n + 1):
            assert ends[end] == pytest.approx(joint[(start, end)] / row, rel=1e-4, abs=1e-7)
    want_redex = sum(joint[span] for span in redex_spans(parse(term)))
    assert b["redex_mass"] == pytest.approx(want_redex, rel=1e-4, abs=1e-7)
    return b


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_beliefs_are_the_decoder_distribution(scale):
    model = model_of(seed=3, scale=scale)
    for term in TERMS:
        gold = redex_spans(parse(term))[0] if redex_spans(parse(term)) else (0, 0)
        b = check_beliefs(model, term, gold)
        if gold == (0, 0):
            assert b["gold_start"] is None and b["gold_end_probs"] is None
        else:
            assert b["gold_start"] == gold[0] and len(b["gold_end_probs"]) == len(term) + 1


@settings(max_examples=25, deadline=None)
@given(random_terms, st.integers(0, 3))
def test_beliefs_of_random_terms(t, seed):
    text = print_term(t)
    check_beliefs(model_of(seed=seed, scale=10.0), text, None)


def test_non_ascii_offsets_count_code_points():
    # λ is two bytes in UTF-8 and é is outside the vocabulary (an <unk> token): offsets still
    # count code points, one cell a character, and BOS is none of them
    model = model_of(seed=1, scale=30.0)
    p = Predictor(model, VOCAB)
    term = "(λx.x) (λé.é)"
    b = p.beliefs(term, (0, 0))
    joint, _ = brute_force(model, term)
    assert len(b["start_probs"]) == len(term) == 13
    for c in range(13):
        want = sum(pr for (s, e), pr in joint.items() if (s, e) != (0, 0) and s == c)
        assert b["start_probs"][c] == pytest.approx(want, rel=1e-4, abs=1e-7)
    assert b["redex_mass"] is None  # not a term: no redexes, no kinds
    assert all(t["kind"] is None for t in b["top_spans"])
    assert all(tuple(t["span"]) == (0, 0) or 0 <= t["span"][0] < t["span"][1] <= 13 for t in b["top_spans"])
    check_beliefs(model, "λx.(λy.y) x")
    check_beliefs(model, "(λx.x x) (λy.y)", (0, 15))


def test_beliefs_many_batches_keep_the_order_and_stop_at_the_deadline():
    model = model_of(seed=2, scale=5.0)
    p = Predictor(model, VOCAB, batch_tokens=40)  # several batches
    many = p.beliefs_many(TERMS, [None] * len(TERMS))
    for term, b in zip(TERMS, many):
        one = p.beliefs(term)
        # (batched with other lengths, the sums run in another order: equal to float precision)
        assert [(t["span"], t["kind"]) for t in b["top_spans"]] == [(t["span"], t["kind"]) for t in one["top_spans"]]
        assert [t["prob"] for t in b["top_spans"]] == pytest.approx([t["prob"] for t in one["top_spans"]], rel=1e-4)
        assert b["start_probs"] == pytest.approx(one["start_probs"], abs=1e-6)
    assert p.beliefs_many(TERMS, deadline=time.monotonic() - 1) == [None] * len(TERMS)
    assert has_beliefs(p)
    with pytest.raises(ValueError):
        p.beliefs_many(["x", ""])


def test_allowed_spans_are_what_the_decoder_allows():
    lengths = torch.tensor([3, 5, 4])  # 1, 3 and 2 characters
    valid = allowed_spans(lengths, 6)
    for b, length in enumerate(lengths.tolist()):
        n = length - 2
        want = {(0, 0)} | {(s, e) for s in range(1, n + 1) for e in range(s + 1, n + 2)}
        assert {(s, e) for s in range(6) for e in range(6) if valid[b, s, e]} == want


# ---------------------------------------------------------------------------------------------
# the redex decoder (docs/DESIGN.md, "Decoding")


def check_redex_decoding(model, term):
    """``decode="redex"``: the prediction is the likeliest of normal form and the term's redexes
    under the network's own scores, and the beliefs are that decoder's distribution."""
    joint, z = brute_force(model, term)  # the free decoder's distribution, its total z
    cands = [(0, 0)] + redex_spans(parse(term))
    p = Predictor(model, VOCAB, decode="redex")
    s, e, sc, ec = p.predict(term)
    assert (s, e) in cands
    assert joint[(s, e)] == pytest.approx(max(joint[c] for c in cands), rel=1e-4)
    b = p.beliefs(term)
    mass = sum(joint[c] for c in cands)
    assert b["allowed_mass"] == pytest.approx(z * mass, rel=1e-4)
    assert b["nf_prob"] == pytest.approx(joint[(0, 0)] / mass, rel=1e-4, abs=1e-7)
    assert b["nf_prob"] + sum(b["start_probs"]) == pytest.approx(1.0, abs=1e-5)
    assert [tuple(t["span"]) for t in b["top_spans"]][0] == (s, e)
    assert all(tuple(t["span"]) in cands for t in b["top_spans"])
    assert len(b["top_spans"]) == min(5, len(cands))
    return (s, e), p.predict_many([term, term + " x"])[0][:2]


@settings(max_examples=40, deadline=None)
@given(random_terms, st.integers(0, 3))
def test_redex_decoding_of_random_terms(t, seed):
    text = print_term(t)
    got, batched = check_redex_decoding(model_of(seed=seed, scale=10.0), text)
    assert batched == got  # in a batch beside another term, the same choice
    if not redex_spans(t):
        assert got == (0, 0)  # a normal form has nothing else to choose


def test_the_redex_decoder_chooses_what_the_free_one_does_not():
    model = model_of(seed=3, scale=30.0)
    free = Predictor(model, VOCAB)
    outside = 0
    for term in TERMS:
        got, _ = check_redex_decoding(model, term)
        s, e, _, _ = free.predict(term)
        outside += (s, e) != (0, 0) and (s, e) not in redex_spans(parse(term))
    assert outside > 0  # the free decoder points elsewhere on some term: the two differ here


def test_redex_token_spans_of_canonical_texts_only():
    assert redex_token_spans("(λx.x) y") == [(1, 9)]  # characters [0, 8) are tokens [1, 9)
    assert redex_token_spans("λx.x") == []
    assert redex_token_spans("((λx.x) y)") is None  # not the canonical printing: its spans would differ
    assert redex_token_spans("(λx.x") is None
    with pytest.raises(ValueError, match="decode: one of free, redex"):
        Predictor(model_of(), VOCAB, decode="redexes")


def test_allowed_spans_of_the_redex_decoder():
    lengths = torch.tensor([10, 10, 6])
    valid = allowed_spans(lengths, 10, [[(1, 9)], None, []])
    allowed = [{(s, e) for s in range(10) for e in range(10) if valid[b, s, e]} for b in range(3)]
    assert allowed[0] == {(0, 0), (1, 9)}
    assert allowed[1] == {(0, 0)} | {(s, e) for s in range(1, 9) for e in range(s + 1, 10)}  # None: free
    assert allowed[2] == {(0, 0)}


# ---------------------------------------------------------------------------------------------
# attention and head scores


def test_attention_of_a_character_per_layer_and_head():
    model = model_of(seed=4, n_layer=3, n_head=2)
    p = Predictor(model, VOCAB)
    term = TERMS[4]
    x, mask = collate([VOCAB.encode(term)])
    with torch.no_grad():
        _, _, att = model(x, mask, return_attention=True)
    for char in (0, 6, len(term) - 1):
        a = p.attention(term, char)
        assert a["char"] == char and len(a["layers"]) == 3 and all(len(h) == 2 for h in a["layers"])
        for layer in range(3):
            for head in range(2):
                row = a["layers"][layer][head]
                assert len(row) == len(term)
                assert sum(row) + a["bos"][layer][head] + a["eos"][layer][head] == pytest.approx(1, abs=1e-5)
                want = att[layer, 0, head, char + 1].tolist()  # token char + 1, after BOS
                assert row == pytest.approx(want[1:-1], abs=1e-6)
    for bad in (-1, len(term)):
        with pytest.raises(ValueError, match="char"):
            p.attention(term, bad)


def test_head_scores_against_the_attention_itself():
    model = model_of(seed=5, n_layer=2, n_head=2)
    p = Predictor(model, VOCAB, batch_tokens=30)
    scores = p.head_scores(TERMS)
    assert scores["terms"] == len(TERMS) and scores["complete"]
    want = {k: [[[] for _ in range(2)] for _ in range(2)] for k in ("binding", "paren")}
    uniform = {"binding": [], "paren": []}
    for term in TERMS:
        x, mask = collate([VOCAB.encode(term)])
        with torch.no_grad():
            _, _, att = model(x, mask, return_attention=True)
        pairs = {"binding": binder_pairs(term),
                 "paren": paren_pairs(term) + [(b, a) for a, b in paren_pairs(term)]}
        for kind, ps in pairs.items():
            for q, k in ps:
                uniform[kind].append(1 / (len(term) + 2))
                for layer in range(2):
                    for head in range(2):
                        want[kind][layer][head].append(float(att[layer, 0, head, q + 1, k + 1]))
    assert scores["pairs"] == {k: len(v) for k, v in uniform.items()}
    assert scores["uniform"]["binding"] == pytest.approx(sum(uniform["binding"]) / len(uniform["binding"]))
    for h in scores["heads"]:
        for kind in ("binding", "paren"):
            vals = want[kind][h["layer"]][h["head"]]
            assert h[kind] == pytest.approx(sum(vals) / len(vals), rel=1e-5)
    late = p.head_scores(TERMS, deadline=time.monotonic() - 1)
    assert late["terms"] == 0 and not late["complete"] and late["heads"][0]["binding"] is None


# ---------------------------------------------------------------------------------------------
# the structural pairs


@settings(max_examples=200, deadline=None)
@given(random_terms)
def test_binder_pairs_point_at_the_binding_lambda(t):
    text = print_term(t)
    pairs = binder_pairs(text)
    nodes = subterms(t)
    occurrences = [span for span, _, node in nodes if isinstance(node, Var)]
    # brute force: walk down to each variable with the λs that enclose it
    pos_of = {path: span[0] for span, path, _ in nodes}
    want = []

    def walk(node, path, env):
        if isinstance(node, Var):
            if node.name in env:
                want.append((pos_of[path], env[node.name]))
        elif isinstance(node, Lam):
            walk(node.body, path + (0,), {**env, node.var: pos_of[path]})
        else:
            walk(node.fn, path + (0,), env)
            walk(node.arg, path + (1,), env)

    walk(t, (), {})
    assert sorted(pairs) == sorted(want)
    for v, lam in pairs:
        assert text[lam] == "λ" and lam < v and any(s == v for s, _ in occurrences)
        name = text[v:].split(" ")[0].split(")")[0].split(".")[0]
        assert text[lam + 1:].startswith(name + ".")


@settings(max_examples=200, deadline=None)
@given(random_terms)
def test_paren_pairs_match(t):
    text = print_term(t)
    pairs = paren_pairs(text)
    assert len(pairs) == text.count("(") == text.count(")")
    for a, b in pairs:
        assert text[a] == "(" and text[b] == ")" and a < b
        inner = text[a + 1:b]
        depth = 0
        for c in inner:  # balanced inside
            depth += (c == "(") - (c == ")")
            assert depth >= 0
        assert depth == 0
