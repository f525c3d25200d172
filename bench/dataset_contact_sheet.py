"""Draw a contact sheet of generated images, to look at the dataset without building it.

Writes a PNG (default ``bench/out/dataset_contact_sheet.png``, git-ignored) with
rows of handbags and shoes at one difficulty. It draws images in memory with
:func:`autograder.course.datasets.generate_image`; it writes no dataset files.

    .venv/bin/python bench/dataset_contact_sheet.py --difficulty 0.1 --columns 8 --rows 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from autograder.course.datasets import GENERATED_CLASSES, generate_image

_THUMB_PX = 160
_LABEL_PX = 14


def draw_sheet(*, seed: int, difficulty: float, rows: int, columns: int,
               split: str = "train", first_index: int = 0) -> Image.Image:
    """``rows`` pairs of rows (one per class), ``columns`` thumbnails each."""
    band = _LABEL_PX + _THUMB_PX
    sheet = Image.new("RGB", (columns * _THUMB_PX, 2 * rows * band), "white")
    draw = ImageDraw.Draw(sheet)
    for r in range(rows):
        for k, class_name in enumerate(GENERATED_CLASSES):
            top = (2 * r + k) * band
            draw.text((4, top + 1), f"{class_name} (difficulty={difficulty:g})", fill="black")
            for c in range(columns):
                image = generate_image(seed=seed, split=split, class_name=class_name,
                                       index=first_index + r * columns + c, difficulty=difficulty)
                sheet.paste(image.resize((_THUMB_PX, _THUMB_PX)), (c * _THUMB_PX, top + _LABEL_PX))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20_240_917)
    parser.add_argument("--difficulty", type=float, default=0.1)
    parser.add_argument("--rows", type=int, default=2, help="pairs of rows (handbags, shoes)")
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/dataset_contact_sheet.png"))
    args = parser.parse_args()
    sheet = draw_sheet(seed=args.seed, difficulty=args.difficulty, rows=args.rows,
                       columns=args.columns, first_index=args.first_index)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
