"""Audio reading and features: a tone's log-mel peak band, librosa as the slow twin, the
normalisation, SpecAugment masking, and the bad audio files."""

import logging

import numpy as np
import pytest
import torch

pytest.importorskip("soundfile")
pytest.importorskip("librosa")

import soundfile  # noqa: E402
from speech_toys import RATE, tone  # noqa: E402

from rnnkit.speech.audio import read_wav, resample  # noqa: E402
from rnnkit.speech.augment import Masking  # noqa: E402
from rnnkit.speech.features import FeatureConfig, Normaliser, compute  # noqa: E402


def test_tone_features_have_the_expected_shape_and_peak_band():
    import librosa

    cfg = FeatureConfig()  # 8 kHz, 25 ms Hann in a 256-point FFT, 10 ms hop, 40 mel bands
    wave = tone(1000.0, seconds=0.5)
    x = compute(wave, cfg)
    assert x.shape == (1 + (len(wave) - 256) // 80, 40) == (cfg.frames(len(wave)), cfg.size)
    centres = librosa.mel_frequencies(n_mels=40 + 2, fmin=cfg.fmin, fmax=RATE / 2)[1:-1]
    peak = int(x.mean(0).argmax())
    assert abs(centres[peak] - 1000.0) < 100.0, centres[peak]


def test_logmel_and_mfcc_match_librosa():
    import librosa

    wave = tone(700.0, seconds=0.4, seed=3) + tone(2100.0, seconds=0.4, seed=4)
    cfg = FeatureConfig()
    mel = librosa.feature.melspectrogram(
        y=wave, sr=RATE, n_fft=256, hop_length=80, win_length=200, center=False,
        n_mels=40, fmin=cfg.fmin, power=2.0,
    )  # fmt: skip
    reference = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T  # (T, M)
    torch.testing.assert_close(compute(wave, cfg), torch.from_numpy(reference), atol=2e-3, rtol=0)
    mfcc = compute(wave, FeatureConfig(kind="mfcc", n_mfcc=13))
    expected = librosa.feature.mfcc(S=reference.T, n_mfcc=13).T
    torch.testing.assert_close(mfcc, torch.from_numpy(expected), atol=2e-3, rtol=1e-4)


def test_a_clip_shorter_than_one_frame_gives_one_frame():
    assert compute(np.zeros(100, np.float32), FeatureConfig()).shape == (1, 40)


def test_feature_config_rejects_bad_values():
    with pytest.raises(ValueError, match="feature kind"):
        FeatureConfig(kind="spectrogram")
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureConfig(kind="mfcc", n_mfcc=50)


def test_normaliser_standardises_each_feature_and_round_trips():
    frames = [torch.randn(30, 4) * 3 + 5, torch.randn(20, 4) * 2 - 1]
    norm = Normaliser.fit(frames)
    z = norm(torch.cat(frames))
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(4), atol=1e-5, rtol=0)
    again = Normaliser.from_dict(norm.to_dict())
    torch.testing.assert_close(again(frames[0]), norm(frames[0]))
    with pytest.raises(ValueError, match="expected 4 features"):
        norm(torch.zeros(3, 5))


def test_masking_zeroes_bands_and_spans_and_is_off_by_default():
    x = torch.ones(100, 40)
    assert not Masking().active
    g = torch.Generator().manual_seed(0)
    masked = Masking(freq_masks=2, freq_width=8, time_masks=2, time_width=10)(x, g)
    zero_cols, zero_rows = (masked == 0).all(0), (masked == 0).all(1)
    assert 0 < zero_cols.sum() <= 16 and 0 < zero_rows.sum() <= 20
    assert (x == 1).all()  # the input is not touched
    with pytest.raises(ValueError, match="freq_masks"):
        Masking(freq_masks=-1)


def test_read_wav_resamples_to_the_feature_rate(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(str(path), tone(440.0, seconds=0.5, rate=16000), 16000)
    wave = read_wav(path, 8000)
    assert wave.dtype == np.float32 and abs(len(wave) - 4000) <= 1
    assert resample(wave, 8000, 8000) is not None and len(resample(wave, 8000, 8000)) == len(wave)


def test_stereo_is_mixed_down_with_a_warning(tmp_path, caplog):
    path = tmp_path / "stereo.wav"
    left, right = tone(440.0), tone(880.0)
    soundfile.write(str(path), np.stack([left, right], 1), RATE)
    with caplog.at_level(logging.WARNING, logger="rnnkit"):
        wave = read_wav(path, RATE)
    assert "2 channels: mixed down to mono" in caplog.text
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-4)


def test_missing_unreadable_and_non_wav_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"audio file .*nope\.wav does not exist"):
        read_wav(tmp_path / "nope.wav", RATE)
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio at all")
    with pytest.raises(ValueError, match=r"junk\.wav is not a readable WAV file"):
        read_wav(junk, RATE)
    flac = tmp_path / "clip.flac"
    soundfile.write(str(flac), tone(440.0), RATE, format="FLAC")
    with pytest.raises(ValueError, match=r"clip\.flac is FLAC audio, expected a WAV file"):
        read_wav(flac, RATE)
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, np.float32), RATE)
    with pytest.raises(ValueError, match="holds no samples"):
        read_wav(empty, RATE)


def test_mean_norm_removes_each_utterances_mean():
    wave = tone(900.0, seconds=0.4)
    x = compute(wave, FeatureConfig(mean_norm=True))
    torch.testing.assert_close(x.mean(0), torch.zeros(40), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        x, compute(wave, FeatureConfig()) - compute(wave, FeatureConfig()).mean(0)
    )
