"""What attention learned: each head's weights over a prompt, drawn, and a per-head summary in numbers.

The weights are the model's own. A rung's attention is found by what its modules have, never by
the stage's name: a module with `attention_weights(q, k)` (a learned head: its causal softmax, one
head or several batched) is wrapped on the instance while the model runs, so every forward pass
records the very tensor the head multiplies its values by; a module holding a fixed `wei` buffer
(the averaging rung's lower-triangular average, the lecture's name) is read through a forward hook,
as the slice `wei[:T, :T]` its forward uses. A head set to the fused kernel (`fused`) computes no
weights, so it runs the explicit form while it is drawn: the tests pin the two to each other, and
check that the recorded weights times the values give the head's output in both forms. Dropout is
off (the model is in eval mode), as when sampling.

The per-head summary averages, over a fixed batch of validation windows (SUMMARY_WINDOWS windows
of the rung's full context, evenly spaced over the validation split: the same windows every time)
and over every query position but the first (position 0 can only look at itself), four figures:

- current:  the weight on the query's own character, w[t, t];
- previous: the weight on the character just before it, w[t, t-1];
- distance: how far back it looks on average, in characters, sum_j w[t, j] * (t - j);
- entropy:  how spread its weights are, -sum_j w[t, j] * log2 w[t, j], in bits (0: one character;
  log2(t + 1): an even spread over everything so far).

`python runner.py --attention STAGE --prompt "ROMEO:"` draws one rung (show_attention); the report
draws every attention rung over REPORT_PROMPT into `<results>/<profile>/attention/` (write_attention).
"""
from __future__ import annotations

import math
import shlex
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from common.errors import LadderError

FIGURES = ("current", "previous", "distance", "entropy")
HEADINGS = {"layer": "layer", "head": "head", "current": "on current", "previous": "on previous",
            "distance": "looks back (chars)", "entropy": "entropy (bits)"}
SUMMARY_WINDOWS = 64  # validation windows the summary averages over, evenly spaced over the split
CHUNK = 8  # windows per forward pass: the weights of one window of a large rung are big (layers x heads x T x T)
MAP_CHARS = 32  # the report's maps draw at most this many characters: more would not be readable
REPORT_PROMPT = "JULIET:\nWherefore art thou Romeo"  # 32 characters; a shorter context draws its first block_size
LOCAL = "local"  # --attention's drawings go to attention/local/ (git-ignored); the report's to attention/
LABELS = {" ": "␣", "\n": "↵", "\t": "⇥"}  # tick labels for characters that would not show


# --- capturing the weights ---------------------------------------------------------------------------

def _is_head(module) -> bool:
    return callable(getattr(module, "attention_weights", None))


def _is_fixed_average(module) -> bool:
    return isinstance(getattr(module, "wei", None), torch.Tensor)


def has_attention(model) -> bool:
    """Whether any module of `model` weighs positions: a learned head, or a fixed average."""
    return any(_is_head(m) or _is_fixed_average(m) for m in model.modules())


