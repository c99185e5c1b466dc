"""The speech models: the call contract, frame stacking, padding that changes nothing,
streaming that equals whole-utterance greedy decoding, and tiny models that overfit."""

import pytest
import torch
from budget import train_until
from speech_toys import digit_tone

from rnnkit.speech import ctc
from rnnkit.speech.features import FeatureConfig, Normaliser, compute
from rnnkit.speech.model import SpeechModel, stack_frames
from rnnkit.speech.predict import outputs
from rnnkit.speech.stream import Stream
from rnnkit.speech.text import Alphabet

pytest.importorskip("librosa")


def test_stack_frames_groups_k_frames_and_zero_pads_the_last_group():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2) + 1
    u, steps = stack_frames(x, torch.tensor([5, 3]), 2)
    assert u.shape == (2, 3, 4) and steps.tolist() == [3, 2]
    assert u[0, 2].tolist() == [9.0, 10.0, 0.0, 0.0]  # frame 4, then padding
    assert u[1, 1].tolist() == [15.0, 16.0, 0.0, 0.0]  # frame 2 of a 3-frame utterance
    assert (u[1, 2] == 0).all()


@pytest.mark.parametrize("task", ["classify", "ctc"])
def test_outputs_do_not_depend_on_batch_padding(task):
    model = SpeechModel(task, 6, 5, hidden=8, layers=2, subsample=3).eval()
    a, b = torch.randn(10, 6), torch.randn(4, 6)
    x = torch.zeros(2, 10, 6)
    x[0], x[1, :4] = a, b
    x[1, 4:] = 7.0  # garbage in the padding
    out, _ = model((x, torch.tensor([10, 4])))
    alone, _ = model((b.unsqueeze(0), torch.tensor([4])))
    if task == "classify":
        torch.testing.assert_close(out[1], alone[0])
    else:
        (lp, steps), (lp1, steps1) = out, alone
        assert steps.tolist() == [4, 2] and steps1.tolist() == [2]
        torch.testing.assert_close(lp[1, :2], lp1[0])


def test_model_rejects_bad_inputs_and_config():
    model = SpeechModel("ctc", 6, 5, hidden=8)
    with pytest.raises(ValueError, match=r"shape \(B, T, 6\)"):
        model((torch.zeros(1, 4, 5), torch.tensor([4])))
    with pytest.raises(ValueError, match="task must be one of"):
        SpeechModel("tagging", 6, 5)
    with pytest.raises(ValueError, match="subsample must be a positive int"):
        SpeechModel("ctc", 6, 5, subsample=0)
    with pytest.raises(ValueError, match="streams a CTC model"):
        SpeechModel("classify", 6, 5, bidirectional=False).step(torch.zeros(1, 12))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_streaming_chunk_by_chunk_equals_whole_utterance_greedy(cell):
    torch.manual_seed(1)
    features = FeatureConfig()
    wave = torch.cat([torch.from_numpy(digit_tone(d, seed=d)) for d in (1, 3, 2)]).numpy()
    frames = compute(wave, features)
    normaliser = Normaliser.fit([frames])
    alphabet = Alphabet(list("abcd"))
    model = SpeechModel("ctc", 40, 5, cell=cell, hidden=16, bidirectional=False, subsample=2)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)  # big weights: the best class changes often, the test has teeth
    (log_probs,) = outputs(model, [normaliser(frames)])
    whole = ctc.greedy(log_probs)
    assert len(whole) >= 3
    for chunk in (1, 77, 800, 4000):  # samples per chunk, none a multiple of the 80-sample hop
        stream = Stream(model, features, normaliser, alphabet)
        text = "".join(stream.feed(wave[i : i + chunk]) for i in range(0, len(wave), chunk))
        text += stream.finish()
        assert stream.labels == whole, chunk
        assert text == alphabet.decode(whole)


def test_streaming_refuses_a_bidirectional_model():
    model = SpeechModel("ctc", 40, 5, hidden=8, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional CTC model"):
        Stream(model, FeatureConfig(), Normaliser([0.0] * 40, [1.0] * 40), Alphabet(list("ab")))


def tone_clips(labels: list[list[int]]) -> list[torch.Tensor]:
    import numpy as np

    cfg = FeatureConfig()
    waves = [
        np.concatenate([digit_tone(d, seed=7 * i + d) for d in said])
        for i, said in enumerate(labels)
    ]
    frames = [compute(w, cfg) for w in waves]
    norm = Normaliser.fit(frames)
    return [norm(f) for f in frames]


def train_until_right(model, batch, right, budget: int, lr: float = 1e-2) -> int:
    """Adam on one batch until right(model) holds in eval mode (asked every 10 steps)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(_: int) -> None:
        _, loss = model.train()(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def done() -> bool:
        with torch.no_grad():
            return right(model.eval())

    return train_until(step, done, budget, every=10)


def test_a_tiny_classifier_overfits_a_few_clips():
    labels = [0, 1, 2, 3, 0, 1, 2, 3]
    frames = tone_clips([[k] for k in labels])
    x = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    lengths = torch.tensor([len(f) for f in frames])
    model = SpeechModel("classify", 40, 4, hidden=16, layers=1, dropout=0.0)
    batch = ((x, lengths), torch.tensor(labels))
    train_until_right(model, batch, lambda m: m((x, lengths))[0].argmax(1).tolist() == labels, 200)


def test_a_tiny_ctc_recogniser_overfits_a_few_strings():
    said = [[1, 2], [3, 1], [2, 3, 3], [1], [3, 2, 1]]
    frames = tone_clips([[d - 1 for d in s] for s in said])
    x = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    lengths = torch.tensor([len(f) for f in frames])
    labels = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in said], batch_first=True)
    targets = (labels, torch.tensor([len(s) for s in said]))
    model = SpeechModel("ctc", 40, 4, hidden=24, layers=1, dropout=0.0, subsample=2)

    def decodes_all(m) -> bool:
        return [ctc.greedy(lp) for lp in outputs(m, frames)] == said

    train_until_right(model, ((x, lengths), targets), decodes_all, budget=1000)
    assert [ctc.beam_search(lp, beam=4) for lp in outputs(model, frames)] == said


def test_streaming_refuses_per_utterance_mean_normalisation():
    model = SpeechModel("ctc", 40, 3, hidden=8, bidirectional=False)
    norm = Normaliser([0.0] * 40, [1.0] * 40)
    with pytest.raises(ValueError, match="without per-utterance mean normalisation"):
        Stream(model, FeatureConfig(mean_norm=True), norm, Alphabet(list("ab")))
