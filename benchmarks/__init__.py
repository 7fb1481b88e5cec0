"""kefu's benchmarks: answer quality and speed, each against a baseline in the same run.

`python -m benchmarks [DATA_FOLDER]` runs them all and writes benchmarks/RESULTS.md.
"""
