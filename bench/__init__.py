"""The benchmark (bench.py, the command line, over plan, tasks, measure, machine, report and goals) and the
models it compares against: the lecture's plain gpt.py (reference.py) and a nanoGPT-shaped one (nanogpt_shaped.py)."""
