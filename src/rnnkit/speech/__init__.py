"""Speech recognition as a task: WAV files to log-mel/MFCC frames, an isolated-word classifier
or a CTC recogniser trained on a manifest of (path, transcript), greedy and beam decoding,
streaming, and the Free Spoken Digit Dataset's manifests. Behind `rnnkit speech`.

Needs the `speech` extra (soundfile, librosa, soxr): `pip install rnnkit[speech]`.
"""

from rnnkit.speech.features import FeatureConfig, Normaliser
from rnnkit.speech.run import TASK, Run, SpeechData, load_data, plan, train
from rnnkit.speech.text import Alphabet
from rnnkit.speech.trained import Recogniser, load

__all__ = [
    "TASK",
    "Alphabet",
    "FeatureConfig",
    "Normaliser",
    "Recogniser",
    "Run",
    "SpeechData",
    "load",
    "load_data",
    "plan",
    "train",
]
