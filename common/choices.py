"""Which of the command line's options go together: one thing to do per command, and no choice of what to train
nor sampling option that the chosen thing would ignore silently (runner.py parses, without abbreviations, so
that the options given are the ones written; this says what does not fit, in one line)."""
from __future__ import annotations

import argparse

from common.errors import LadderError

# options that only sampling reads (--prompt and --prompt-file: --attention reads them too)
SAMPLING_ONLY = ("--tokens", "--temperature", "--top-k", "--num-samples", "--sample-seed")
PROMPTS = ("--prompt", "--prompt-file")


def given_flags(argv: list[str]) -> set[str]:
    """The long options written on the command line (--name or --name=value)."""
    return {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}


def check_choices(args: argparse.Namespace, argv: list[str]) -> None:
    """Raise LadderError when the options ask for two things at once, or name one that would be ignored."""
    actions = [flag for flag, on in (("--list", args.list), ("--show", args.show), ("--sample", args.sample),
                                     ("--attention", args.attention), ("--study", args.study),
                                     ("--sweep", args.sweep)) if on]
    if len(actions) > 1:
        raise LadderError(f"{actions[0]} and {actions[1]} are two different things to do: give one per command")
    if args.chart and actions and actions[0] not in ("--study", "--sweep"):
        raise LadderError(f"--chart redraws saved results, {actions[0]} does something else: give one per command")
    trains = [flag for flag, on in (("--stage", args.stage), ("--ladder", args.ladder), ("--all", args.all)) if on]
    if len(trains) > 1:
        raise LadderError(f"{trains[0]} and {trains[1]} each choose what to train: give one of them")
    doer = actions[0] if actions else "--chart" if args.chart else None  # None: train
    if trains and doer and not (trains == ["--stage"] and doer in ("--sample", "--sweep")):
        raise LadderError(f"{doer} does not read {trains[0]} (it chooses what to train): leave {trains[0]} out")
    given = given_flags(argv)
    stray = [flag for flag in (*SAMPLING_ONLY, *PROMPTS) if flag in given]
    if stray and not args.sample and not (args.attention and set(stray) <= set(PROMPTS)):
        readers = "--sample" if stray[0] in SAMPLING_ONLY else "--sample and --attention"
        raise LadderError(f"{stray[0]} is read only by {readers}, which this command does not do: leave it out")
    if (args.sample or args.attention) and args.seeds and len(set(args.seeds)) > 1:
        raise LadderError(f"{actions[0]} reads one trained run: give one seed with --seeds N")
