"""The benchmark (bench.py) and the lecture's plain gpt.py it compares against (reference.py)."""
