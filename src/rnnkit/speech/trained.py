"""A trained speech model read back from its checkpoint: transcribing audio files (a class for
a classifier, a label sequence for a CTC recogniser), evaluating on a manifest, streaming."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rnnkit.speech.data import featurise
from rnnkit.speech.features import FeatureConfig, Normaliser
from rnnkit.speech.manifest import read_manifest
from rnnkit.speech.model import SpeechModel
from rnnkit.speech.predict import decode, evaluate_classifier, evaluate_ctc, outputs
from rnnkit.speech.run import TASK
from rnnkit.speech.stream import Stream
from rnnkit.speech.text import Alphabet, class_ids
from rnnkit.train import rundir


@dataclass
class Recogniser:
    """A trained model with what it needs to hear: its features, normalisation and labels."""

    model: SpeechModel  # in eval mode
    features: FeatureConfig
    normaliser: Normaliser
    classes: list[str] | None  # classify
    alphabet: Alphabet | None  # ctc
    info: dict  # {"path", "step", "config", "metrics"}

    @property
    def task(self) -> str:
        return self.model.config.task

    def frames(self, paths: list[str | Path]) -> list[torch.Tensor]:
        """The normalised (T, F) features of each audio file."""
        if isinstance(paths, (str, Path)):
            raise TypeError("paths must be a list of audio files, not one path")
        return [self.normaliser(f) for f in featurise([Path(p) for p in paths], self.features)]

    def transcribe(self, paths: list[str | Path], beam: int = 1) -> list[dict]:
        """Per file {"path", "transcript"} (+ "probability" of the class for a classifier)."""
        results = []
        for path, out in zip(paths, outputs(self.model, self.frames(paths))):
            if self.classes is not None:
                k = int(out.argmax())
                results.append(
                    {"path": str(path), "transcript": self.classes[k], "probability": float(out[k])}
                )
            else:
                results.append({"path": str(path), "transcript": decode(out, self.alphabet, beam)})
        return results

    def evaluate(self, manifest: str | Path, beam: int = 1) -> dict:
        """Accuracy and the rest of `classify.metrics.report` (classifier), or CER and WER (CTC),
        on a manifest; a transcript outside the trained classes or alphabet is an error."""
        entries = read_manifest(manifest)
        texts = [e.transcript for e in entries]
        if self.classes is not None:
            ids = class_ids(texts, self.classes, str(manifest))
            return evaluate_classifier(
                self.model, self.frames([e.path for e in entries]), ids, self.classes
            )
        for e in entries:
            self.alphabet.encode(e.transcript, f"{manifest}: {e.path.name}")
        frames = self.frames([e.path for e in entries])
        result = evaluate_ctc(self.model, frames, texts, self.alphabet, beam)
        result["references"] = [" ".join(t.split()) for t in texts]
        result["paths"] = [str(e.path) for e in entries]
        return result

    def stream(self) -> Stream:
        """A streaming transcriber (unidirectional CTC models only)."""
        return Stream(self.model, self.features, self.normaliser, self.alphabet)


def load(path: str | Path, device: str | torch.device = "cpu") -> Recogniser:
    """The speech model in a checkpoint or a run directory (its best/, else its last/)."""
    ckpt = rundir.load_task(path, TASK)
    with rundir.usable(ckpt, TASK):
        vocab = ckpt.vocab
        features = FeatureConfig.from_dict(vocab["features"])
        normaliser = Normaliser.from_dict(vocab["normaliser"])
        classes = list(vocab["classes"]) if "classes" in vocab else None
        alphabet = Alphabet.from_dict(vocab["alphabet"]) if "alphabet" in vocab else None
        model = rundir.build_model(ckpt, SpeechModel)
    model.to(device).eval()
    info = rundir.info(ckpt)
    return Recogniser(model, features, normaliser, classes, alphabet, info)
