"""The nine stages of the ladder, in order. Each module has `Config`, `Model`, `ADDS` and
`LECTURE_VAL_LOSS`; each imports its predecessor's pieces and defines only its own."""
from stages import averaging, bigram, dropout, layernorm, mlp, multi_head, residual, scaled, single_head

STAGES = {
    "bigram": bigram,
    "averaging": averaging,
    "single_head": single_head,
    "multi_head": multi_head,
    "mlp": mlp,
    "residual": residual,
    "layernorm": layernorm,
    "dropout": dropout,
    "scaled": scaled,
}
STAGE_NAMES = list(STAGES)


def predecessor(name: str) -> str | None:
    """The stage before `name` in the ladder (None for the first)."""
    i = STAGE_NAMES.index(name)
    return STAGE_NAMES[i - 1] if i > 0 else None
