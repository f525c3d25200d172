"""The procedural painter: one shoe or handbag product shot from nothing but numbers.

Each image is a pure function of (seed, split, class, index, difficulty, size)
through a sha256-seeded ``numpy`` generator and Pillow drawing, so it is
offline and reproducible byte for byte with the pinned Pillow. The class
signal is the silhouette only (:mod:`autograder.course.shapes`); colour,
pattern, background, pose and occluders are drawn from the same distributions
for both classes. This module knows nothing of folders, splits on disk or
manifests: :mod:`autograder.course.datasets` does the layout.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from autograder.course.shapes import Parts, Point, draw_bag, draw_shoe
from autograder.errors import DatasetError

GENERATOR_VERSION = 1
"""Bump when the drawing changes: it is part of every image's seed and of the manifest."""
GENERATED_CLASSES = ("handbags", "shoes")
JPEG_QUALITY = 92
_SUPERSAMPLE = 2  # draw at 2x and downsample: cheap anti-aliasing for the polygons


def image_seed(*, seed: int, split: str, class_name: str, index: int,
               difficulty: float, size_px: int) -> int:
    """A stable 64-bit seed (sha256, not ``hash()``, which is salted per process)."""
    key = f"v{GENERATOR_VERSION}|{seed}|{split}|{class_name}|{index}|{difficulty:.6f}|{size_px}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def generate_image(*, seed: int, split: str, class_name: str, index: int,
                   difficulty: float, size_px: int = 224) -> Image.Image:
    """Draw one RGB product shot of a shoe or a handbag; the same inputs give the same pixels."""
    if class_name not in GENERATED_CLASSES:
        raise DatasetError(
            f"the generator draws {' and '.join(GENERATED_CLASSES)}, not {class_name!r}",
            hint='set dataset.classes = ("handbags", "shoes") or use a real image folder',
        )
    rng = np.random.default_rng(image_seed(seed=seed, split=split, class_name=class_name,
                                           index=index, difficulty=difficulty, size_px=size_px))
    d = float(min(max(difficulty, 0.0), 1.0))
    big = size_px * _SUPERSAMPLE
    canvas = _background(rng, big, d)
    _clutter(rng, canvas, d)
    # Pose is drawn before the class-specific shape so that both classes share its law.
    pose = _Pose.draw(rng, big, d)
    style = _Style.draw(rng)
    parts = (draw_shoe if class_name == "shoes" else draw_bag)(rng)
    _render_object(rng, canvas, parts, pose, style)
    _occluders(rng, canvas, pose, d)
    canvas = canvas.resize((size_px, size_px), Image.Resampling.LANCZOS)
    return _add_noise(rng, canvas, d)


def encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes with fixed settings and no metadata, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False,
               progressive=False, subsampling=0)
    return buffer.getvalue()


# --------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class _Pose:
    """Where the object sits: shared by both classes so that only the shape tells them apart."""

    cx: float
    cy: float
    scale_px: float
    angle: float
    flip: bool

    @staticmethod
    def draw(rng: np.random.Generator, size: int, d: float) -> _Pose:
        spread = 0.10 + 0.35 * d
        scale = 0.82 * math.exp(rng.uniform(-spread, spread))
        shift = (0.04 + 0.16 * d) * size
        return _Pose(
            cx=size / 2 + rng.uniform(-shift, shift),
            cy=size / 2 + rng.uniform(-shift, shift),
            scale_px=scale * size,
            angle=math.radians(rng.uniform(-1, 1) * (4 + 22 * d)),
            flip=bool(rng.random() < 0.5),
        )

    def px(self, points: Sequence[Point]) -> list[Point]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        out = []
        for x, y in points:
            x = -x if self.flip else x
            out.append((self.cx + self.scale_px * (c * x - s * y),
                        self.cy + self.scale_px * (s * x + c * y)))
        return out