def _wrap_head(module, records: list) -> Callable[[], None]:
    """Record every output of the head's `attention_weights`, explicitly computed; returns the undo."""
    original = module.attention_weights  # the bound method of the head's class
    fused = module.__dict__.get("fused")

    def recorded(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        wei = original(q, k)  # (B, T, T) for one head, (B, nh, T, T) for heads batched
        records.append(wei if wei.dim() == 4 else wei.unsqueeze(1))  # (B, heads, T, T)
        return wei

    module.attention_weights = recorded  # on the instance: the class is untouched
    if fused is not None:
        module.fused = False  # the fused kernel computes no weights; the explicit form is pinned to it

    def undo() -> None:
        del module.attention_weights
        if fused is not None:
            module.fused = fused
    return undo


def _hook_fixed_average(module, records: list) -> Callable[[], None]:
    def hook(mod, inputs, output) -> None:
        B, T = inputs[0].shape[:2]
        records.append(mod.wei[:T, :T].expand(B, 1, T, T))  # the slice its forward multiplies by
    return module.register_forward_hook(hook).remove


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the small models on one thread: on a busy 2-core machine a second thread only waits (the summary of
    the cpu profile's scaled rung took 0.2 s on one thread, 5.7 s on two, measured beside training runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextmanager
def recording(model) -> Iterator[list[torch.Tensor]]:
    """Inside the block, each forward pass of `model` (in eval mode) appends the weights of every attention
    layer, in the order the layers run: one (B, heads, T, T) tensor per layer. Everything is restored after."""
    records: list[torch.Tensor] = []
    undo = []
    for module in model.modules():
        if _is_head(module):
            undo.append(_wrap_head(module, records))
        elif _is_fixed_average(module):
            undo.append(_hook_fixed_average(module, records))
    training = model.training
    model.eval()
    try:
        yield records
    finally:
        for step in reversed(undo):
            step()
        model.train(training)


def attention_maps(model, idx: torch.Tensor) -> list[torch.Tensor]:
    """The weights each attention layer of `model` gives, for the tokens idx (B, T): [(B, heads, T, T)] per layer."""
    with torch.no_grad(), recording(model) as records:
        model(idx)
    return [w.float() for w in records]


# --- the per-head summary -----------------------------------------------------------------------------

def row_figures(wei: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four figures of each query position t >= 1 of weights (..., T, T): each (..., T - 1)."""
    T = wei.shape[-1]
    t = torch.arange(T, device=wei.device)
    back = (t[:, None] - t[None, :]).clamp(min=0).to(wei.dtype)  # (T, T): how far key j lies behind query t
    rows = wei[..., 1:, :]  # (..., T-1, T): position 0 can only look at itself
    return {"current": torch.diagonal(wei, dim1=-2, dim2=-1)[..., 1:],  # w[t, t]
            "previous": torch.diagonal(wei, offset=-1, dim1=-2, dim2=-1),  # w[t, t-1]
            "distance": (rows * back[1:]).sum(-1),
            "entropy": -torch.special.xlogy(rows, rows).sum(-1) / math.log(2)}  # 0 log 0 = 0


def summarise(batches: Iterable[list[torch.Tensor]]) -> list[dict[str, Any]]:
    """Per layer and head, the mean of each figure over every window and query position t >= 1.

    batches: the layers' weights of successive batches of windows, each [(N, heads, T, T)] per layer."""
    sums, count = None, 0
    for layers in batches:
        part = [{k: v.double().sum(dim=(0, -1)) for k, v in row_figures(w.double()).items()} for w in layers]
        sums = part if sums is None else [{k: s[k] + p[k] for k in FIGURES} for s, p in zip(sums, part)]
        count += layers[0].shape[0] * (layers[0].shape[-1] - 1)
    return [{"layer": layer, "head": head + 1, **{k: float(figures[k][head]) / max(count, 1) for k in FIGURES}}
            for layer, figures in enumerate(sums or [], 1) for head in range(len(figures["current"]))]


def validation_windows(val: torch.Tensor, block_size: int, n: int = SUMMARY_WINDOWS) -> torch.Tensor:
    """n windows of block_size tokens, evenly spaced over the validation split (no randomness): (n, block_size)."""
    if len(val) < block_size:
        raise LadderError(f"the validation split has {len(val)} characters, fewer than the context of {block_size}: "
                          f"pass the corpus the rung was trained on with --data")
    starts = torch.linspace(0, len(val) - block_size, n).round().long()  # (n,)
    return val[starts[:, None] + torch.arange(block_size)]  # (n, block_size)


def head_summary(model, windows: torch.Tensor) -> list[dict[str, Any]]:
    """The per-head summary of `model` over the windows (N, T), CHUNK windows per forward pass."""
    return summarise(attention_maps(model, windows[i:i + CHUNK]) for i in range(0, len(windows), CHUNK))


def uniform_figures(T: int) -> dict[str, float]:
    """The figures of the uniform causal average over T characters (the averaging rung), for comparison."""
    tril = torch.tril(torch.ones(T, T, dtype=torch.float64))
    row = summarise([[(tril / tril.sum(1, keepdim=True))[None, None]]])[0]
    return {k: row[k] for k in FIGURES}


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the summary rows (figures to 2 decimals)."""
    lines = ["| " + " | ".join(HEADINGS.values()) + " |", "|" + "|".join("---:" for _ in HEADINGS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[k]:.2f}" if k in FIGURES else str(row[k]) for k in HEADINGS) + " |")
    return "\n".join(lines) + "\n"


def highlights(rows: list[dict[str, Any]], T: int) -> list[str]:
    """What the heads do, in words and measured numbers, against the uniform average over the same windows."""
    def head(row) -> str:
        return f"layer {row['layer']}, head {row['head']}"

    u = uniform_figures(T)
    if len(rows) == 1:
        (row,) = rows
        said = (f"The head puts {row['current']:.2f} of its weight on the current character and {row['previous']:.2f} "
                f"on the previous one, looks {row['distance']:.1f} characters back on average and has an entropy of "
                f"{row['entropy']:.2f} bits.")
    else:
        prev, cur, far = (max(rows, key=lambda r: r[k]) for k in ("previous", "current", "distance"))
        said = (f"{head(prev)} puts {prev['previous']:.2f} of its weight on the previous character; {head(cur)} "
                f"{cur['current']:.2f} on the current one; {head(far)} looks furthest back, {far['distance']:.1f} "
                f"characters on average.")
    return [said,
            f"For comparison, the uniform average over the same windows (the averaging rung's fixed weights) puts "
            f"{u['current']:.2f} on the current and {u['previous']:.2f} on the previous character, looks "
            f"{u['distance']:.1f} characters back and has an entropy of {u['entropy']:.2f} bits."]


CSV_HEADER = "stage,layer,head,current,previous,distance,entropy_bits,windows,window_chars"


def summary_csv(rows: list[dict[str, Any]], stage: str, windows: int, T: int, header: bool = True) -> str:
    """The summary rows as CSV (figures to 4 decimals), with the windows they were measured over."""
    lines = [CSV_HEADER] if header else []
    lines += [f"{stage},{r['layer']},{r['head']},{r['current']:.4f},{r['previous']:.4f},{r['distance']:.4f},"
              f"{r['entropy']:.4f},{windows},{T}" for r in rows]
    return "\n".join(lines) + "\n"


def read_summary_csv(path: Path) -> list[dict[str, Any]]:
    import csv
    with open(path, encoding="utf-8", newline="") as f:
        return [{"stage": r["stage"], "layer": int(r["layer"]), "head": int(r["head"]),
                 "windows": int(r["windows"]), "window_chars": int(r["window_chars"]),
                 **{k: float(r["entropy_bits" if k == "entropy" else k]) for k in FIGURES}}
                for r in csv.DictReader(f)]


# --- drawing -----------------------------------------------------------------------------------------

def _label(ch: str) -> str:
    return LABELS.get(ch, ch)


def maps_figure(layers: list[torch.Tensor], chars: str, title: str):
    """One panel per head, one row per layer: the weights (heads, T, T) of each layer over the characters,
    query down, key across, on one colour scale from 0 to 1. The characters label the outer panels only: every
    panel of a row reads the same queries, every panel of a column the same keys (and ticks are what take
    matplotlib the time). Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T, rows, cols = len(chars), len(layers), max(w.shape[0] for w in layers)
    side = min(max(0.13 * T + 0.4, 3.0), 6.0)  # inches per panel
    font = max(4.0, min(9.0, 0.7 * 72 * side / T))  # points per character label
    gap, head, left, right, bottom = 0.25, 0.3, 1.0, 1.2, 0.9  # inches: margins set by hand, not computed
    width = left + cols * side + (cols - 1) * gap + right
    title = "\n".join(textwrap.fill(line, int(width * 72 / (10 * 0.55))) for line in title.split("\n"))
    top = 0.5 + 0.18 * (title.count("\n") + 1)
    height = bottom + rows * (side + head) + (rows - 1) * gap + top
    fig = plt.figure(figsize=(width, height))
    labels = [_label(c) for c in chars]
    for layer, wei in enumerate(layers):
        for h in range(wei.shape[0]):
            x, y = left + h * (side + gap), height - top - (layer + 1) * (side + head) - layer * gap  # lower left
            ax = fig.add_axes((x / width, y / height, side / width, side / height))
            image = ax.imshow(wei[h].numpy(), vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
            ax.set_title(f"layer {layer + 1}, head {h + 1}", fontsize=9)
            ax.set_xticks(range(T) if layer == rows - 1 else [], labels if layer == rows - 1 else [], fontsize=font)
            ax.set_yticks(range(T) if h == 0 else [], labels if h == 0 else [], fontsize=font)
            ax.tick_params(length=0)
            if h == 0:
                ax.set_ylabel("query: the character reading", fontsize=9)
            if layer == rows - 1:
                ax.set_xlabel("key: the character read", fontsize=9)
    span = rows * (side + head) + (rows - 1) * gap - head  # the panels' height, inches
    bar_height = min(span, 5.0)
    bar = fig.add_axes(((width - right + 0.3) / width, (bottom + (span - bar_height) / 2) / height, 0.18 / width,
                        bar_height / height))  # beside the panels, centred
    fig.colorbar(image, cax=bar, label="attention weight (each row sums to 1)")
    fig.suptitle(title, fontsize=10, y=1 - 0.15 / height, va="top")
    return fig


def draw_maps(layers: list[torch.Tensor], chars: str, path: Path, title: str) -> None:
    """maps_figure, saved as a PNG at `path`."""
    import matplotlib.pyplot as plt

    from common.io import atomic_path
    fig = maps_figure(layers, chars, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


# --- one rung, from the command line -----------------------------------------------------------------

def check_has_attention(stage) -> None:
    """A clear error for a rung with nothing to draw (probed on a model of the stage's default config)."""
    if not has_attention(stage.Model(stage.Config())):
        raise LadderError(f"{stage.name} has no attention to draw: none of its modules weighs earlier characters "
                          f"(it reads the current character alone); pick a rung that does (python runner.py --list)")


def encode_prompt(tokenizer, prompt: str, block_size: int, stage: str) -> torch.Tensor:
    """The prompt's tokens (1, T), or an error for an empty prompt, an unknown character or one too many."""
    if not prompt:
        raise LadderError('--attention needs characters to draw the weights over: pass --prompt "ROMEO:" '
                          '(or --prompt-file PATH)')
    ids = tokenizer.encode(prompt)  # an unknown character is a LadderError naming it
    if len(ids) > block_size:
        raise LadderError(f"the prompt has {len(ids)} characters, more than the {block_size} that {stage} reads at "
                          f"once (its context), and a map draws one window: each of its characters against those "
                          f"before it; pass at most {block_size}, e.g. --prompt {shlex.quote(prompt[:block_size])}")
    return torch.tensor(ids, dtype=torch.long)[None]  # (1, T)


def summary_data(dataset, tokenizer, block_size: int) -> torch.Tensor:
    """The summary's validation windows, or an error when the corpus is not the one the model was trained on."""
    if dataset.tokenizer.chars != tokenizer.chars:
        raise LadderError(f"the corpus has another vocabulary ({dataset.tokenizer.vocab_size} characters) than the "
                          f"model ({tokenizer.vocab_size}): pass the corpus it was trained on with --data")
    return validation_windows(dataset.val, block_size)


def rung_section(stage: str, rows: list[dict[str, Any]], image: str, level: str = "##") -> str:
    """Markdown: the rung's maps and its per-head summary, with what the heads do in words."""
    if not rows:
        return f"{level} {stage}\n\n![{stage}]({image})\n"
    T, windows = rows[0]["window_chars"], rows[0]["windows"]
    return (f"{level} {stage}\n\n![the attention of {stage}]({image})\n\nPer head, over {windows} validation windows "
            f"of {T} characters:\n\n{summary_markdown(rows)}\n" + "\n".join(highlights(rows, T)) + "\n")


def show_attention(folder: Path, stage, profile: str, seed: int, seed_given: bool, prompt: str,
                   data: str | None = None) -> Path:
    """Draw one rung's attention over the prompt and print its per-head summary; returns the PNG's path.

    The weights come as for sampling: the run's checkpoint, else the committed weights. The files go to
    <folder>/attention/local/<stage>.png, .csv and .md (the report's own maps are in <folder>/attention/)."""
    from common.data import load_dataset
    from common.io import write_text
    from common.weights import load_trained

    check_has_attention(stage)
    trained = load_trained(folder, stage, profile, seed, seed_given)
    model, block_size = trained.model, trained.model.config.block_size
    idx = encode_prompt(trained.tokenizer, prompt, block_size, stage.name)
    windows = summary_data(load_dataset(data), trained.tokenizer, block_size)
    if trained.stale:
        print(f"note: {trained.stale}", file=sys.stderr, flush=True)
    with one_thread():
        rows = [{**r, "windows": len(windows), "window_chars": block_size} for r in head_summary(model, windows)]
        maps = [w[0] for w in attention_maps(model, idx)]  # (heads, T, T) per layer
    out = folder / "attention" / LOCAL
    png = out / f"{stage.name}.png"
    val = f", val loss {trained.val_loss:.3f}" if trained.val_loss is not None else ""
    source = f"{trained.source} ({trained.kind}; training seed {trained.seed}, step {trained.step}{val})"
    draw_maps(maps, prompt, png, _title(stage.name, profile, trained, prompt))
    write_text(out / f"{stage.name}.csv", summary_csv(rows, stage.name, len(windows), block_size))
    write_text(out / f"{stage.name}.md", rung_section(stage.name, rows, png.name, "#") + f"\nWeights: {source}.\n")
    print(f"--- attention of {stage.name}, profile {profile}: {source} ---")
    print(f"per-head summary over {len(windows)} validation windows of {block_size} characters "
          f"(query positions 2..{block_size}; the figures are defined in common/attention.py):\n")
    print(summary_markdown(rows))
    print("\n".join(highlights(rows, block_size)) + "\n")
    print(f"wrote {png} (the weights over {prompt!r}), {stage.name}.csv and {stage.name}.md beside it")
    return png


def _title(stage: str, profile: str, trained, prompt: str) -> str:
    return (f"What {stage} attends to (profile {profile}, {trained.kind}, training seed {trained.seed}, step "
            f"{trained.step}) over {prompt!r}\nrow: the character reading (query); column: the character read "
            f"(key); each row's weights sum to 1, nothing is read from the future")


# --- every rung, for the report ------------------------------------------------------------------------

def _report_dataset():
    """The corpus for the summary, as the runner finds it but never downloaded (None, with a note, if absent)."""
    from common.corpus import locate_corpus
    from common.data import load_dataset
    try:
        return load_dataset(locate_corpus(None, download_if_missing=False))
    except LadderError as exc:
        print(f"attention summaries not redrawn (the maps are): {exc}", file=sys.stderr)
        return None


def _draw_rung(out: Path, stage, profile: str, trained, dataset) -> None:
    """attention/<stage>.png over the report's prompt, and attention/<stage>.csv when the corpus is here."""
    from common.io import write_text
    block_size = trained.model.config.block_size
    prompt = REPORT_PROMPT[:min(block_size, MAP_CHARS)]
    idx = torch.tensor(trained.tokenizer.encode(prompt), dtype=torch.long)[None]  # (1, T)
    draw_maps([w[0] for w in attention_maps(trained.model, idx)], prompt, out / f"{stage.name}.png",
              _title(stage.name, profile, trained, prompt))
    if dataset is not None:
        windows = summary_data(dataset, trained.tokenizer, block_size)
        rows = head_summary(trained.model, windows)
        write_text(out / f"{stage.name}.csv", summary_csv(rows, stage.name, len(windows), block_size))


def write_attention(folder: Path, profile: str, stages: Mapping[str, Any], out: Path | None = None) -> None:
    """<out>/attention/ (out: the folder itself by default): every attention rung's maps over REPORT_PROMPT
    (<stage>.png), its per-head summary (<stage>.csv), and all of them in ladder order (summary.csv, summary.md),
    from the weights or checkpoints in `folder`. A rung with neither here keeps the files it has."""
    from common.io import write_text
    from common.weights import load_committed
    out = Path(out or folder) / "attention"
    dataset, drawn, missing = _report_dataset(), [], []
    for stage in stages.values():
        if not has_attention(stage.Model(stage.Config())):
            continue
        try:
            trained = load_committed(folder, stage, profile)
            if trained is not None:
                if trained.stale:
                    print(f"note: attention of {stage.name}: {trained.stale}", file=sys.stderr)
                with one_thread():
                    _draw_rung(out, stage, profile, trained, dataset)
                drawn.append(stage.name)
            elif any(folder.glob(f"runs/{stage.name}/seed*/run.json")):
                missing.append(stage.name)
        except LadderError as exc:
            print(f"attention of {stage.name} not redrawn: {exc}", file=sys.stderr)
    tables = [(name, rows) for name in stages for rows in [_read_table(out / f"{name}.csv")] if rows]
    if tables:
        write_text(out / "summary.csv", CSV_HEADER + "\n" + "".join(
            summary_csv(rows, name, rows[0]["windows"], rows[0]["window_chars"], header=False) for name, rows in tables))
        write_text(out / "summary.md", _summary_page(profile, tables))
    if drawn or missing:
        print(f"wrote {out}/: the attention maps of {', '.join(drawn) or 'no rung'} over "
              f"{REPORT_PROMPT[:MAP_CHARS]!r}{', summary.csv, summary.md' if tables else ''}"
              + (f"; not {', '.join(missing)}: neither its weights file nor a checkpoint is here "
                 f"(earlier maps, if any, are kept)" if missing else ""))


def _read_table(path: Path) -> list[dict[str, Any]]:
    """A rung's saved summary rows ([] when there is none, or it cannot be read)."""
    if not path.exists():
        return []
    try:
        return read_summary_csv(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"skipping unreadable {path} ({type(exc).__name__})", file=sys.stderr)
        return []


def _summary_page(profile: str, tables: list[tuple[str, list[dict[str, Any]]]]) -> str:
    intro = (f"# What attention learned — profile `{profile}`\n\n"
             f"Each rung's weights over the prompt {REPORT_PROMPT[:MAP_CHARS]!r} (its first block_size characters "
             f"when its context is shorter), one panel per head, one row per layer: query down, key across. Under "
             f"each, per layer and head, the mean over a fixed batch of validation windows of the rung's full "
             f"context, and over every query position but the first, of: the weight on the current character, on "
             f"the previous one, the distance looked back (characters) and the entropy of the weights (bits; an "
             f"even spread over t + 1 characters has log2(t + 1)). Drawn by `python runner.py --chart` from the "
             f"committed weights; one rung over a prompt of your own: `python runner.py --attention STAGE --prompt "
             f"\"ROMEO:\"`. The figures are defined in `common/attention.py`.\n\n")
    return intro + "\n".join(rung_section(name, rows, f"{name}.png") for name, rows in tables)
