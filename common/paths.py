"""Where the tool finds the configs it ships and where the demo lives.

In a clone these folders sit at the repository's root; an installed wheel carries them one level down,
beneath the `hscnet` package (pyproject.toml's package-dir). In both, that is this file's grandparent.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# make demo writes the clone's demo/; an installed package has no clone, so its demo is ./demo.
DEMO = ROOT / "demo" if (ROOT / "pyproject.toml").is_file() else Path("demo")
