"""Distance-biased attention (``examples/configs/embedded_alibi.toml``), or another shipped
architecture file (``--against embedded_shift.toml``: the token shift), against the default's
plain SDPA attention (``embedded_model.toml``), in one process, the same weights (the token
shift's own weights, zero at the start, are set to small random values so that it computes).

1. A training step of the traces-only stage: forward and backward over 32 `mix` graphs' gold
   depth-first traces in packed rows (as `constraintc finetune --pretrain-steps` and
   examples/lookup_learning.py run them).
2. Greedy generation: 32 reasoning prompts, 64 new tokens each, with the KV cache.

    python benchmarks/bench_attention.py --threads 2
    python benchmarks/bench_attention.py --threads 2 --against embedded_shift.toml

Timings alternate the two models and report medians; the ratio (other / plain) is the number
to read.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _median_pair(fn_a, fn_b, repeats: int) -> tuple[float, float]:
    a, b = [], []
    fn_a(), fn_b()  # warm-up
    for _ in range(repeats):
        for fn, out in ((fn_a, a), (fn_b, b)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    ap.add_argument("--repeats", type=int, default=10, help="timed repeats per condition (default: 10)")
    ap.add_argument("--against", default="embedded_alibi.toml", metavar="FILE",
                    help="the architecture file compared with the default (default: embedded_alibi.toml)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import torch.nn.functional as F

    from constraintc.lm.binding import pack_groups, packed_logits
    from constraintc.lm.models import load_model
    from constraintc.tasks import generate
    from constraintc.tasks.corpus import task_text
    from constraintc.tasks.prompts import reasoning_prompt
    from constraintc.train.data import trace_completion

    plain, tok = load_model("embedded", corpus=task_text)
    other, _ = load_model(args.against, corpus=task_text)  # a local file, else the shipped one of that name
    missing, unexpected = other.load_state_dict(plain.state_dict(), strict=False)
    own = [n for n in missing if not n.endswith("_shift")]
    if own or unexpected:
        raise SystemExit(f"{args.against}: not the default's shapes ({(own or unexpected)[0]})")
    with torch.no_grad():  # token-shift weights start at zero; give them values so the shift computes
        g = torch.Generator().manual_seed(0)
        for n, p in other.named_parameters():
            if n.endswith("_shift"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    records = generate("transitivity", "mix", 128, 0, traces=True, trace_search="depth_first")
    groups: dict = {}
    for r in records:
        groups.setdefault(r["group"], []).append(trace_completion(reasoning_prompt(r), r["trace"], r["label"], "keep"))
    comps = list(groups.values())[:32]
    batch = pack_groups(tok, [[c[0].prompt] for c in comps], completions=comps)

    def step(model):
        def run():
            model.zero_grad(set_to_none=True)
            _, logits = packed_logits(model, batch)
            F.cross_entropy(logits.float(), batch.target_ids).backward()
        return run

    prompts = [reasoning_prompt(r) for r in records[:32]]
    enc = tok(prompts, return_tensors="pt", padding=True)

    def gen(model):
        def run():
            with torch.no_grad():
                model.generate(**enc, max_new_tokens=64, do_sample=False, pad_token_id=tok.pad_token_id)
        return run

    plain.train(), other.train()
    p, b = _median_pair(step(plain), step(other), args.repeats)
    print(f"training step, 32 graphs ({batch.tokens} tokens): plain {p * 1e3:.1f} ms, {args.against} {b * 1e3:.1f} ms, "
          f"ratio {b / p:.2f}")
    plain.eval(), other.eval()
    p, b = _median_pair(gen(plain), gen(other), max(2, args.repeats // 3))
    print(f"generation, 32 prompts x 64 tokens: plain {p:.2f} s, {args.against} {b:.2f} s, ratio {b / p:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