@dataclass(frozen=True)
class _Style:
    """Colours and pattern of the object, drawn independently of the class."""

    body: tuple[int, int, int]
    accent: tuple[int, int, int]
    trim: tuple[int, int, int]
    metal: tuple[int, int, int]
    pattern: str

    @staticmethod
    def draw(rng: np.random.Generator) -> _Style:
        pattern = str(rng.choice(["solid", "stripes", "dots", "check"], p=[0.55, 0.15, 0.15, 0.15]))
        return _Style(
            body=_colour(rng, value=(0.08, 0.75), saturation=(0.05, 0.75)),
            accent=_colour(rng, value=(0.2, 0.95), saturation=(0.1, 0.9)),
            trim=_colour(rng, value=(0.05, 0.95), saturation=(0.0, 0.3)),
            metal=_colour(rng, value=(0.6, 0.9), saturation=(0.2, 0.55), hue=(0.1, 0.16)),
            pattern=pattern,
        )


def _colour(rng: np.random.Generator, *, value: tuple[float, float],
            saturation: tuple[float, float], hue: tuple[float, float] = (0.0, 1.0)) -> tuple[int, int, int]:
    h, s, v = rng.uniform(*hue), rng.uniform(*saturation), rng.uniform(*value)
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (round(r * 255), round(g * 255), round(b * 255))



