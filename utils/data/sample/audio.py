"""Speech-like audio that follows the mouth, and the audio-only manipulations of DFDC.

A real video's voice is a harmonic source (the identity's pitch with a little vibrato and intonation)
whose loudness and first formant follow the mouth opening of the rendered face, so an audio-visual model
has a true synchrony cue. The fakes shift the audio in time or swap in another person's voice.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def speech(mouth: np.ndarray, fps: float, pitch: float, rng: np.random.Generator,
           sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesise mono speech [N] (float32 in [-1, 1]) whose loudness follows ``mouth`` (per frame)."""
    count = int(round(len(mouth) / fps * sample_rate))
    times = np.arange(count) / sample_rate
    opening = np.interp(times, np.arange(len(mouth)) / fps, mouth)
    kernel = np.hanning(int(0.03 * sample_rate))
    opening = np.convolve(opening, kernel / kernel.sum(), mode="same")
    intonation = np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * times + rng.uniform(0, 2 * np.pi))
    f0 = pitch * (1 + 0.03 * np.sin(2 * np.pi * 5.0 * times) + 0.06 * intonation)   # vibrato + intonation
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    formant = 350.0 + 450.0 * opening          # an open mouth raises the first formant
    voice = np.zeros(count)
    for k in range(1, 16):
        weight = (1.0 / k) * (0.3 + np.exp(-(((k * f0) - formant) / 250.0) ** 2))
        voice += weight * np.sin(k * phase)
    loudness = np.clip(opening, 0, 1) ** 1.3
    signal = 0.25 * loudness * voice / np.abs(voice).max() + rng.normal(0.0, 0.002, count)
    return np.clip(signal, -1, 1).astype(np.float32)


def shift(audio: np.ndarray, seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Audio-only fake: the same voice rolled in time against the mouth by ``seconds``."""
    return np.roll(audio, int(round(seconds * sample_rate)))


def swap(audio: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Audio-only fake: another person's voice, cut or padded to this video's length."""
    out = np.zeros_like(audio)
    out[:min(len(audio), len(other))] = other[:len(audio)]
    return out
