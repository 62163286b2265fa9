"""The shared core of GPT Ladder: data, configuration, training, evaluation, generation.

Nothing in here knows about a particular stage: every stage's model honours one contract,
`Model(config)` and `forward(idx, targets=None) -> (logits, loss)`, and the core works on that.
"""
