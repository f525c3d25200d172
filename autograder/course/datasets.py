"""The image folders: generate the default shoes/handbags set, verify it, or validate a real one.

For ``dataset.source == "generated"`` this module draws every image from nothing
but numbers: each file is a pure function of (seed, split, class, index,
difficulty, size) through a sha256-seeded ``numpy`` generator and Pillow
drawing, so the set is offline, reproducible byte for byte with the pinned
Pillow, and never needs a download. Student splits go to ``dataset.build_dir``;
the grading split, drawn from the independent ``dataset.grading_seed`` stream,
goes to ``<hidden_dir>/grading`` and is never released. ``dataset.manifest``
records every file's sha256 and the generator settings, so ``verify_dataset``
can name each missing, changed or extra file.

For any other ``source`` the value is a folder of real images in the same
logical layout (``train|validation|test/<class>/`` and ``grading/<class>/``):
it is validated and hashed into the manifest, never copied.

Other modules find the images only through :func:`student_splits_dir` and
:func:`grading_split_dir`. This module prints nothing, trains nothing and does
not load images into tensors (Keras' ``image_dataset_from_directory`` does that).

Why shapes are drawn instead of shipped photos: no licence questions, no
network, a difficulty knob, and a grading split as large as wanted. The class
signal is the silhouette only; colour, pattern, background, pose and occluders
are drawn from the same distributions for both classes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from autograder.course.config import Course
from autograder.errors import DatasetError
from autograder.progress import Progress, report

GENERATOR_VERSION = 1
"""Bump when the drawing changes: it is part of every image's seed and of the manifest."""
STUDENT_SPLITS = ("train", "validation", "test")
GRADING_SPLIT = "grading"
GENERATED_CLASSES = ("handbags", "shoes")
SHOE_KINDS = ("sneaker", "boot", "pump", "loafer")
BAG_KINDS = ("tote", "satchel", "bucket", "clutch", "crossbody")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
"""What Keras' ``image_dataset_from_directory`` reads; anything else in a class folder is an error."""
_JPEG_QUALITY = 92
_SUPERSAMPLE = 2  # draw at 2x and downsample: cheap anti-aliasing for the polygons

Point = tuple[float, float]


