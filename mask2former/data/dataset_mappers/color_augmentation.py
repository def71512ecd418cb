"""SSD-style photometric distortion as a Detectron2 augmentation (INPUT.COLOR_AUG_SSD).

Brightness shift, contrast scale, saturation scale and hue shift, each applied with probability
1/2, contrast either first or last. :class:`ColorAugSSD` samples the parameters; the resulting
:class:`ColorAugSSDTransform` is deterministic and leaves geometry (segmentation, coordinates)
untouched.
"""

import cv2
import numpy as np

from detectron2.data import transforms as T

__all__ = ["ColorAugSSD", "ColorAugSSDTransform"]


class ColorAugSSDTransform(T.Transform):
    """Apply fixed SSD colour distortions to an image in ``img_format`` ("RGB" or "BGR").

    Args:
        img_format: channel order of the images this transform receives.
        brightness_delta: added to every channel (0 = off).
        contrast_alpha: multiplies every channel (1 = off).
        saturation_alpha: multiplies the HSV saturation (1 = off).
        hue_delta: added to the OpenCV HSV hue (range 0..180, wraps; 0 = off).
        contrast_first: apply the contrast change before the HSV changes (else after).
    """

    def __init__(
        self,
        img_format: str,
        brightness_delta: float = 0.0,
        contrast_alpha: float = 1.0,
        saturation_alpha: float = 1.0,
        hue_delta: int = 0,
        contrast_first: bool = True,
    ):
        super().__init__()
        if img_format not in ("RGB", "BGR"):
            raise ValueError(f"ColorAugSSDTransform supports RGB or BGR images, got {img_format!r}")
        self._set_attributes(locals())

    @staticmethod
    def _to_uint8(img: np.ndarray) -> np.ndarray:
        return np.clip(img, 0, 255).astype(np.uint8)

    def _contrast(self, img: np.ndarray) -> np.ndarray:
        if self.contrast_alpha == 1.0:
            return img
        return self._to_uint8(img.astype(np.float32) * self.contrast_alpha)

    def _hsv(self, img_bgr: np.ndarray) -> np.ndarray:
        if self.saturation_alpha == 1.0 and self.hue_delta == 0:
            return img_bgr
        hsv = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2HSV).astype(np.int32)
        if self.saturation_alpha != 1.0:
            hsv[:, :, 1] = np.clip(hsv[:, :, 1] * self.saturation_alpha, 0, 255)
        if self.hue_delta != 0:
            hsv[:, :, 0] = (hsv[:, :, 0] + int(self.hue_delta)) % 180
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"ColorAugSSDTransform expects HxWx3 uint8 images, got {img.dtype} {img.shape}"
            )
        bgr = img[:, :, ::-1] if self.img_format == "RGB" else img
        bgr = np.ascontiguousarray(bgr)
        if self.brightness_delta != 0:
            bgr = self._to_uint8(bgr.astype(np.float32) + self.brightness_delta)
        if self.contrast_first:
            bgr = self._contrast(bgr)
        bgr = self._hsv(bgr)
        if not self.contrast_first:
            bgr = self._contrast(bgr)
        out = bgr[:, :, ::-1] if self.img_format == "RGB" else bgr
        return np.ascontiguousarray(out)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()


class ColorAugSSD(T.Augmentation):
    """Sample SSD colour distortions (each with probability 1/2).

    Args:
        img_format: "RGB" or "BGR" (cfg.INPUT.FORMAT).
        brightness_delta: brightness shift drawn from U(-delta, delta).
        contrast_low, contrast_high: contrast factor range.
        saturation_low, saturation_high: saturation factor range.
        hue_delta: hue shift drawn from integers in [-delta, delta].
    """

    def __init__(
        self,
        img_format: str,
        brightness_delta: float = 32.0,
        contrast_low: float = 0.5,
        contrast_high: float = 1.5,
        saturation_low: float = 0.5,
        saturation_high: float = 1.5,
        hue_delta: int = 18,
    ):
        super().__init__()
        self._init(locals())

    def get_transform(self, image) -> ColorAugSSDTransform:
        def maybe(sample, off):
            return sample() if np.random.rand() < 0.5 else off

        return ColorAugSSDTransform(
            self.img_format,
            brightness_delta=maybe(
                lambda: float(np.random.uniform(-self.brightness_delta, self.brightness_delta)), 0.0
            ),
            contrast_alpha=maybe(
                lambda: float(np.random.uniform(self.contrast_low, self.contrast_high)), 1.0
            ),
            saturation_alpha=maybe(
                lambda: float(np.random.uniform(self.saturation_low, self.saturation_high)), 1.0
            ),
            hue_delta=maybe(lambda: int(np.random.randint(-self.hue_delta, self.hue_delta + 1)), 0),
            contrast_first=bool(np.random.rand() < 0.5),
        )
