#!/usr/bin/env python3
"""GPT Ladder's command line: train the stages, tabulate and chart the loss ladder, sample text.

    python runner.py                       # both ladders (the lecture's, the modern one), default profile
    python runner.py --ladder modern       # one ladder; --stage residual: one stage (several: --stage mlp rope)
    python runner.py --list                # the stages, what each adds, parameter counts
    python runner.py --sample --stage residual --prompt "ROMEO:"   # also --num-samples, --sample-seed
    python runner.py --show dropout        # the assembled model, and the stage file of each piece
    python runner.py --chart               # redraw table and chart from saved results
    python runner.py --attention multi_head --prompt "ROMEO:"   # what its heads attend to
    python runner.py --study dropout       # a regime study (--study all: every one; make studies)
    python runner.py --sweep learning_rate=1e-3,1e-2 --stage layernorm    # any rung against its predecessor

The command line only: parse, check, dispatch, print. What it dispatches to lives in common/:
`run.py` (one run, to its run.json), `jobs.py` (many runs, signals, the folder lock),
`report.py` (each ladder's table, chart, samples page; a study's) and `sampling.py` (text from a checkpoint).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from common.choices import check_choices  # noqa: E402  (light imports first: --help stays fast)
from common.errors import LadderError  # noqa: E402
from common.jobs import FolderLock, Stop, check_writable, training_tasks  # noqa: E402
from common.run import DEFAULT_OUT, Stage, results_folder, same_options  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes get one line saying what is wrong and where to look, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see python runner.py --help)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers separated by spaces, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers below 2**32, got {value}")
    return value


def build_parser(stage_names: list[str], profile_names: list[str],
                 study_names: list[str] | None = None, ladder_names: list[str] | None = None) -> argparse.ArgumentParser:
    p = _Parser(
        prog="runner.py", description="Train the GPT Ladder stages and draw the loss ladder.", allow_abbrev=False,
        epilog="The verdict rule and the profiles: docs/verdicts-and-profiles.md; every use: docs/usage.md.")
    what = p.add_argument_group("what to do (default: train)")
    what.add_argument("--stage", nargs="+", choices=stage_names, metavar="STAGE",
                      help=f"stage(s) to train or sample, in any order; one of: {', '.join(stage_names)}")
    what.add_argument("--ladder", nargs="+", choices=ladder_names, metavar="LADDER",
                      help=f"train one ladder's rungs: {', '.join(ladder_names or [])} (default: all, without --stage)")
    what.add_argument("--all", action="store_true", help="train both ladders in order (the default when no --stage)")
    what.add_argument("--list", action="store_true", help="list the stages: name, what it adds, parameters under the profile")
    what.add_argument("--show", choices=stage_names, metavar="STAGE",
                      help="print a stage's assembled model as a tree: modules, the stage file defining each, shapes")
    what.add_argument("--sample", action="store_true",
                      help="print text from a trained stage: its checkpoint, else the committed weights (no training)")
    what.add_argument("--attention", choices=stage_names, metavar="STAGE",
                      help="draw a rung's attention over --prompt (a panel per head, a row per layer) and print a "
                           "per-head summary; weights as for --sample (no training)")
    what.add_argument("--chart", "--report", dest="chart", action="store_true",
                      help="redraw tables, charts, samples pages, weights and attention maps from saved results (no training)")
    study = p.add_argument_group("regime studies: a rung against its baseline over a swept setting (see docs/studies.md)")
    study.add_argument("--study", nargs="+", choices=[*(study_names or []), "all"], metavar="NAME",
                       help=f"train (or with --chart redraw) a named study: {', '.join(study_names or [])}, or all; "
                            "writes <out>/<profile>/studies/<name>/study.csv, .md and .png")
    study.add_argument("--sweep", metavar="NAME=V1,V2,...",
                       help="a study of your own: the one --stage against --baseline (default: the rung before "
                            "it) over these values of a setting, e.g. --sweep learning_rate=1e-3,3e-3,1e-2 --stage "
                            "layernorm, or --sweep n_layer=1,2,4 --stage residual --baseline-set residual=false")
    study.add_argument("--baseline", choices=stage_names, metavar="STAGE",
                       help="with --sweep: the stage the rung is compared against (default: the rung before it, "
                            "or the rung itself with --baseline-set)")
    study.add_argument("--baseline-set", dest="baseline_set", action="append", default=[], metavar="NAME=VALUE",
                       help="with --sweep: a setting the baseline side changes, e.g. --baseline-set residual=false")
    how = p.add_argument_group("how to train")
    how.add_argument("--profile", choices=profile_names, help="named hyperparameters (default: gpu with CUDA, else cpu)")
    how.add_argument("--seeds", nargs="+", type=_seed, metavar="N",
                     help="one or more non-negative seeds per stage (default: the profile's)")
    how.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: auto, CUDA then MPS then CPU)")
    how.add_argument("--max-iters", type=int, help="override the number of training steps of every stage")
    how.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="override any hyperparameter, e.g. --set learning_rate=3e-4 --set n_layer=2 (repeatable)")
    how.add_argument("--jobs", type=int,
                     help="independent runs trained in parallel processes (default: one per CPU core on the "
                          "CPU, sharing its threads; one per GPU with several GPUs, worker i on cuda:i; else 1). "
                          "One run on several GPUs: torchrun --nproc_per_node=N runner.py ... (see docs/usage.md)")
    how.add_argument("--compile", action="store_true", help="train torch.compile(model): the same runs, faster steps once compiled (docs/usage.md)")
    how.add_argument("--force", action="store_true", help="retrain even when a matching saved result exists")
    how.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    how.add_argument("--data", help="path to the corpus text file (default: $GPT_LADDER_DATA, the cache, or download)")
    how.add_argument("--out", default=str(DEFAULT_OUT), type=os.path.expanduser, help="results go to <out>/<profile>/")
    how.add_argument("--no-progress", action="store_true", help="no progress bars")
    smp = p.add_argument_group("sampling (with --sample; --seeds picks the training seed's checkpoint)")
    smp.add_argument("--num-samples", type=int, default=1, help="samples to print (default 1)")
    smp.add_argument("--sample-seed", type=_seed, default=0, help="seed of the first sample (default 0: "
                     "the same options print the same text; sample i uses this seed + i)")
    smp.add_argument("--tokens", type=int, default=500, help="characters to generate per sample (default 500)")
    smp.add_argument("--temperature", type=float, default=1.0, help="softmax temperature, 0.01 to 100 (default 1.0)")
    smp.add_argument("--top-k", type=int, help="sample only from the k most likely characters")
    prompt = smp.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", help="text to start from (default: a newline)")
    prompt.add_argument("--prompt-file", type=os.path.expanduser, help="read the text to start from from this file")
    return p


def resume_command(argv: list[str]) -> str:
    """The command that continues this one: the same arguments with --resume (--force kept: common.run.start_model)."""
    argv = [a for a in argv if a != "--resume"]
    ranks = os.environ.get("LOCAL_WORLD_SIZE", "1")  # set by torchrun
    launcher = f"torchrun --nproc_per_node={ranks} runner.py " if ranks != "1" else "python runner.py "
    return launcher + shlex.join(argv + ["--resume"]) + ("  # --force: runs finished above train again" * ("--force" in argv))


def main(argv: list[str] | None = None) -> int:
    stop = Stop()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv, stop)
    except LadderError as exc:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank meets the same error: one says it
            print(f"error: {exc}", file=sys.stderr)
        else:  # give rank 0 time to say it before torchrun, seeing this rank exit, stops the others
            time.sleep(2)
        return 2
    except KeyboardInterrupt:
        if stop.installed:  # a second Ctrl-C while training
            print(f"\ninterrupted at once: finished runs are kept, the current run keeps its checkpoint from its "
                  f"last evaluation.\nResume with: {resume_command(argv)}", file=sys.stderr)
        else:
            print("\ninterrupted", file=sys.stderr)
        return stop.exit_code()
    except BrokenPipeError:  # the reader went away (e.g. `--sample | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # 128 + SIGPIPE, as a command killed by the closed pipe would
    except OSError as exc:  # e.g. the disk filled up, or a folder became unwritable mid-run
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write or read{where} ({exc.strerror or exc}): free some space or fix the "
              f"permissions, then run the command again (with --resume, if it was training)", file=sys.stderr)
        return 2
    finally:
        stop.uninstall()


def _main(argv: list[str], stop: Stop) -> int:
    from common.profiles import PROFILES
    from common.studies import STUDIES
    from stages import ALL_STAGE_NAMES, LADDERS, MODERN_LEFT_OUT

    parser = build_parser(ALL_STAGE_NAMES, list(PROFILES), list(STUDIES), list(LADDERS))
    args = parser.parse_args(argv)
    check_choices(args, argv)
    import torch

    from stages import STAGES

    from common.corpus import corpus_id
    from common.profiles import get_profile, parse_overrides

    studies = list(STUDIES) if args.study and "all" in args.study else list(dict.fromkeys(args.study or []))
    if args.profile is None and studies:  # a named study is measured under its own profile
        args.profile = STUDIES[studies[0]].profile
    if args.profile is None:
        args.profile = "gpu" if torch.cuda.is_available() else "cpu"
        if not (args.list or args.show or args.sample or args.attention or args.chart):  # a note, not their output
            print(f"no --profile given: using '{args.profile}' "
                  f"({'CUDA is available' if args.profile == 'gpu' else 'CUDA is not available'})", file=sys.stderr)
    profile = get_profile(args.profile)
    overrides = parse_overrides(args.overrides, [m.Config for m in STAGES.values()])
    if args.max_iters is not None:
        if args.max_iters <= 0:
            raise LadderError(f"--max-iters must be positive, got {args.max_iters}")
        overrides["max_iters"] = args.max_iters
    seeds = list(dict.fromkeys(args.seeds)) if args.seeds else list(profile.seeds)
    if not args.out.strip():
        raise LadderError("--out must name a folder, got an empty string")
    if args.jobs is not None and args.jobs < 1:
        raise LadderError(f"--jobs must be at least 1, got {args.jobs}")
    stages = {name: Stage.from_module(name, module) for name, module in STAGES.items()}
    folder = results_folder(args.out, profile.name, overrides, corpus_id(args.data))  # another corpus: its own

    if args.list or args.show:
        from common.show import ladder_groups, list_stages, show_stage, vocab_size_for
        vocab_size = vocab_size_for(folder, args.data)
        if args.show:
            show_stage(stages, args.show, profile, overrides, vocab_size)
        else:
            list_stages(stages, profile, overrides, vocab_size, ladder_groups(LADDERS, MODERN_LEFT_OUT))
        return 0
    if args.sample:
        if not args.stage or len(args.stage) != 1:
            raise LadderError("--sample needs exactly one --stage, e.g. --sample --stage residual")
        from common.sampling import print_samples, read_prompt
        print_samples(folder, stages[args.stage[0]], profile.name, seeds[0], args.device, seed_given=bool(args.seeds),
                      tokens=args.tokens, prompt=read_prompt(args.prompt, args.prompt_file),
                      temperature=args.temperature, top_k=args.top_k, num_samples=args.num_samples,
                      sample_seed=args.sample_seed)
        return 0
    if args.attention:
        from common.attention import show_attention
        from common.sampling import read_prompt
        show_attention(folder, stages[args.attention], profile.name, seeds[0], bool(args.seeds),
                       read_prompt(args.prompt, args.prompt_file), args.data)
        return 0
    if studies or args.sweep:
        return run_studies(args, argv, stop, profile, overrides, stages, studies)
    if args.baseline or args.baseline_set:
        raise LadderError("--baseline and --baseline-set describe a study: use them with --sweep")
    if args.chart:
        return redraw(folder, profile, overrides, stages)
    tasks = training_tasks({name: LADDERS[name] for name in (args.ladder or LADDERS)}, ALL_STAGE_NAMES,
                           None if args.all else args.stage, seeds if args.seeds else None, profile)
    return train(args, argv, stop, profile, overrides, stages, tasks)


def report_ladders(folder, profile, overrides, stages) -> None:
    """Every ladder's table, chart and samples page from the folder's saved runs (common.report.write_ladders)."""
    from common.ladder import LADDER_ABOUT, ladder_stages
    from common.report import write_ladders
    from stages import LADDERS
    write_ladders(folder, profile, ladder_stages(stages, LADDERS), overrides, LADDER_ABOUT)


def redraw(folder, profile, overrides, stages) -> int:
    """--chart: every ladder's report from the folder's saved runs (no training)."""
    from common.results import has_results
    if not has_results(folder):
        raise LadderError(f"no results in {folder}: train first (python runner.py --profile {profile.name}"
                          f"{same_options(folder, profile.name)})")
    check_writable(folder)
    with FolderLock(folder):
        report_ladders(folder, profile, overrides, stages)
    return 0


def train(args, argv: list[str], stop: Stop, profile, overrides, stages, tasks: list[tuple[str, int]]) -> int:
    """Train the (stage, seed) runs into the profile's folder, then write the report of each ladder with runs."""
    what = "; ".join(f"{st} seeds {[s for n, s in tasks if n == st]}" for st in dict.fromkeys(n for n, _ in tasks))
    return trained(args, argv, stop, profile, overrides, stages, lambda options: tasks,
                   lambda ctx: report_ladders(ctx.folder, profile, overrides, stages), what)


