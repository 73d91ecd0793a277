#!/usr/bin/env python3
"""Float64 reference of shrink's pruning methods (issue 11, point 1), written from the papers and
their authors' code, independent of shrink: the model is ../shared/tools/ref/models.py (PyTorch,
float64), the calibration text is tokenized with sentencepiece, and the activations come from
forward hooks on the nn.Linear layers. Writes tests/fixtures/prune/*.safetensors, which
tests/test_prune.c compares shrink_prune's output with (the test needs no python).

Methods (every count is floor(sparsity * n); ties are ranked by (score, index), stable):
  threshold   zero |w| < V
  magnitude   zero the smallest |w| per matrix, or per output row
  wanda       (Sun et al. 2023, github.com/locuslab/wanda prune_wanda) score |W_ij| * ||X_j||_2
              over all calibration tokens, zero the smallest per output row; layer by layer,
              each layer calibrated on the outputs of the already pruned layers
  sparsegpt   (Frantar & Alistarh 2023, github.com/IST-DASLab/sparsegpt SparseGPT.fasterprune)
              H = sum x x^T, dead inputs, damping 0.01 * mean(diag H), U = chol(H^-1) upper,
              column blocks with adaptive mask selection on w^2 / U_cc^2 (unstructured) or per
              group of M at every M-th column (N:M), OBS update of the remaining weights;
              layer by layer like wanda. Differences from the authors' code: the count per
              block is floor(s * n) (theirs: <= the value at index int(s * n), one more), ties
              by index.
  N:M         in every group of M consecutive inputs of a row the M - N smallest scores zeroed.
Calibration: the first `tokens` tokens of calib.txt (BOS first), in windows of `ctx` tokens each
run from position 0, every token's activation counted.

Masks are stored bit-packed (U8, 1 = weight is 0 after pruning, row-major, GGUF row order: q/k
rows permuted to llama.cpp's interleaved RoPE layout as shrink's GGUF writer does); SparseGPT's
weights are stored as F32.

Run (Debian: apt-get install python3-torch python3-numpy python3-sentencepiece):
  /usr/bin/python3 tools/ref_check/prune_ref.py [SHARED_DIR]
"""
import math
import os
import sys

import numpy as np

shared = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "../shared")
sys.path.insert(0, os.path.join(shared, "tools", "ref"))
import torch  # noqa: E402
import sentencepiece as spm  # noqa: E402
import models  # noqa: E402
import st  # noqa: E402

torch.set_grad_enabled(False)
here = os.path.dirname(os.path.abspath(__file__))
outdir = os.path.join(here, "..", "..", "tests", "fixtures", "prune")
MODEL = "models/tiny-llama-gqa"
CALIB_TOKENS, CALIB_CTX = 256, 64

LINEARS = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
           ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
           ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down")]


def smallest(score, k):
    """bool mask of the k smallest of a 1-D float64 array by (score, index)."""
    m = np.zeros(score.shape[0], dtype=bool)
    if k > 0:
        m[np.argsort(score, kind="stable")[:k]] = True
    return m


def nm_mask_rows(score, n, m):
    """per row, per group of m columns: the m - n smallest."""
    rows, cols = score.shape
    mask = np.zeros_like(score, dtype=bool)
    for g in range(0, cols, m):
        blk = score[:, g:g + m]
        idx = np.argsort(blk, axis=1, kind="stable")[:, :m - n]
        np.put_along_axis(mask[:, g:g + m], idx, True, axis=1)
    return mask


def prune_rows(W, scale, s, n, m):
    score = np.abs(W) * (scale[None, :] if scale is not None else 1.0)
    if n:
        mask = nm_mask_rows(score, n, m)
    else:
        k = math.floor(W.shape[1] * s)
        mask = np.stack([smallest(score[r], k) for r in range(W.shape[0])])
    out = W.copy()
    out[mask] = 0.0
    return out


def prune_matrix(W, s):
    k = math.floor(W.size * s)
    mask = smallest(np.abs(W).ravel(), k).reshape(W.shape)
    out = W.copy()
    out[mask] = 0.0
    return out


