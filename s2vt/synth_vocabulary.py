"""What the synthetic benchmark can show, and the words that name it.

The attribute values (colours, shapes, motions, sizes, backgrounds), the containers and
frame formats the clips are written in, and the phrase tables that both write the
reference captions (:mod:`s2vt.synth`) and read back what a predicted caption names
(:mod:`s2vt.synth_attributes`). Kept apart from the generator so that scoring a caption
needs only these tables.
"""

from __future__ import annotations

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (20, 185, 45),
    "blue": (30, 70, 235),
    "yellow": (250, 225, 0),
    "purple": (150, 30, 210),
    "orange": (255, 130, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "rectangle")
MOTIONS: tuple[str, ...] = (
    "left", "right", "up", "down", "bounce", "grow", "shrink", "spin", "still",
)
SIZES: dict[str, float] = {"big": 0.40, "small": 0.24}  # diameter / frame height
# Achromatic backgrounds never share an object's colour; "checkered" is the textured one.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "black": (25, 25, 25),
    "white": (228, 228, 228),
    "checkered": (95, 95, 95),
}
# Rotation is invisible on a circle, so circles never spin.
SPIN_SHAPES: tuple[str, ...] = tuple(shape for shape in SHAPES if shape != "circle")

# suffix, FFmpeg encoder, share of clips: mostly H.264, some MSVD-like MPEG-4 .avi and VP9.
CONTAINERS: tuple[tuple[str, str, float], ...] = (
    (".mp4", "libx264", 0.7),
    (".avi", "mpeg4", 0.15),
    (".webm", "libvpx-vp9", 0.15),
)
RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (160, 120), (192, 144), (224, 168), (256, 192), (288, 216), (320, 240),
)
FRAME_RATES: tuple[int, ...] = (15, 20, 24, 25, 30)
DURATION_RANGE: tuple[float, float] = (1.0, 4.0)

# The words that name each attribute value, used both to write captions and to read the
# attribute a predicted caption names (s2vt.synth_attributes; multi-word phrases match as
# whole token runs).
ATTRIBUTE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "color": {
        "red": ("red",),
        "green": ("green",),
        "blue": ("blue",),
        "yellow": ("yellow",),
        "purple": ("purple", "violet"),
        "orange": ("orange",),
    },
    "shape": {
        "circle": ("circle", "ball", "disc"),
        "square": ("square", "box"),
        "triangle": ("triangle",),
        "star": ("star",),
        "rectangle": ("rectangle", "bar"),
    },
    "motion": {
        "left": ("left",),
        "right": ("right",),
        "up": ("up", "rises", "rising"),
        "down": ("down", "falls", "falling", "drops", "dropping"),
        "bounce": ("bounces", "bouncing", "bounce", "jumps", "jumping"),
        "grow": ("grows", "growing", "grow", "bigger", "expands", "expanding"),
        "shrink": ("shrinks", "shrinking", "shrink", "smaller"),
        "spin": ("spins", "spinning", "spin", "rotates", "rotating", "turns around",
                 "turning around"),
        "still": ("still", "does not move", "not moving", "in place"),
    },
    "size": {
        "big": ("big", "large"),
        "small": ("small", "little"),
    },
}

# Verb phrases per motion: third person ("moves left") and progressive ("moving left").
MOTION_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "left": {"verb": ("moves to the left", "moves left", "slides to the left", "goes left"),
             "ing": ("moving to the left", "moving left", "sliding left", "going left")},
    "right": {"verb": ("moves to the right", "moves right", "slides to the right",
                       "goes right"),
              "ing": ("moving to the right", "moving right", "sliding right", "going right")},
    "up": {"verb": ("moves up", "goes up", "rises", "slides up"),
           "ing": ("moving up", "going up", "rising")},
    "down": {"verb": ("moves down", "goes down", "falls", "drops"),
             "ing": ("moving down", "going down", "falling")},
    "bounce": {"verb": ("bounces", "bounces up and down", "jumps up and down"),
               "ing": ("bouncing", "bouncing up and down", "jumping")},
    "grow": {"verb": ("grows", "gets bigger", "expands"),
             "ing": ("growing", "getting bigger", "expanding")},
    "shrink": {"verb": ("shrinks", "gets smaller"),
               "ing": ("shrinking", "getting smaller")},
    "spin": {"verb": ("spins", "rotates", "spins around", "turns around"),
             "ing": ("spinning", "rotating", "turning around")},
    "still": {"verb": ("stays still", "does not move", "stays in place"),
              "ing": ("standing still", "not moving", "staying in place")},
}
BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "gray": ("gray", "grey"),
    "black": ("black", "dark"),
    "white": ("white",),
    "checkered": ("checkered", "tiled"),
}
# Motions that need the whole size range, so their objects have no single size.
SIZE_CHANGING: tuple[str, ...] = ("grow", "shrink")