@dataclass(frozen=True)
class DatasetReport:
    """What a build or a verification found."""

    source: str
    """``"generated"`` or the real-image folder."""
    manifest: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Images per split and class, e.g. ``{"train": {"handbags": 49, "shoes": 48}}``."""
    missing: tuple[str, ...] = ()
    """Manifest entries with no file (logical paths such as ``train/shoes/0003.jpg``)."""
    changed: tuple[str, ...] = ()
    """Files whose sha256 differs from the manifest."""
    extra: tuple[str, ...] = ()
    """Files in a split folder that the manifest does not list."""
    removed: tuple[str, ...] = ()
    """Stale generated files a build deleted (e.g. after a split got smaller)."""

    @property
    def total(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.counts.values())

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)


# --------------------------------------------------------------------------- where


def student_splits_dir(course: Course) -> Path:
    """The folder that holds ``train|validation|test/<class>/``, for either source."""
    d = course.config.dataset
    return course.path(d.build_dir) if d.source == "generated" else course.path(d.source)


def grading_split_dir(course: Course) -> Path:
    """The folder that holds the hidden ``<class>/`` folders of the grading split."""
    d = course.config.dataset
    base = course.path(d.hidden_dir) if d.source == "generated" else course.path(d.source)
    return base / GRADING_SPLIT


def _split_dir(course: Course, split: str) -> Path:
    if split == GRADING_SPLIT:
        return grading_split_dir(course)
    return student_splits_dir(course) / split


def class_counts(total: int, classes: Sequence[str]) -> dict[str, int]:
    """``total`` images shared as evenly as possible, earlier classes taking the remainder."""
    base, extra = divmod(total, len(classes))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(classes)}


def planned_counts(course: Course) -> dict[str, dict[str, int]]:
    """Images per split and class that the generator makes, from the config."""
    d = course.config.dataset
    sizes = {split: d.split_sizes[split] for split in STUDENT_SPLITS}
    sizes[GRADING_SPLIT] = d.grading_split_size
    return {split: class_counts(n, d.classes) for split, n in sizes.items()}


# --------------------------------------------------------------------------- one image


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
    parts = (_draw_shoe if class_name == "shoes" else _draw_bag)(rng)
    _render_object(rng, canvas, parts, pose, style)
    _occluders(rng, canvas, pose, d)
    canvas = canvas.resize((size_px, size_px), Image.Resampling.LANCZOS)
    return _add_noise(rng, canvas, d)


def encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes with fixed settings and no metadata, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY, optimize=False,
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


@dataclass
class _Parts:
    """A shape in object units (about [-0.5, 0.5] square, y down), as paint layers in order."""

    body: list[list[Point]] = field(default_factory=list)
    """Filled with the body material (colour + pattern)."""
    solid: list[tuple[str, list[Point]]] = field(default_factory=list)
    """Filled polygons in a named style colour: ``trim``, ``accent``, ``metal``, ``dark``, ``shade``."""
    lines: list[tuple[str, list[Point], float]] = field(default_factory=list)
    """Open polylines (handles, straps, laces) with a width in object units."""
    behind: list[tuple[str, list[Point], float]] = field(default_factory=list)
    """Polylines drawn before the body (a handle's far side)."""


def _colour(rng: np.random.Generator, *, value: tuple[float, float],
            saturation: tuple[float, float], hue: tuple[float, float] = (0.0, 1.0)) -> tuple[int, int, int]:
    h, s, v = rng.uniform(*hue), rng.uniform(*saturation), rng.uniform(*value)
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (round(r * 255), round(g * 255), round(b * 255))


def _smooth(points: Sequence[Point], *, closed: bool = True, rounds: int = 3) -> list[Point]:
    """Chaikin corner cutting: turns a few control points into a soft, leather-like outline."""
    pts = list(points)
    for _ in range(rounds):
        out: list[Point] = [] if closed else [pts[0]]
        n = len(pts) if closed else len(pts) - 1
        for i in range(n):
            (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % len(pts)]
            out += [(0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1),
                    (0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1)]
        pts = out if closed else out + [pts[-1]]
    return pts


def _soft(points: Sequence[Point], *, corner: float) -> list[Point]:
    """A polygon with straight edges and corners rounded at about ``corner`` object units."""
    pts: list[Point] = []
    for i, (x0, y0) in enumerate(points):
        x1, y1 = points[(i + 1) % len(points)]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        t = min(0.5, corner / length)
        pts += [(x0, y0), (x0 + t * (x1 - x0), y0 + t * (y1 - y0)),
                (x1 - t * (x1 - x0), y1 - t * (y1 - y0))]
    return _smooth(pts, rounds=2)


def _ellipse(cx: float, cy: float, rx: float, ry: float, *,
             start_deg: float = 0, end_deg: float = 360, n: int = 40) -> list[Point]:
    angles = np.linspace(math.radians(start_deg), math.radians(end_deg), n)
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def _j(rng: np.random.Generator, amount: float = 0.03) -> float:
    return float(rng.uniform(-amount, amount))


def _draw_shoe(rng: np.random.Generator) -> _Parts:
    """A shoe in side view, toe to the left: upper, sole, heel, opening and laces by kind."""
    kind = SHOE_KINDS[int(rng.integers(len(SHOE_KINDS)))]
    p = _Parts()
    g = 0.2 + _j(rng)  # where the sole meets the ground
    s = rng.uniform(0.04, 0.08)  # sole thickness
    base = g - 0.5 * s  # the upper reaches into the sole, so that no gap shows
    if kind == "pump":
        heel_y = rng.uniform(-0.14, 0.0)
        seat = [(-0.52, g), (-0.25, g - 0.01), (0.05, g - 0.08), (0.3, heel_y + 0.06), (0.47, heel_y)]
        upper = [(-0.52, g - 0.005), (-0.5, g - 0.08), (-0.38, g - 0.11 + _j(rng)),
                 (-0.12, g - 0.1), (0.12, heel_y - 0.01), (0.38, heel_y - 0.12 + _j(rng)),
                 (0.49, heel_y - 0.09), *reversed(seat)]
        p.body.append(_smooth(upper))
        p.solid.append(("dark", _smooth([(-0.1, g - 0.1), (0.12, heel_y), (0.37, heel_y - 0.1),
                                          (0.3, heel_y - 0.02), (0.05, g - 0.08)])))
        p.lines.append(("trim", seat, 0.022))
        w = rng.uniform(0.025, 0.07)
        p.solid.append(("trim", [(0.36, heel_y + 0.04), (0.48, heel_y), (0.46 - 0.5 * w, g),
                                 (0.44 - w, g)]))
        return p
    if kind == "boot":
        top = rng.uniform(-0.52, -0.3)
        front, back = rng.uniform(-0.05, 0.12), rng.uniform(0.42, 0.5)
        upper = [(-0.5, base), (-0.48, g - 0.15), (-0.3, g - 0.21 + _j(rng)),
                 (front - 0.08, g - 0.28), (front, top), (back, top - 0.02),
                 (back + 0.01, g - 0.2), (0.5, base)]
        p.body.append(_smooth(upper, rounds=2))
        p.solid.append(("dark", _ellipse((front + back) / 2, top, (back - front) / 2, 0.022)))
        if rng.random() < 0.5:  # a contrasting pull tab or gusset, as on the reference boots
            p.solid.append(("accent", [(front + 0.03, top + 0.01), (front + 0.12, top + 0.01),
                                       (front + 0.07, top + 0.14)]))
    else:
        collar = rng.uniform(-0.2, -0.1) if kind == "sneaker" else rng.uniform(-0.1, -0.03)
        upper = [(-0.52, base), (-0.51, g - 0.12), (-0.34, g - 0.19 + _j(rng)),
                 (-0.05, collar + 0.02), (0.18, collar - 0.02), (0.34, collar + 0.02),
                 (0.49, collar - 0.04), (0.5, g - 0.1), (0.51, base)]
        p.body.append(_smooth(upper))
        p.solid.append(("dark", _smooth([(0.14, collar - 0.005), (0.3, collar - 0.015),
                                          (0.45, collar - 0.035), (0.3, collar + 0.025)])))
        if kind == "sneaker":
            for i in range(int(rng.integers(3, 6))):
                x = -0.12 + 0.055 * i
                y = collar + 0.07 - 0.018 * i + (g - collar) * 0.12
                p.lines.append(("trim", [(x - 0.025, y - 0.018), (x + 0.025, y + 0.012)], 0.016))
            if rng.random() < 0.5:  # toe cap
                p.solid.append(("trim", _smooth([(-0.52, base), (-0.51, g - 0.12),
                                                 (-0.38, g - 0.17), (-0.33, base)])))
            if rng.random() < 0.5:  # side stripe
                p.lines.append(("accent", _smooth([(-0.15, g - 0.07), (0.1, g - 0.11),
                                                   (0.35, g - 0.19)], closed=False), 0.02))
        else:  # loafer: saddle strap across the vamp
            p.solid.append(("shade", _smooth([(-0.24, g - 0.17), (-0.12, collar + 0.01),
                                              (-0.05, collar + 0.03), (-0.14, g - 0.13)])))
    sole = [(-0.54, g - s - 0.01), (0.52, g - s), (0.52, g), (-0.46, g)]
    p.solid.append(("trim", _soft(sole, corner=0.02)))
    if kind in ("boot", "loafer") or rng.random() < 0.3:
        h = rng.uniform(0.03, 0.1)
        p.solid.append(("dark", _soft([(0.3, g - 0.5 * s), (0.52, g - 0.5 * s),
                                       (0.51, g + h), (0.32, g + h)], corner=0.01)))
    return p


def _handle(x0: float, x1: float, y: float, height: float) -> list[Point]:
    """A handle or strap as a half ellipse between two attachment points."""
    return _ellipse((x0 + x1) / 2, y, (x1 - x0) / 2, height, start_deg=180, end_deg=360)


def _draw_bag(rng: np.random.Generator) -> _Parts:
    """A handbag front view; every kind carries a handle or a strap, as real ones do."""
    kind = BAG_KINDS[int(rng.integers(len(BAG_KINDS)))]
    p = _Parts()
    w = rng.uniform(0.26, 0.36)
    top, bottom = rng.uniform(-0.15, 0.0), rng.uniform(0.3, 0.45)
    if kind == "clutch":
        w, top, bottom = rng.uniform(0.38, 0.48), rng.uniform(0.0, 0.08), rng.uniform(0.25, 0.33)
    elif kind == "crossbody":
        w, top = rng.uniform(0.2, 0.28), rng.uniform(0.05, 0.15)
    flare = rng.uniform(-0.06, 0.06)
    handle_w = rng.uniform(0.012, 0.03)
    if kind == "bucket":
        body = [(-w, top), (w, top), *_ellipse(0, bottom - 0.12, w * 0.95, 0.12, start_deg=0,
                                                end_deg=180)]
        p.body.append(body)
        p.solid.append(("shade", [(-w, top), (w, top), (w * 0.98, top + 0.05), (-w * 0.98, top + 0.05)]))
        p.lines.append(("trim", _handle(-w * 0.9, w * 0.9, top, rng.uniform(0.3, 0.5)), handle_w))
        return p
    body = _soft([(-w - flare, top), (w + flare, top), (w, bottom), (-w, bottom)],
                 corner=rng.uniform(0.02, 0.1))
    p.body.append(body)
    if kind == "tote":
        x = rng.uniform(0.08, 0.2)
        h = rng.uniform(0.18, 0.32)
        p.behind.append(("trim", _handle(-x - 0.04, x + 0.04, top + 0.01, h * 0.9), handle_w))
        p.lines.append(("trim", _handle(-x, x, top + 0.01, h), handle_w))
    elif kind == "crossbody":
        p.lines.append(("trim", [(-w * 0.9, top), (-w * 0.6, -0.9)], 0.012))
        p.lines.append(("trim", [(w * 0.9, top), (w * 0.6, -0.9)], 0.012))
    else:  # satchel and clutch: a single top handle or a thin wrist strap
        x = rng.uniform(0.1, 0.22) if kind == "satchel" else rng.uniform(0.15, 0.35)
        h = rng.uniform(0.15, 0.25) if kind == "satchel" else rng.uniform(0.12, 0.3)
        p.lines.append(("trim", _handle(-x, x, top + 0.01, h),
                        handle_w if kind == "satchel" else 0.01))
    if kind in ("satchel", "clutch", "crossbody") or rng.random() < 0.4:
        depth = (bottom - top) * rng.uniform(0.35, 0.6)
        flap = [(-w - flare, top), (w + flare, top), (w, top + depth * 0.7), (0, top + depth),
                (-w, top + depth * 0.7)]
        p.solid.append(("shade", _smooth(flap, rounds=1)))
        p.solid.append(("metal", _ellipse(0, top + depth * 0.9, 0.025, 0.025)))
    elif rng.random() < 0.6:
        p.solid.append(("metal", _ellipse(0, top + 0.08, 0.025, 0.025)))
    return p


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


def _render_object(rng: np.random.Generator, canvas: Image.Image, parts: _Parts,
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


# --------------------------------------------------------------------------- build, verify


def generator_settings(course: Course) -> dict[str, object]:
    """What the generated files depend on; stored in the manifest so that drift is named."""
    d = course.config.dataset
    return {
        "version": GENERATOR_VERSION,
        "seed": d.seed,
        "grading_seed": d.grading_seed,
        "difficulty": d.difficulty,
        "image_size_px": d.image_size_px,
        "classes": list(d.classes),
        "split_sizes": {split: d.split_sizes[split] for split in STUDENT_SPLITS},
        "grading_split_size": d.grading_split_size,
        "jpeg_quality": _JPEG_QUALITY,
        "pillow": Image.__version__,
    }


def build_dataset(course: Course, *, progress: Progress | None = None) -> DatasetReport:
    """Write every generated image and the manifest; for a real folder, validate and hash it."""
    d = course.config.dataset
    if d.source != "generated":
        counts = validate_image_folder(course.path(d.source), classes=d.classes)
        files = _hash_tree(course, progress=progress)
        _write_manifest(course, files=files, settings={"source": str(d.source)})
        return DatasetReport(source=d.source, manifest=course.path(d.manifest), counts=counts)
    plan = planned_counts(course)
    jobs = [(split, name, i) for split, per in plan.items() for name, n in per.items() for i in range(n)]
    files: dict[str, str] = {}
    for done, (split, name, index) in enumerate(jobs, start=1):
        seed = d.grading_seed if split == GRADING_SPLIT else d.seed
        data = encode_jpeg(generate_image(seed=seed, split=split, class_name=name, index=index,
                                          difficulty=d.difficulty, size_px=d.image_size_px))
        key = f"{split}/{name}/{index:04d}.jpg"
        path = _split_dir(course, split) / name / f"{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rewrite only when different, so that an unchanged build keeps file times (rsync, make).
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        files[key] = hashlib.sha256(data).hexdigest()
        report(progress, done, len(jobs), key)
    removed = []
    on_disk = _scan(course)
    for key in sorted(set(on_disk) - set(files)):
        # Only stale images named like ours are removed; anything else stays and verify names it.
        if key.endswith(".jpg") and Path(key).stem.isdigit():
            on_disk[key].unlink()
            removed.append(key)
    _write_manifest(course, files=files, settings={"source": "generated",
                                                   "generator": generator_settings(course)})
    return DatasetReport(source="generated", manifest=course.path(d.manifest), counts=plan,
                         removed=tuple(removed))


def verify_dataset(course: Course) -> DatasetReport:
    """Compare the split folders with the manifest; raise naming every missing, changed or extra file."""
    d = course.config.dataset
    manifest_path = course.path(d.manifest)
    manifest = _read_manifest(manifest_path)
    expected: dict[str, str] = manifest["files"]
    if d.source == "generated":
        recorded = manifest.get("generator")
        if recorded != generator_settings(course):
            raise DatasetError(
                f"{manifest_path} was built with other generator settings than course_config.py "
                f"(recorded {json.dumps(recorded, sort_keys=True)})",
                hint="run `course data build` to regenerate the images and the manifest",
            )
    elif manifest.get("source") != str(d.source):
        raise DatasetError(
            f"{manifest_path} describes source {manifest.get('source')!r}, "
            f"but dataset.source is {d.source!r}",
            hint="run `course data build` to validate the folder and rewrite the manifest",
        )
    on_disk = _scan(course)
    missing = tuple(sorted(set(expected) - set(on_disk)))
    extra = tuple(sorted(set(on_disk) - set(expected)))
    changed = tuple(sorted(k for k in set(expected) & set(on_disk)
                           if _sha256(on_disk[k]) != expected[k]))
    counts: dict[str, dict[str, int]] = {}
    for split in (*STUDENT_SPLITS, GRADING_SPLIT):
        for name in d.classes:
            n = sum(1 for key in expected if key.startswith(f"{split}/{name}/"))
            counts.setdefault(split, {})[name] = n
    result = DatasetReport(source=d.source, manifest=manifest_path, counts=counts,
                           missing=missing, changed=changed, extra=extra)
    if not result.ok:
        lines = [f"{what}: {key}" for what, keys in
                 (("missing", missing), ("changed", changed), ("extra", extra)) for key in keys]
        shown = "\n  ".join(lines[:50]) + (f"\n  ... and {len(lines) - 50} more" if len(lines) > 50 else "")
        raise DatasetError(
            f"the dataset does not match {manifest_path} "
            f"({len(missing)} missing, {len(changed)} changed, {len(extra)} extra):\n  {shown}",
            hint="run `course data build` to regenerate it (a real folder: restore the files "
                 "or rebuild the manifest on purpose)",
        )
    return result


def validate_image_folder(path: Path, *, classes: Sequence[str] = GENERATED_CLASSES
                          ) -> dict[str, dict[str, int]]:
    """Check a real-image folder: every split has every class, every file is a readable image.

    Returns the images per split and class; raises one :class:`DatasetError`
    naming every missing folder and every bad file.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist",
                           hint="fix dataset.source in course_config.py")
    problems: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for split in (*STUDENT_SPLITS, GRADING_SPLIT):
        for name in classes:
            folder = root / split / name
            if not folder.is_dir():
                problems.append(f"{folder}: missing folder")
                continue
            n = 0
            for file in sorted(folder.iterdir()):
                problem = _image_problem(file)
                if problem:
                    problems.append(f"{file}: {problem}")
                else:
                    n += 1
            if n == 0 and not any(folder.iterdir()):
                problems.append(f"{folder}: no images")
            counts.setdefault(split, {})[name] = n
    if problems:
        listing = "\n  ".join(problems)
        raise DatasetError(
            f"{root} is not a usable image folder ({len(problems)} problem(s)):\n  {listing}",
            hint=f"each of {', '.join((*STUDENT_SPLITS, GRADING_SPLIT))} needs the folders "
                 f"{', '.join(classes)} holding only {'/'.join(IMAGE_SUFFIXES)} images; "
                 "remove or replace the files named above",
        )
    return counts


def _image_problem(file: Path) -> str | None:
    """Why ``file`` cannot be a training image, or ``None``."""
    if not file.is_file():
        return "not a regular file"
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file name (Keras reads only {', '.join(IMAGE_SUFFIXES)})"
    try:
        # verify() catches truncated or mangled headers; load() catches broken pixel data.
        with Image.open(file) as image:
            image.verify()
        with Image.open(file) as image:
            image.load()
    except Exception as exc:  # Pillow raises many types for bad files; all mean "unreadable"
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None


def _scan(course: Course) -> dict[str, Path]:
    """Every file now in the split class folders, by logical path ``split/class/name``."""
    found: dict[str, Path] = {}
    for split in (*STUDENT_SPLITS, GRADING_SPLIT):
        for name in course.config.dataset.classes:
            folder = _split_dir(course, split) / name
            if folder.is_dir():
                for file in folder.iterdir():
                    found[f"{split}/{name}/{file.name}"] = file
    return found


def _hash_tree(course: Course, *, progress: Progress | None) -> dict[str, str]:
    files = sorted(_scan(course).items())
    hashes = {}
    for done, (key, path) in enumerate(files, start=1):
        hashes[key] = _sha256(path)
        report(progress, done, len(files), key)
    return hashes


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(course: Course, *, files: dict[str, str], settings: dict[str, object]) -> None:
    path = course.path(course.config.dataset.manifest)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        **settings,
        "student_splits_dir": _display(course, student_splits_dir(course)),
        "grading_split_dir": _display(course, grading_split_dir(course)),
        "files": dict(sorted(files.items())),
    }
    # Stable text (sorted keys, fixed indent) so that git shows a real change as a small diff.
    path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")


def _display(course: Course, path: Path) -> str:
    try:
        return str(path.relative_to(course.root))
    except ValueError:
        return str(path)


def _read_manifest(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"no dataset manifest at {path}",
                           hint="run `course data build` first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable JSON ({exc})",
                           hint="restore it from git or run `course data build`") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DatasetError(f"{path} has no \"files\" table",
                           hint="restore it from git or run `course data build`")
    return manifest
