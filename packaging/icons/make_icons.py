"""Draw Atelier's icon and write it as PNG (1024 px), Windows .ico and macOS .icns.

Run from the repository root: ``python packaging/icons/make_icons.py``. The outputs are committed, so a
build never needs this script; rerun it only to change the icon. Drawn at 4x and downsampled for clean edges.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 1024
SCALE = 4
BACKGROUND_TOP = (76, 58, 201)  # indigo
BACKGROUND_BOTTOM = (214, 74, 138)  # rose
INK = (255, 255, 255)
ACCENT = (255, 214, 102)  # warm yellow


def draw(size: int = SIZE) -> Image.Image:
    """The icon: a rounded square with a vertical gradient, a bold "A" and a small spark."""
    big = size * SCALE
    gradient = Image.new("RGB", (1, big))
    for y in range(big):
        t = y / (big - 1)
        pairs = zip(BACKGROUND_TOP, BACKGROUND_BOTTOM, strict=True)
        gradient.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in pairs))
    gradient = gradient.resize((big, big))
    mask = Image.new("L", (big, big), 0)
    inset = round(big * 0.06)
    ImageDraw.Draw(mask).rounded_rectangle(
        (inset, inset, big - inset, big - inset), radius=round(big * 0.2), fill=255
    )
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    image.paste(gradient, (0, 0), mask)

    pen = ImageDraw.Draw(image)
    stroke = round(big * 0.085)
    apex = (big * 0.5, big * 0.22)
    left = (big * 0.25, big * 0.78)
    right = (big * 0.75, big * 0.78)
    pen.line([left, apex, right], fill=INK, width=stroke, joint="curve")
    for x, y in (left, apex, right):
        r = stroke / 2
        pen.ellipse((x - r, y - r, x + r, y + r), fill=INK)
    pen.line([(big * 0.35, big * 0.58), (big * 0.65, big * 0.58)], fill=INK, width=round(stroke * 0.8))

    # A four-pointed spark: generation.
    cx, cy, outer, inner = big * 0.76, big * 0.27, big * 0.11, big * 0.03
    points = []
    for i in range(8):
        radius = outer if i % 2 == 0 else inner
        dx, dy = [(0, -1), (0.7, -0.7), (1, 0), (0.7, 0.7), (0, 1), (-0.7, 0.7), (-1, 0), (-0.7, -0.7)][i]
        points.append((cx + dx * radius, cy + dy * radius))
    pen.polygon(points, fill=ACCENT)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    icon = draw()
    icon.save(HERE / "atelier.png", optimize=True)
    ico_sizes = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
    icon.save(HERE / "atelier.ico", sizes=ico_sizes)
    icon.save(HERE / "atelier.icns")
    for size in (16, 32, 48, 64, 128, 256, 512):
        icon.resize((size, size), Image.Resampling.LANCZOS).save(HERE / f"atelier-{size}.png", optimize=True)


if __name__ == "__main__":
    main()
