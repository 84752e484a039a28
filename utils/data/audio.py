"""Log-mel spectrogram windows aligned with video clips (torchaudio is not installed here).

A clip of ``n_frames`` frames starting at ``start_time`` gets ``n_frames * spec.mel_per_frame``
spectrogram columns; column ``j`` is centred at ``start_time + (j + 0.5) / (fps * mel_per_frame)``,
so the columns of frame ``k`` of the clip describe the sound while that frame is shown.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from utils.core.model import InputSpec

LOG_EPS = 1e-6


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters (HTK mel scale, area-normalised like Slaney's), n_mels × (n_fft//2 + 1)."""
    f_max = f_max or sample_rate / 2
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    fb = np.clip(np.minimum(up, down), 0, None) * (2.0 / (hi - lo))
    return torch.from_numpy(fb.astype(np.float32))


def _n_fft(hop: int) -> int:
    """Window of about two hops (a power of two, at least 256 samples)."""
    return max(256, 1 << math.ceil(math.log2(2 * hop)))


def log_mel(segment: torch.Tensor, sample_rate: int, n_mels: int, hop: int, n_fft: int) -> torch.Tensor:
    """Log-mel of a 1-D signal with ``torch.stft`` (no centring: column j starts at j·hop)."""
    window = torch.hann_window(n_fft, dtype=segment.dtype)
    spec = torch.stft(segment, n_fft, hop_length=hop, window=window, center=False, return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return torch.log(mel_filterbank(n_fft, n_mels, sample_rate) @ power + LOG_EPS)


def mel_window(samples: np.ndarray | None, sr: int, start_time: float, n_frames: int, fps: float,
               spec: InputSpec) -> torch.Tensor:
    """Log-mel window for a clip: n_mels × (n_frames · spec.mel_per_frame), float32.

    Args:
        samples: mono audio whose sample 0 is the first video frame's time (as read by
            :func:`utils.data.video.read_audio`); ``None`` or empty gives the log of silence.
        sr: its sample rate (resampled to ``spec.sample_rate`` if different).
        start_time: time of the clip's first frame, seconds from the first video frame.
        n_frames: frames in the clip.
        fps: the video's frame rate.
        spec: the model's input (n_mels, mel_per_frame, sample_rate).

    Audio outside the recording is silence. The hop is rounded to whole samples, so a column drifts
    at most half a sample per column from its ideal centre (under 2 ms over a 16-frame clip).
    """
    cols, rate = n_frames * spec.mel_per_frame, spec.sample_rate
    hop = max(1, int(round(rate / (fps * spec.mel_per_frame))))
    n_fft = _n_fft(hop)
    first = int(round(start_time * rate)) + hop // 2 - n_fft // 2  # column 0 centred half a hop in
    length = (cols - 1) * hop + n_fft
    segment = np.zeros(length, np.float32)
    if samples is not None and len(samples) and sr != rate:  # resample just the segment, linearly
        at = np.arange(first, first + length) * (sr / rate)
        segment[:] = np.interp(at, np.arange(len(samples)), samples, left=0.0, right=0.0)
    elif samples is not None and len(samples):
        a, b = max(first, 0), min(first + length, len(samples))
        if b > a:
            segment[a - first:b - first] = samples[a:b]
    return log_mel(torch.from_numpy(segment), rate, spec.n_mels, hop, n_fft)
