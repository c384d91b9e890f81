"""Maps the top-level `modeling/` folder to the `aigi.modeling` package (regular and editable installs)."""
from setuptools import find_packages, setup

setup(
    packages=find_packages("src")
    + ["aigi.modeling"]
    + [f"aigi.modeling.{name}" for name in find_packages("modeling")],
)
