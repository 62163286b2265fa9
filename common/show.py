"""What the stages are: the ladder as a list (`--list`), and one rung's assembled model as a tree (`--show`).

Each rung subclasses the one before, so its pieces are spread over several stage files; the tree
names, for every module, the stage file that defines its class and the files it inherits from,
with its parameters and their shapes.
"""
from __future__ import annotations

from typing import Any, Mapping

from common.errors import LadderError
from common.profiles import Profile, make_configs, settings_for


def build_model(stage, profile: Profile, overrides: Mapping[str, Any], vocab_size: int):
    """The rung's model on the CPU, after checking it fits (a huge block_size alone allocates T x T masks)."""
    import torch

    from common.memory import check_fits
    model_config, train_config = make_configs(stage.Config, settings_for(profile, stage.name, overrides), vocab_size)
    check_fits(model_config, train_config.batch_size, torch.device("cpu"), stage.name)
    return stage.Model(model_config)


def ladder_groups(ladders: Mapping[str, list[str]], left_out: list[str]) -> dict[str, list[str]]:
    """--list's groups: each ladder under its title, then the pieces left out of the last one."""
    titles = {"lecture": "the lecture's ladder", "modern": "the modern ladder (from the lecture's GPT without dropout)"}
    groups = {titles.get(name, f"the {name} ladder"): list(rungs) for name, rungs in ladders.items()}
    top = list(ladders.values())[-1][-1]
    return {**groups, f"pieces measured against {top}, left out of the ladder": list(left_out)} if left_out else groups


def list_stages(stages: Mapping[str, Any], profile: Profile, overrides: Mapping[str, Any], vocab_size: int,
                groups: Mapping[str, list[str]] | None = None) -> None:
    """Each group of stages (a ladder, say) under its title: number, name, parameters, what it adds. A rung the
    settings do not suit says why in its row; settings that suit no rung are one error."""
    groups = groups or {"": list(stages)}
    rows, refused = [], []
    for title, names in groups.items():
        rows.append(f"    {title}" if title else None)
        for i, name in enumerate(names, 1):
            try:
                model = build_model(stages[name], profile, overrides, vocab_size)
                params, note = f"{sum(p.numel() for p in model.parameters()):,}", ""
            except LadderError as exc:  # these settings suit other rungs, not this one
                refused.append(exc)
                params, note = "-", f"  (not with these settings: {str(exc).removesuffix(': change it with --set')})"
            rows.append(f"{i:>2}  {name:<12} {params:>11}  {stages[name].adds}{note}")
    if len(refused) == sum(map(len, groups.values())):
        raise refused[0]
    print(f"{'#':>2}  {'stage':<12} {'params':>11}  adds   (profile {profile.name})")
    print("\n".join(row for row in rows if row is not None))


def defined_in(module) -> str:
    """The stage files that define a module's class, newest first (its class, then what it inherits
    from): `stages/dropout.py < residual.py < multi_head.py < single_head.py`; `torch.nn` for PyTorch's own."""
    files = list(dict.fromkeys(c.__module__.split(".", 1)[1] + ".py" for c in type(module).__mro__
                               if c.__module__.startswith("stages.")))
    return "stages/" + " < ".join(files) if files else "torch.nn"


def signature(module) -> tuple:
    """What a module is, for telling repeats apart: its submodules' classes and its parameters' shapes."""
    return (tuple((n, type(m).__name__) for n, m in module.named_modules()),
            tuple((n, tuple(p.shape)) for n, p in module.named_parameters()))


def shape_map(model) -> dict[str, tuple]:
    """Every module path (block numbers as *) with its class name and its own parameters' shapes."""
    return {".".join("*" if part.isdigit() and i == 1 and path.startswith("blocks.") else part
                     for i, part in enumerate(path.split("."))) or "(model)":
            (type(m).__name__, tuple((n, tuple(p.shape)) for n, p in m.named_parameters(recurse=False)))
            for path, m in model.named_modules()}


