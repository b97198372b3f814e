"""Energy benchmark harness for ML training and serving (the command `harness`)."""

# The name the package index knows us by, which is not the import name: "harness" there is another project.
DISTRIBUTION = "energy-bench-harness"
