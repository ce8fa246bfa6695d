"""``python -m s2vt`` (also what ``torchrun -m s2vt`` starts)."""

from s2vt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
