"""s2vt: video to text in the style of S2VT (Venugopalan et al., ICCV 2015).

Heavy libraries (torch, decord, transformers) are imported lazily by the modules that
need them, so ``import s2vt`` and the CLI start fast.
"""

__version__ = "0.1.0"