def new_paths(model, before) -> set[str]:
    """The module paths of `model` that `before` lacks or has with other parameter shapes (blocks as *)."""
    if before is None:
        return set()
    mine, theirs = shape_map(model), shape_map(before)
    return {path for path, (_, shapes) in mine.items() if path not in theirs or theirs[path][1] != shapes}


def tree_lines(module, name: str = "", depth: int = 0, path: str = "", new: frozenset = frozenset()) -> list[str]:
    """One line per module: a + if this rung adds it, indented name, class, parameters, defining file; then its
    own parameters' shapes. Identical numbered children (the blocks) are shown once, then counted."""
    params = sum(p.numel() for p in module.parameters())
    key = ".".join("*" if part.isdigit() and i == 1 and path.startswith("blocks.") else part
                   for i, part in enumerate(path.split("."))) if path else "(model)"
    label = f"{'+' if key in new else ' '} {'  ' * depth}{name + ': ' if name else ''}{type(module).__name__}"
    lines = [f"{label:<42} {params:>9,}  {defined_in(module)}"]
    for pname, p in module.named_parameters(recurse=False):
        lines.append(f"  {'  ' * (depth + 1)}{pname} {tuple(p.shape)}")
    children = list(module.named_children())
    i = 0
    while i < len(children):
        child_name, child = children[i]
        same = i + 1
        while (same < len(children) and child_name.isdigit() and children[same][0].isdigit()
               and signature(children[same][1]) == signature(child)):
            same += 1
        lines.extend(tree_lines(child, child_name, depth + 1, f"{path}.{child_name}" if path else child_name, new))
        if same - i > 1:
            repeats = [n for n, _ in children[i + 1:same]]
            span = repeats[0] if len(repeats) == 1 else f"{repeats[0]}-{repeats[-1]}"
            lines.append(f"  {'  ' * (depth + 1)}{span}: {same - i - 1} more "
                         f"{type(child).__name__}, each as {child_name} above "
                         f"({(same - i - 1) * sum(p.numel() for p in child.parameters()):,} parameters)")
        i = same
    return lines


def vocab_size_for(folder, data: str | None) -> int:
    """The corpus's vocabulary size; without a corpus here, the one the folder's saved runs were trained on
    (so --list and --show work on a fresh clone, offline)."""
    from common.corpus import locate_corpus
    from common.data import load_dataset
    from common.io import read_json
    try:
        return load_dataset(locate_corpus(data, download_if_missing=False)).tokenizer.vocab_size
    except LadderError:
        for record in sorted(folder.glob("runs/*/seed*/run.json")):
            try:
                return int(read_json(record)["model_config"]["vocab_size"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return load_dataset(data).tokenizer.vocab_size  # download it (or say why it cannot)


def show_stage(stages: Mapping[str, Any], name: str, profile: Profile, overrides: Mapping[str, Any],
               vocab_size: int) -> None:
    """Print the assembled model of one rung, marking what it adds over the one before."""
    names = list(stages)
    model = build_model(stages[name], profile, overrides, vocab_size)
    before = names[names.index(name) - 1] if names.index(name) > 0 else None
    previous = build_model(stages[before], profile, overrides, vocab_size) if before else None
    new = new_paths(model, previous)
    count = sum(p.numel() for p in model.parameters())
    print(f"{name} (profile {profile.name}): {count:,} parameters")
    if previous is None:
        print(f"the first rung: {stages[name].adds}")
    else:
        change = count - sum(p.numel() for p in previous.parameters())
        blocks = [len(getattr(m, "blocks", ())) for m in (model, previous)]
        print(f"adds over {before}: {stages[name].adds} ({change:+,} parameters"
              f"{f'; {blocks[0]} blocks, {before} has {blocks[1]}' if blocks[0] != blocks[1] else ''})")
        print(f"+ marks what {before} lacks or shapes differently: "
              f"{', '.join(sorted(new)) or 'nothing, the change is in forward()'}")
    print(f"\n  {'module':<40} {'params':>9}  defined in (the class's stage file < the files it inherits from)")
    print("\n".join(tree_lines(model, new=frozenset(new))))
