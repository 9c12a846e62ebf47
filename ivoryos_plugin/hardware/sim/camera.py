"""A simulated camera looking at the simulated deck: a 96-well plate that fills as the pump
dispenses, the balance's last reading, a stirrer that turns and a clock, drawn with OpenCV, so the
demo shows moving video without hardware. Pass it as a camera source: ``plugin.camera("deck", cam)``.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, List, Optional

ROWS, COLS = 8, 12


class DeckCamera:
    """A callable returning the next frame (a BGR numpy array) of the simulated deck.

    Feed it what happens on the deck: :meth:`dispensed` (the next well fills with that volume) and
    :meth:`weighed` (the balance's display); the demo's camera plugin does it by observing the
    pump and the balance.

    :param width: the frame's width in pixels.
    :param height: the frame's height in pixels.
    :param well_ml: the volume that fills a well completely."""

    def __init__(self, width: int = 640, height: int = 480, well_ml: float = 1.0) -> None:
        if width < 160 or height < 120:
            raise ValueError(f"DeckCamera({width}x{height}): use at least 160x120 pixels.")
        self.width, self.height, self.well_ml = width, height, well_ml
        self._lock = threading.Lock()
        self._wells: List[float] = [0.0] * (ROWS * COLS)
        self._next = 0
        self._grams: Optional[float] = None
        self.frames = 0

    def dispensed(self, volume_ml: float) -> None:
        """The pump dispensed ``volume_ml`` into the next well (after the last, the first again).

        :param volume_ml: the volume."""
        with self._lock:
            self._wells[self._next] = min(self.well_ml, self._wells[self._next] + max(0.0, float(volume_ml)))
            self._next = (self._next + 1) % len(self._wells)

    def weighed(self, grams: float) -> None:
        """The balance read ``grams`` (shown on its display).

        :param grams: the reading."""
        with self._lock:
            self._grams = float(grams)

    def reset(self) -> None:
        """Empty the plate and the balance display."""
        with self._lock:
            self._wells = [0.0] * (ROWS * COLS)
            self._next, self._grams = 0, None

    def filled(self) -> int:
        """How many wells hold something."""
        with self._lock:
            return sum(1 for v in self._wells if v > 0)

    def __call__(self) -> Any:
        """The next frame."""
        import cv2
        import numpy as np

        with self._lock:
            wells, grams, self.frames = list(self._wells), self._grams, self.frames + 1
            frame_no = self.frames
        w, h = self.width, self.height
        img = np.full((h, w, 3), (236, 233, 228), np.uint8)
        font = cv2.FONT_HERSHEY_SIMPLEX
        scale = w / 640
        cv2.putText(img, "simulated deck camera", (int(12 * scale), int(24 * scale)), font, 0.55 * scale,
                    (60, 60, 60), 1, cv2.LINE_AA)
        # the plate: 8 x 12 wells, filled from light to deep blue with volume
        left, top, pitch = int(20 * scale), int(50 * scale), int(30 * scale)
        cv2.rectangle(img, (left - 12, top - 12), (left + COLS * pitch, top + ROWS * pitch), (200, 200, 200), -1)
        for index, volume in enumerate(wells):
            row, col = divmod(index, COLS)
            centre = (left + col * pitch + pitch // 2 - 6, top + row * pitch + pitch // 2 - 6)
            level = min(1.0, volume / self.well_ml) if self.well_ml > 0 else 0.0
            colour = (int(250 - 110 * level), int(250 - 170 * level), int(250 - 230 * level)) if level else (250, 250, 250)
            cv2.circle(img, centre, int(11 * scale), colour, -1, cv2.LINE_AA)
            cv2.circle(img, centre, int(11 * scale), (150, 150, 150), 1, cv2.LINE_AA)
        # the balance's display
        bx, by = int(430 * scale), int(60 * scale)
        cv2.rectangle(img, (bx, by), (bx + int(190 * scale), by + int(70 * scale)), (50, 50, 50), -1)
        shown = "----.--- g" if grams is None else f"{grams:9.3f} g"
        cv2.putText(img, shown, (bx + 8, by + int(45 * scale)), font, 0.75 * scale, (80, 255, 120), 2, cv2.LINE_AA)
        # the hotplate's stirrer turns one step per frame: every frame differs
        cx, cy, r = int(525 * scale), int(250 * scale), int(55 * scale)
        cv2.circle(img, (cx, cy), r, (120, 120, 160), -1, cv2.LINE_AA)
        angle = frame_no * 0.35
        tip = (int(cx + 0.8 * r * math.cos(angle)), int(cy + 0.8 * r * math.sin(angle)))
        tail = (int(cx - 0.8 * r * math.cos(angle)), int(cy - 0.8 * r * math.sin(angle)))
        cv2.line(img, tail, tip, (245, 245, 245), max(2, int(6 * scale)), cv2.LINE_AA)
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 10) % 10}  frame {frame_no}"
        cv2.putText(img, stamp, (int(12 * scale), h - int(14 * scale)), font, 0.55 * scale, (40, 40, 40), 1, cv2.LINE_AA)
        return img
