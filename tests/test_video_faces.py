"""Decoding (decord and PyAV agree on which frame is which), audio alignment, MTCNN on real faces,
and the choice of the main face track."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.data.faces import Detection, MTCNNDetector, box_iou, select_track
from utils.data.footage import astronaut, carphone_path
from utils.data.video import VideoReadError, read_audio, read_frames, video_info, write_video

FPS, SR = 25, 16000
# hand-checked on the saved photo: cheek to cheek, hairline to chin, and the eye / mouth centres
ASTRONAUT_FACE = (182, 75, 270, 182)
ASTRONAUT_POINTS = ((203, 102), (247, 102), (225, 145))


def coded_frames(n: int, h: int = 96, w: int = 128) -> np.ndarray:
    """Frames that carry their own number in 7 black/white 16×16 blocks."""
    frames = np.full((n, h, w, 3), 60, np.uint8)
    for i in range(n):
        for b in range(7):
            frames[i, 40:56, 8 + 16 * b:24 + 16 * b] = 255 if (i >> b) & 1 else 0
    return frames


def read_code(img: np.ndarray, y: int = 48, x0: int = 16) -> int:
    bits = img[y, x0:x0 + 7 * 16:16].mean(-1) > 128
    return int(bits.dot(1 << np.arange(7)))


@pytest.fixture(scope="module")
def coded_video(tmp_path_factory):
    n = 60
    audio = np.zeros(int(n / FPS * SR), np.float32)
    k, burst = int(20 / FPS * SR), SR // FPS  # a 1 kHz tone while frame 20 is shown
    audio[k:k + burst] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(burst) / SR)
    return write_video(tmp_path_factory.mktemp("v") / "coded.mp4", coded_frames(n), FPS, audio, SR)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_read_frames_returns_the_asked_frames(coded_video, backend):
    f = read_frames(coded_video, [40, 3, 10, 11, 59, 75], backend=backend)
    assert f.indices.tolist() == [3, 10, 11, 40, 59]  # sorted, past-the-end dropped
    assert [read_code(img) for img in f.images] == [3, 10, 11, 40, 59]
    np.testing.assert_allclose(f.times, f.indices / FPS, atol=1e-3)


def test_video_info_and_bad_files(coded_video, tmp_path):
    info = video_info(coded_video)
    assert (info.n_frames, info.width, info.height, info.has_audio) == (60, 128, 96, True)
    assert info.fps == pytest.approx(FPS)
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    for backend in ("auto", "pyav"):
        with pytest.raises(VideoReadError):
            read_frames(bad, [0, 1], backend=backend)
    with pytest.raises(VideoReadError, match="no such file"):
        video_info(tmp_path / "missing.mp4")


def test_audio_lines_up_with_frames(coded_video):
    audio = read_audio(coded_video, SR)
    loud = np.nonzero(np.abs(audio) > 0.1)[0]
    # the tone was written while frame 20 is shown: it must start and end within a millisecond of it
    assert loud[0] / SR * FPS == pytest.approx(20, abs=0.03)
    assert loud[-1] / SR * FPS == pytest.approx(21, abs=0.03)
    assert read_audio(carphone_path()) is None


@pytest.fixture(scope="module")
def mtcnn():
    torch.set_num_threads(1)
    return MTCNNDetector()


def test_mtcnn_finds_the_astronaut(mtcnn):
    img = astronaut()
    for detector in (mtcnn, MTCNNDetector(max_size=256)):  # full size, and downscaled for detection
        (faces,) = detector.detect([img])
        best = max(faces, key=lambda d: d.score)
        assert box_iou(np.array(best.box), np.array(ASTRONAUT_FACE)) > 0.6, best.box
        x1, y1, x2, y2 = best.box
        assert all(x1 < x < x2 and y1 < y < y2 for x, y in ASTRONAUT_POINTS)


def test_mtcnn_tracks_the_carphone_face(mtcnn):
    frames = read_frames(carphone_path(), range(0, 120, 4))
    track = select_track(mtcnn.detect(list(frames.images)), frames.indices)
    assert track is not None and track.detected.mean() >= 0.9
    centres = (track.boxes[:, :2] + track.boxes[:, 2:]) / 2
    assert np.all(np.abs(np.diff(centres, axis=0)) < 20)  # one face, not a jump to another one
    assert np.all((centres > 20) & (centres < [156, 124]))


def test_select_track_keeps_the_main_face_and_fills_gaps():
    def face(x, y, s, score=0.99):
        return Detection((x, y, x + s, y + s), score)

    dets = []
    for i in range(10):
        frame = [face(30, 150, 20, 0.95)]                    # a small face in the background, always there
        if i != 4:
            frame.append(face(100 + 3 * i, 50, 80))         # the main face, drifting right, missed on frame 4
        if i == 7:
            frame.append(face(300, 300, 150, 0.92))         # a big one-frame false positive
        dets.append(frame)
    track = select_track(dets, frame_indices=range(0, 100, 10))
    assert track.detected.tolist() == [i != 4 for i in range(10)]
    np.testing.assert_allclose(track.boxes[:, 0], 100 + 3 * np.arange(10), atol=1e-4)  # frame 4 interpolated
    np.testing.assert_allclose(track.boxes[:, 2] - track.boxes[:, 0], 80, atol=1e-4)
    assert select_track([[], []]) is None