@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _material(rng: np.random.Generator, size: int, style: _Style) -> Image.Image:
    """The body fabric: colour, pattern, felt-like grain and light from above."""
    yy, xx = _grid(size)
    img = np.empty((size, size, 3), np.float32)
    img[:] = style.body
    period = rng.uniform(0.025, 0.07) * size
    if style.pattern == "stripes":
        a = rng.uniform(0, math.pi)
        mask = ((xx * math.cos(a) + yy * math.sin(a)) % period) < period * rng.uniform(0.3, 0.6)
    elif style.pattern == "dots":
        r = period * rng.uniform(0.15, 0.3)
        mask = ((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2 < r * r
    elif style.pattern == "check":
        mask = ((xx // period + yy // period) % 2) == 0
    else:
        mask = None
    if mask is not None:
        img[mask] = 0.45 * img[mask] + 0.55 * np.asarray(style.accent, np.float32)
    img += rng.normal(0, 9, (size, size, 1)).astype(np.float32)
    img *= (1.1 - 0.25 * yy / size)[..., None]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * factor)) for c in colour)  # type: ignore[return-value]


def _render_object(rng: np.random.Generator, canvas: Image.Image, parts: Parts,
                   pose: _Pose, style: _Style) -> None:
    size = canvas.width
    colours = {"trim": style.trim, "accent": style.accent, "metal": style.metal,
               "dark": _shade(style.body, 0.35), "shade": _shade(style.body, 0.8)}
    silhouette = Image.new("L", canvas.size, 0)
    sil = ImageDraw.Draw(silhouette)
    for shape in parts.body + [pts for _, pts in parts.solid]:
        sil.polygon(pose.px(shape), fill=255)
    for _, pts, w in (*parts.lines, *parts.behind):
        sil.line(pose.px(pts), fill=255, width=max(2, round(w * pose.scale_px)), joint="curve")
    # A soft contact shadow below and beside the object, as in a product photo.
    offset = (round(rng.uniform(-0.02, 0.03) * size), round(rng.uniform(0.01, 0.04) * size))
    shadow = ImageChops.offset(silhouette, *offset).filter(ImageFilter.GaussianBlur(size * 0.015))
    canvas.paste(Image.new("RGB", canvas.size, (20, 20, 20)), mask=shadow.point(lambda v: v * 0.45))
    draw = ImageDraw.Draw(canvas)
    for name, pts, w in parts.behind:
        draw.line(pose.px(pts), fill=_shade(colours[name], 0.7),
                  width=max(2, round(w * pose.scale_px)), joint="curve")
    body_mask = Image.new("L", canvas.size, 0)
    bm = ImageDraw.Draw(body_mask)
    for shape in parts.body:
        bm.polygon(pose.px(shape), fill=255)
    canvas.paste(_material(rng, size, style), mask=body_mask)
    for name, pts in parts.solid:
        draw.polygon(pose.px(pts), fill=colours[name])
    for name, pts, w in parts.lines:
        draw.line(pose.px(pts), fill=colours[name], width=max(2, round(w * pose.scale_px)),
                  joint="curve")


def _background(rng: np.random.Generator, size: int, d: float) -> Image.Image:
    """Plain, gradient (often a wall meeting a floor) or low-frequency textured backdrop."""
    kind = str(rng.choice(["plain", "gradient", "textured"], p=[0.3, 0.5, 0.2]))
    dark = rng.random() < 0.1 + 0.2 * d
    value = (0.15, 0.5) if dark else (0.65, 0.97)
    c1 = np.asarray(_colour(rng, value=value, saturation=(0.0, 0.35)), np.float32)
    c2 = np.asarray(_colour(rng, value=value, saturation=(0.0, 0.35)), np.float32)
    yy, xx = _grid(size)
    if kind == "plain":
        t = np.zeros((size, size), np.float32)
    elif kind == "gradient":
        horizon = rng.uniform(0.4, 0.8) * size
        t = 1 / (1 + np.exp(-(yy - horizon) / (rng.uniform(0.02, 0.2) * size)))
    else:
        cells = int(rng.integers(3, 7 + int(10 * d)))
        noise = (rng.random((cells, cells)) * 255).astype(np.uint8)
        t = np.asarray(Image.fromarray(noise).resize((size, size), Image.Resampling.BICUBIC),
                       np.float32) / 255
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def _random_shape(rng: np.random.Generator, cx: float, cy: float, r: float) -> list[Point]:
    n = int(rng.choice([4, 5, 6, 40]))
    a0 = rng.uniform(0, 2 * math.pi)
    stretch = rng.uniform(0.6, 1.4)
    return [(cx + r * stretch * math.cos(a0 + 2 * math.pi * k / n),
             cy + r / stretch * math.sin(a0 + 2 * math.pi * k / n)) for k in range(n)]


def _clutter(rng: np.random.Generator, canvas: Image.Image, d: float) -> None:
    """Faint background objects (shelves, blobs, cords); none at difficulty 0."""
    size = canvas.width
    draw = ImageDraw.Draw(canvas)
    base = np.asarray(canvas.getpixel((size // 2, size // 2)), np.float32)
    for _ in range(int(rng.poisson(6 * d))):
        tint = tuple(int(v) for v in np.clip(base + rng.normal(0, 40, 3), 0, 255))
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.04, 0.2) * size
        if rng.random() < 0.3:  # arcs and cords look like handles, on purpose: both classes get them
            draw.arc([cx - r, cy - r, cx + r, cy + r], rng.uniform(0, 360), rng.uniform(0, 360),
                     fill=tint, width=max(2, int(r * 0.08)))
        else:
            draw.polygon(_random_shape(rng, cx, cy, r), fill=tint)


def _occluders(rng: np.random.Generator, canvas: Image.Image, pose: _Pose, d: float) -> None:
    """Solid shapes in front of the object, sometimes cut by the frame; more with difficulty."""
    size = canvas.width
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.poisson(0.15 + 2.5 * d))):
        r = rng.uniform(0.05, 0.1 + 0.2 * d) * size
        if rng.random() < 0.7:  # near the object, so that it really hides a part of it
            cx = pose.cx + rng.uniform(-0.5, 0.5) * pose.scale_px
            cy = pose.cy + rng.uniform(-0.5, 0.5) * pose.scale_px
        else:
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        fill = _colour(rng, value=(0.1, 0.95), saturation=(0.0, 0.9))
        if rng.random() < 0.15 + 0.3 * d:
            draw.arc([cx - r, cy - r, cx + r, cy + r], rng.uniform(0, 360), rng.uniform(0, 360),
                     fill=fill, width=max(3, int(r * 0.1)))
        else:
            draw.polygon(_random_shape(rng, cx, cy, r), fill=fill)


def _add_noise(rng: np.random.Generator, image: Image.Image, d: float) -> Image.Image:
    """Sensor noise on the final image; its strength grows with difficulty."""
    sigma = 2.0 + 18.0 * d
    arr = np.asarray(image, np.float32) + rng.normal(0, sigma, (image.height, image.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
