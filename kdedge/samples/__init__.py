"""Sample data written for kdedge (see mangaassist/README.md)."""

from pathlib import Path

SAMPLES = Path(__file__).parent
MANGAASSIST = SAMPLES / "mangaassist"
MANGAASSIST_RECIPE = MANGAASSIST / "recipe.toml"
