__version__ = "0.1.0"

# The distribution (PyPI) name, as pyproject.toml's [project] name spells it;
# the import name stays cnorm (as scikit-learn installs sklearn).  "cnorm" on
# PyPI is an unrelated project, so every install hint must name this one.
DISTRIBUTION = "cnorm-cpu"
