"""End-to-end recipes that chain the stages for one benchmark, installed as ``s2vt.pipelines``.

The folder sits at the top of the repository, but it is installed under the s2vt name, never
as a top-level package ``pipelines``. The recipes' YAML files live in the repository's
``configs/``, installed as ``s2vt/configs/``: in both layouts that folder is next to the
folder above this one, so :data:`CONFIG_ROOT` finds it from a checkout and from a wheel.
"""

from pathlib import Path

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
