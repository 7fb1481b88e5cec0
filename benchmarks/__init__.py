"""kefu's benchmarks: answer quality and speed, each against a baseline in the same run,
and the soak (benchmarks/soak/: every promise counted under faults).

`python -m benchmarks [DATA_FOLDER]` runs the first and `python -m benchmarks soak` the
second; each writes its own sections of benchmarks/RESULTS.md.
"""