def sparsegpt(W, H, s, n, m, bs, damp=0.01):
    """The authors' fasterprune in float64 numpy/torch."""
    W = torch.tensor(W, dtype=torch.float64).clone()
    H = torch.tensor(H, dtype=torch.float64).clone()
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    Hinv = torch.linalg.cholesky(Hinv, upper=True)
    for i1 in range(0, cols, bs):
        i2 = min(i1 + bs, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if n == 0:
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            k = math.floor(tmp.numel() * s)
            mask1 = torch.tensor(smallest(tmp.flatten().numpy(), k).reshape(tmp.shape))
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if n != 0 and i % m == 0:
                tmp = W1[:, i:i + m] ** 2 / (torch.diag(Hinv1)[i:i + m].reshape((1, -1))) ** 2
                sel = torch.tensor(nm_mask_rows(tmp.numpy(), n, m))
                mask1[:, i:i + m] |= sel
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W.numpy()


def to_gguf_rows(w, name, hd):
    """q/k rows from Hugging Face rotate-half order to GGUF's interleaved order."""
    if not (name.endswith("attn_q") or name.endswith("attn_k")):
        return w
    out = np.empty_like(w)
    for h0 in range(0, w.shape[0], hd):
        for i in range(hd // 2):
            for s_ in range(2):
                out[h0 + 2 * i + s_] = w[h0 + s_ * (hd // 2) + i]
    return out


def calib_ids(config):
    sp = spm.SentencePieceProcessor(model_file=os.path.join(shared, MODEL, "tokenizer.model"))
    text = open(os.path.join(outdir, "calib.txt"), encoding="utf-8").read()
    ids = [config.get("bos_token_id", 1)] + sp.encode(text)
    assert len(ids) >= CALIB_TOKENS
    return ids[:CALIB_TOKENS]


def run_case(method, s=0.0, thr=0.0, per_row=False, n=0, m=0, bs=128):
    model, config = models.load_hf(os.path.join(shared, MODEL), dtype=torch.float64)
    hd = config["hidden_size"] // config["num_attention_heads"]
    ids = calib_ids(config)
    layers = model.model.layers
    result = {}
    for li, layer in enumerate(layers):
        mods = {gg: layer.get_submodule(hf) for hf, gg in LINEARS}
        stats = {}
        if method in ("wanda", "sparsegpt"):
            hooks = []
            for gg, mod in mods.items():
                def hook(mod_, inp, out_, gg=gg):
                    x = inp[0].reshape(-1, inp[0].shape[-1]).to(torch.float64)
                    if method == "wanda":
                        v = (x ** 2).sum(0)
                    else:
                        v = x.t() @ x
                    stats[gg] = stats[gg] + v if gg in stats else v
                hooks.append(mod.register_forward_hook(hook))
            for w0 in range(0, len(ids), CALIB_CTX):
                model(torch.tensor([ids[w0:w0 + CALIB_CTX]]))
            for h in hooks:
                h.remove()
        for gg, mod in mods.items():
            W = mod.weight.detach().numpy().astype(np.float64)
            if method == "threshold":
                P = W.copy()
                P[np.abs(W) < thr] = 0.0
            elif method == "magnitude":
                P = prune_rows(W, None, s, n, m) if (per_row or n) else prune_matrix(W, s)
            elif method == "wanda":
                P = prune_rows(W, np.sqrt(stats[gg].numpy()), s, n, m)
            else:
                P = sparsegpt(W, stats[gg].numpy(), s, n, m, bs)
            mod.weight.data = torch.tensor(P, dtype=torch.float64)
            result[f"blk.{li}.{gg}.weight"] = to_gguf_rows(P, gg, hd)
    return result, ids


CASES = [  # name, kwargs (the C test repeats them)
    ("threshold_0.05", dict(method="threshold", thr=0.05)),
    ("magnitude_0.5", dict(method="magnitude", s=0.5)),
    ("magnitude_row_0.7", dict(method="magnitude", s=0.7, per_row=True)),
    ("magnitude_2of4", dict(method="magnitude", s=0.5, n=2, m=4)),
    ("wanda_0.5", dict(method="wanda", s=0.5)),
    ("wanda_4of8", dict(method="wanda", s=0.5, n=4, m=8)),
    ("sparsegpt_0.5", dict(method="sparsegpt", s=0.5)),
    ("sparsegpt_2of4_b32", dict(method="sparsegpt", s=0.5, n=2, m=4, bs=32)),
]


def main():
    os.makedirs(outdir, exist_ok=True)
    masks, weights = {}, {}
    ids = None
    for name, kw in CASES:
        res, ids = run_case(**kw)
        for t, P in res.items():
            bits = np.packbits((P == 0.0).astype(np.uint8).ravel(), bitorder="little")
            masks[f"{name}/{t}"] = torch.tensor(bits)
            if kw["method"] == "sparsegpt":
                weights[f"{name}/{t}"] = torch.tensor(P.astype(np.float32))
        z = sum(int((P == 0).sum()) for P in res.values())
        tot = sum(P.size for P in res.values())
        print(f"{name}: {z}/{tot} zero ({z / tot:.4f})")
    masks["calib_ids"] = torch.tensor(np.array(ids, dtype=np.int32))
    meta = {"model": MODEL, "calib_tokens": str(CALIB_TOKENS), "calib_ctx": str(CALIB_CTX),
            "made_by": "tools/ref_check/prune_ref.py"}
    st.save(os.path.join(outdir, "tiny-llama-gqa-masks.safetensors"), masks, meta)
    st.save(os.path.join(outdir, "tiny-llama-gqa-sparsegpt.safetensors"), weights, meta)


if __name__ == "__main__":
    main()
