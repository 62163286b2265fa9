"""What the stages are: the ladder as a list (`--list`), and one rung's assembled model as a tree (`--show`).

Each rung subclasses the one before, so its pieces are spread over several stage files; the tree
names, for every module, the stage file that defines its class and the files it inherits from,
with its parameters and their shapes.
"""
from __future__ import annotations

from typing import Any, Mapping

from common.profiles import Profile, make_configs, settings_for


def build_model(stage, profile: Profile, overrides: Mapping[str, Any], vocab_size: int):
    model_config, _ = make_configs(stage.Config, settings_for(profile, stage.name, overrides), vocab_size)
    return stage.Model(model_config)


def list_stages(stages: Mapping[str, Any], profile: Profile, overrides: Mapping[str, Any], vocab_size: int) -> None:
    print(f"{'#':>2}  {'stage':<12} {'params':>11}  adds   (profile {profile.name})")
    for i, (name, stage) in enumerate(stages.items(), 1):
        params = sum(p.numel() for p in build_model(stage, profile, overrides, vocab_size).parameters())
        print(f"{i:>2}  {name:<12} {params:>11,}  {stage.adds}")


def defined_in(module) -> str:
    """The stage files that define a module's class, newest first (its class, then what it inherits
    from): `stages/dropout.py < residual.py < multi_head.py < single_head.py`; `torch.nn` for PyTorch's own."""
    files = list(dict.fromkeys(c.__module__.split(".", 1)[1] + ".py" for c in type(module).__mro__
                               if c.__module__.startswith("stages.")))
    return "stages/" + " < ".join(files) if files else "torch.nn"


def tree_lines(module, name: str = "", depth: int = 0) -> list[str]:
    """One line per module: indented name, class, defining file, parameters; then its own parameters' shapes."""
    params = sum(p.numel() for p in module.parameters())
    label = f"{'  ' * depth}{name + ': ' if name else ''}{type(module).__name__}"
    lines = [f"{label:<40} {params:>9,}  {defined_in(module)}"]
    for pname, p in module.named_parameters(recurse=False):
        lines.append(f"{'  ' * (depth + 1)}{pname} {tuple(p.shape)}")
    for child_name, child in module.named_children():
        lines.extend(tree_lines(child, child_name, depth + 1))
    return lines


def show_stage(stages: Mapping[str, Any], name: str, profile: Profile, overrides: Mapping[str, Any],
               vocab_size: int) -> None:
    """Print the assembled model of one rung, and what it adds over the one before."""
    names = list(stages)
    model = build_model(stages[name], profile, overrides, vocab_size)
    before = names[names.index(name) - 1] if names.index(name) > 0 else None
    print(f"{name} (profile {profile.name}): {sum(p.numel() for p in model.parameters()):,} parameters")
    print(f"adds over {before}: {stages[name].adds}" if before else f"the first rung: {stages[name].adds}")
    print(f"\n{'module':<40} {'params':>9}  defined in (the class's stage file < the files it inherits from)")
    print("\n".join(tree_lines(model)))
