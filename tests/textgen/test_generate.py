"""Tests for rnnkit.textgen.generate: stepping equals the full forward, sampling options, seeds."""

import types

import pytest
import torch
from test_lm import CELLS, train_tiny

from rnnkit.textgen.data import CharVocab
from rnnkit.textgen.generate import generate, pick
from rnnkit.textgen.model import CharLM

VOCAB = CharVocab.from_text("abcdefghijklmnopqrstuvwxyz .\n")


def random_model(cell="lstm", **kw):
    kw = {"hidden": 32, "layers": 2, "dropout": 0.0, **kw}
    return CharLM(len(VOCAB), cell=cell, **kw).eval()


@pytest.mark.parametrize("cell", CELLS)
def test_step_equals_full_forward(cell):
    model = random_model(cell)
    x = torch.randint(0, len(VOCAB), (3, 20))
    with torch.no_grad():
        whole, final = model.run(x)
        state, steps = None, []
        for t in range(x.shape[1]):
            logits, state = model.step(x[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), whole, atol=1e-5, rtol=1e-5)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_greedy_reproduces_the_learned_pattern():
    text = "hello world. " * 60
    model, vocab, _ = train_tiny(text)
    out = "".join(generate(model, vocab, "hello w", 40, greedy=True))
    assert out == text[7:47]


def test_yields_characters_one_at_a_time():
    model = random_model()
    stream = generate(model, VOCAB, "hi", 25, seed=0)
    assert isinstance(stream, types.GeneratorType)
    first = next(stream)
    assert torch.is_grad_enabled()  # no_grad does not leak out of the suspended generator
    rest = list(stream)
    assert len(first) == 1 and len(rest) == 24
    assert all(c in VOCAB.chars for c in [first, *rest])


def test_seeds_repeat():
    model = random_model()
    a = "".join(generate(model, VOCAB, "the ", 60, seed=3))
    b = "".join(generate(model, VOCAB, "the ", 60, seed=3))
    c = "".join(generate(model, VOCAB, "the ", 60, seed=4))
    assert a == b and a != c


def test_greedy_forms_agree():
    model = random_model()
    greedy = "".join(generate(model, VOCAB, "abc", 40, greedy=True))
    for options in [
        {"temperature": 0.0},
        {"top_k": 1, "seed": 1},
        {"top_p": 1e-6, "seed": 2},
        {"greedy": True, "temperature": 5.0, "top_k": 10},
    ]:
        assert "".join(generate(model, VOCAB, "abc", 40, **options)) == greedy, options


def test_pick_top_k_and_top_p_support():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])  # order: 1, 3, 2, 0
    logits = probs.log()
    g = torch.Generator().manual_seed(0)

    def support(**options):
        return {pick(logits, generator=g, **options).item() for _ in range(400)}

    assert support() == {0, 1, 2, 3}
    assert support(top_k=2) == {1, 3}
    assert support(top_p=0.79) == {1, 3}  # 0.5 + 0.3 reaches 0.79
    assert support(top_p=0.81) == {1, 2, 3}
    assert support(top_k=3, top_p=0.99) == {1, 2, 3}
    assert support(temperature=0.0) == {1}


def test_pick_temperature_sharpens_and_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    g = torch.Generator().manual_seed(0)

    def share_of_top(temperature):
        draws = [pick(logits, temperature, generator=g).item() for _ in range(2000)]
        return draws.count(0) / len(draws)

    assert share_of_top(0.25) > share_of_top(1.0) + 0.2 > share_of_top(10.0) + 0.4


def test_unk_is_never_sampled_and_unknown_prime_chars_are_accepted():
    model = random_model()
    with torch.no_grad():
        model.head.bias[VOCAB.unk_id] = 100.0  # the model now prefers <unk> overwhelmingly
    out = "".join(generate(model, VOCAB, "ABC?!", 30, seed=0))  # none of these in VOCAB
    assert len(out) == 30 and "\ufffd" not in out
    assert len("".join(generate(model, VOCAB, "", 5, greedy=True))) == 5  # empty prime


def test_model_mode_and_carried_state_untouched():
    model = random_model().train()
    model(torch.randint(0, len(VOCAB), (2, 4)))
    saved = model.state
    "".join(generate(model, VOCAB, "ab", 10, seed=0))
    assert model.training and model.state is saved


@pytest.mark.parametrize(
    "options, match",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"length": -1}, "length"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):  # at the call, before any character
        generate(random_model(), VOCAB, "a", **options)


def test_vocabulary_must_fit_the_model():
    with pytest.raises(ValueError, match="vocabulary"):
        generate(random_model(), CharVocab.from_text("xyz"), "x", 3)
