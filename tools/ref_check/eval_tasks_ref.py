#!/usr/bin/env python3
"""Float64 reference of `shrink eval` (docs/eval.md) for tests/test_eval.c.

Run from the repository root with ../shared present (Debian's python3-torch, python3-numpy,
python3-sentencepiece; see ../shared/docs/machine.md):

    /usr/bin/python3 tools/ref_check/eval_tasks_ref.py

Reads the task files tests/fixtures/eval/{lambada,choice,generate}.jsonl and writes
tests/fixtures/eval/ref_<model>.json for stories260K and mix-llama-14m: per item the
log-likelihood of every ending, whether the ending is the greedy continuation, the greedy
generation, and the accuracies. The model is the shared PyTorch reference
(../shared/tools/ref/models.py) in float64, run WITHOUT a KV cache: every ending is scored by a
full forward pass over context + ending, every generated token by a forward pass over the whole
sequence, so the C side's one-context-pass-per-item scoring is checked against an independent
computation. Tokenization is sentencepiece's (not shrink's), with lm-evaluation-harness's
(context, continuation) split.
"""
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(SHARED / "tools/ref"))
import models  # noqa: E402
import sentencepiece as spm  # noqa: E402

FIX = ROOT / "tests/fixtures/eval"
MODELS = {
    "stories260K": ("models/stories260K/stories260K.bin", "models/stories260K/tok512.model"),
    "mix-llama-14m": ("models/mix-llama-14m", "models/tokenizers/llama2/tokenizer.model"),
}
GEN_MAX_NEW = 8
GEN_STOP = "."


def read_jsonl(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


class Runner:
    def __init__(self, name):
        path, tok = MODELS[name]
        self.model, self.config = models.load_any(SHARED / path, torch.float64)
        self.model.eval()
        self.sp = spm.SentencePieceProcessor(model_file=str(SHARED / tok))
        self.n_ctx = self.config.get("max_position_embeddings") or self.config.get("max_seq_len") or 512

    def encode(self, text):
        return [1] + self.sp.encode(text)   # both models add BOS

    def encode_pair(self, context, continuation):
        n = len(context) - len(context.rstrip(" \t\n\r"))
        if n:
            continuation = context[-n:] + continuation
            context = context[:-n]
        c = self.encode(context)
        whole = self.encode(context + continuation)
        return c, whole[len(c):]

    @torch.no_grad()
    def logprobs(self, ids):
        return F.log_softmax(self.model(torch.tensor([ids]))[0], dim=-1)

    def score(self, ctx, cont):
        """log-likelihood of cont after ctx and whether it is the greedy continuation."""
        lp = self.logprobs(ctx + cont[:-1])
        ll, greedy = 0.0, True
        for j, t in enumerate(cont):
            row = lp[len(ctx) - 1 + j]
            ll += row[t].item()
            greedy = greedy and int(torch.argmax(row)) == t
        return ll, greedy

    def choice_item(self, context, choices):
        pairs = [self.encode_pair(context, c) for c in choices]
        ctx = pairs[0][0]
        assert all(p[0] == ctx for p in pairs)
        maxm = max(len(p[1]) for p in pairs)
        drop = max(0, len(ctx) + maxm - 1 - self.n_ctx)
        return [self.score(ctx[drop:], p[1]) for p in pairs], ctx, [p[1] for p in pairs]

    @torch.no_grad()
    def generate(self, prompt):
        ids = self.encode(prompt)
        gen, text = [], ""
        while len(gen) < GEN_MAX_NEW:
            t = int(torch.argmax(self.model(torch.tensor([ids + gen]))[0, -1]))
            if t == 2:
                break
            gen.append(t)
            text = self.sp.decode(gen)
            if GEN_STOP in text:
                break
        cut = text.find(GEN_STOP)
        return text[:cut] if cut >= 0 else text


def stderr_p(p, n):
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else 0.0


def main():
    lam = read_jsonl(FIX / "lambada.jsonl")
    cho = read_jsonl(FIX / "choice.jsonl")
    gen = read_jsonl(FIX / "generate.jsonl")
    for name in MODELS:
        r = Runner(name)
        out = {"model": MODELS[name][0], "tokenizer": MODELS[name][1],
               "note": "float64 PyTorch reference without KV cache (tools/ref_check/eval_tasks_ref.py)",
               "generate_max_new": GEN_MAX_NEW, "generate_stop": GEN_STOP}
        items = []
        for it in lam:
            ctx, word = it["text"].rsplit(" ", 1)
            (s,), cids, (tids,) = r.choice_item(ctx, [" " + word])
            items.append({"loglik": s[0], "greedy": s[1], "n_context": len(cids), "target": tids})
        acc = sum(i["greedy"] for i in items) / len(items)
        out["lambada"] = {"items": items, "acc": acc, "acc_se": stderr_p(acc, len(items)),
                          "mean_loglik": sum(i["loglik"] for i in items) / len(items)}
        items = []
        for it in cho:
            s, cids, _ = r.choice_item(it["context"], it["choices"])
            ll = [x[0] for x in s]
            pred = max(range(len(ll)), key=lambda k: (ll[k], -k))
            norm = [ll[k] / len(it["choices"][k].encode("utf-8")) for k in range(len(ll))]
            pred_norm = max(range(len(ll)), key=lambda k: (norm[k], -k))
            items.append({"loglik": ll, "pred": pred, "pred_norm": pred_norm,
                          "correct": pred == it["label"], "correct_norm": pred_norm == it["label"]})
        acc = sum(i["correct"] for i in items) / len(items)
        accn = sum(i["correct_norm"] for i in items) / len(items)
        out["choice"] = {"items": items, "acc": acc, "acc_norm": accn}
        items = []
        for it in gen:
            g = r.generate(it["prompt"])
            a = it["answer"].strip()
            items.append({"generation": g, "exact": g.strip() == a, "contains": a in g.strip()})
        out["generate"] = {"items": items,
                           "exact_match": sum(i["exact"] for i in items) / len(items),
                           "contains_match": sum(i["contains"] for i in items) / len(items)}
        (FIX / f"ref_{name}.json").write_text(json.dumps(out, indent=1) + "\n")
        print(name, "lambada acc", out["lambada"]["acc"], "choice acc", out["choice"]["acc"],
              "acc_norm", out["choice"]["acc_norm"], "generate exact", out["generate"]["exact_match"],
              "contains", out["generate"]["contains_match"])


if __name__ == "__main__":
    main()
