"""Streaming transcription with a unidirectional CTC model: audio fed chunk by chunk, each
complete frame featurised, normalised, stacked k at a time and stepped through the recurrent
layers (`rnnkit.layers` `.step()`), the best class of each step collapsed on the fly.

The frames, their normalisation and the zero padding of the last group of k are those of the
whole-utterance path (features.compute, models.speech.stack_frames), so the streamed labels
equal the greedy decoding of the whole utterance (tests/speech/test_speech_models.py).

    S: samples, N: FFT size, k: frames per step, F: features
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.speech import ctc
from rnnkit.speech.features import FeatureConfig, Normaliser, compute
from rnnkit.speech.text import Alphabet


class Stream:
    """`feed(samples)` returns the text newly recognised; `finish()` flushes the rest."""

    def __init__(self, model, features: FeatureConfig, normaliser: Normaliser, alphabet: Alphabet):
        c = model.config
        if c.task != "ctc" or c.bidirectional:
            raise ValueError(
                "streaming needs a unidirectional CTC model (trained with --task ctc and "
                "without --bidirectional)"
            )
        if features.mean_norm:
            raise ValueError(
                "streaming needs features without per-utterance mean normalisation "
                "(this model was trained with --mean-norm)"
            )
        self.model, self.features, self.normaliser = model.eval(), features, normaliser
        self.alphabet, self.device = alphabet, next(model.parameters()).device
        self.samples = np.zeros(0, dtype=np.float32)  # not yet framed
        self.group: list[torch.Tensor] = []  # normalised frames waiting for a full step
        self.state, self.previous, self.frames = None, None, 0
        self.labels: list[int] = []  # every label so far

    def feed(self, samples: np.ndarray) -> str:
        """Append (S,) samples at features.sample_rate; the text of the labels they complete."""
        self.samples = np.concatenate([self.samples, np.asarray(samples, dtype=np.float32)])
        N, hop = self.features.n_fft, self.features.hop
        if len(self.samples) < N:
            return ""
        n = 1 + (len(self.samples) - N) // hop  # complete frames buffered
        frames = compute(self.samples[: (n - 1) * hop + N], self.features)  # (n, F)
        self.samples = self.samples[n * hop :]
        return self._push(self.normaliser(frames))

    def finish(self) -> str:
        """Flush: a clip shorter than one frame becomes one zero-padded frame (as in compute),
        and a partial last group is zero-padded to k frames."""
        text = ""
        if self.frames == 0 and len(self.samples):
            text += self._push(self.normaliser(compute(self.samples, self.features)))
        self.samples = np.zeros(0, dtype=np.float32)
        if self.group:
            k = self.model.config.subsample
            pad = [torch.zeros_like(self.group[0])] * (k - len(self.group))
            text += self._step(self.group + pad)
            self.group = []
        return text

    def _push(self, frames: torch.Tensor) -> str:
        new = ""
        k = self.model.config.subsample
        for frame in frames:  # (F,)
            self.frames += 1
            self.group.append(frame)
            if len(self.group) == k:
                new += self._step(self.group)
                self.group = []
        return new

    def _step(self, group: list[torch.Tensor]) -> str:
        u = torch.cat(group).unsqueeze(0).to(self.device)  # (1, k F)
        log_probs, self.state = self.model.step(u, self.state)  # (1, C)
        best = int(log_probs.argmax(-1))
        ids = ctc.collapse([best], previous=self.previous)
        self.previous = best
        self.labels += ids
        text = self.alphabet.decode(ids)
        if ids and self.alphabet.units == "word" and len(self.labels) > len(ids):
            text = " " + text
        return text

    @property
    def text(self) -> str:
        return self.alphabet.decode(self.labels)