def trained(args, argv, stop: Stop, profile, overrides, stages, make_tasks, report, what: str, folder=None,
            desc: str = "ladder") -> int:
    """Train the runs of a command (common.jobs.train_command); 0, or the stop's exit status and how to resume."""
    from common.jobs import train_command
    from common.run import RunOptions
    options = RunOptions(profile.name, overrides, args.out, args.data, args.device, args.force, args.resume,
                         progress=not args.no_progress, compile=args.compile)
    finished, folder, is_main = train_command(options, profile, stages, make_tasks, report, what, stop,
                                              args.jobs, folder, desc)
    if finished:
        return 0
    if is_main:
        print(f"interrupted: finished runs are kept in {folder}.\nResume with: {resume_command(argv)}",
              file=sys.stderr)
    return stop.exit_code()


def run_studies(args, argv: list[str], stop: Stop, profile, overrides, stages, names: list[str]) -> int:
    """Train (or, with --chart, redraw) each chosen study, one after another, each under its own lock."""
    from common.report import redraw_study, write_study_report
    from common.studies import choose_studies, print_study, study_folder, study_tasks
    from common.corpus import corpus_id
    from stages import predecessor
    seeds, drawn = tuple(dict.fromkeys(args.seeds)) if args.seeds else None, 0
    profile_folder = results_folder(args.out, profile.name, overrides, corpus_id(args.data))
    for study in choose_studies(names, args.sweep, args.stage, args.baseline, args.baseline_set, profile, overrides,
                                stages, seeds, {name: predecessor(name) for name in stages}):
        folder = study_folder(profile_folder, study.name)

        def report(ctx=None, study=study, folder=folder) -> None:
            print_study(write_study_report(folder, study, profile, overrides), study, folder)
        if args.chart:
            drawn += redraw_study(folder, study, profile, report, skip_missing="all" in (args.study or []))
            continue
        what = (f"study {study.name}: {study.rung} against {study.against} over {study.setting} = "
                f"{', '.join(map(str, study.values))}, seeds {list(study.seeds)}")
        code = trained(args, argv, stop, profile, overrides, stages,
                       lambda options, study=study, folder=folder: study_tasks(study, folder, options), report,
                       what, folder, f"study {study.name}")
        if code:  # stopped
            return code
    if args.chart and not drawn:  # --study all found nothing to redraw
        raise LadderError(f"no study has runs in {profile_folder / 'studies'}: train one first (--study NAME)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
