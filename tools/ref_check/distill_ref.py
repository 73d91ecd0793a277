#!/usr/bin/env python3
"""distill_ref.py - float64 reference of the distillation loss of src/train/distill_loss.c.

    loss = mean over rows of  alpha tau^2 KL(p_t || softmax(z / tau)) + (1 - alpha) CE(z, y)

with z = X head^T (student logits), p_t = softmax(z_t / tau) over the whole vocabulary, or over
the teacher's top K logits renormalized (K = 1: "weak", one-hot on the teacher's argmax).
Pure Python (no numpy, no torch). The gradient is NOT the closed form used in C: it is the
central difference (step 1e-6, float64) of this loss with respect to every student logit,
then pushed through the linear layer (dX = G head, dhead = G^T X), so the fixture checks the
C formula independently.

    python3 tools/ref_check/distill_ref.py > tests/fixtures/fixtures/distill/loss_ref.txt

Output: one block per case, text: "case NAME N D V K alpha tau", then lines "X ...",
"head ...", "targets ...", "teacher ..." (N x V teacher logits), "loss L", "ce C", "kl K",
"dX ...", "dhead ..." (%.17g).
"""
import math

state = 12345


def rnd():
    """LCG in [-1, 1)."""
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return ((state >> 11) / float(1 << 53)) * 2.0 - 1.0


def f32(x):
    import struct
    return struct.unpack('<f', struct.pack('<f', x))[0]


def teacher_rows(zt, tau, K):
    V = len(zt)
    if K >= V:
        ids = list(range(V))
    else:
        ids = sorted(range(V), key=lambda i: (-zt[i], i))[:K]
    m = max(zt[i] for i in ids)
    s = sum(math.exp((zt[i] - m) / tau) for i in ids)
    return ids, [(zt[i] - m) / tau - math.log(s) for i in ids]


def row_loss(z, y, ids, logp, alpha, tau):
    m = max(z)
    ce = m + math.log(sum(math.exp(v - m) for v in z)) - z[y]
    lst = math.log(sum(math.exp((v - m) / tau) for v in z))
    kl = 0.0
    for i, lp in zip(ids, logp):
        p = math.exp(lp)
        if p > 0:
            kl += p * (lp - ((z[i] - m) / tau - lst))
    return alpha * tau * tau * kl + (1 - alpha) * ce, ce, kl


def case(name, N, D, V, K, alpha, tau):
    X = [f32(rnd()) for _ in range(N * D)]
    H = [f32(rnd()) for _ in range(V * D)]
    tg = [int((rnd() + 1) / 2 * V) % V for _ in range(N)]
    TL = [f32(3 * rnd()) for _ in range(N * V)]
    loss = ce_s = kl_s = 0.0
    G = [0.0] * (N * V)
    h = 1e-6
    for n in range(N):
        z = [sum(X[n * D + d] * H[v * D + d] for d in range(D)) for v in range(V)]
        ids, logp = teacher_rows(TL[n * V:(n + 1) * V], tau, K)
        l, c, k = row_loss(z, tg[n], ids, logp, alpha, tau)
        loss += l / N
        ce_s += c / N
        kl_s += k / N
        for v in range(V):
            zp = list(z); zp[v] += h
            zm = list(z); zm[v] -= h
            G[n * V + v] = (row_loss(zp, tg[n], ids, logp, alpha, tau)[0] -
                            row_loss(zm, tg[n], ids, logp, alpha, tau)[0]) / (2 * h) / N
    dX = [sum(G[n * V + v] * H[v * D + d] for v in range(V)) for n in range(N) for d in range(D)]
    dH = [sum(G[n * V + v] * X[n * D + d] for n in range(N)) for v in range(V) for d in range(D)]
    fmt = lambda a: ' '.join('%.17g' % x for x in a)
    print('case %s %d %d %d %d %.17g %.17g' % (name, N, D, V, K, alpha, tau))
    print('X', fmt(X))
    print('head', fmt(H))
    print('targets', ' '.join(str(t) for t in tg))
    print('teacher', fmt(TL))
    print('loss %.17g' % loss)
    print('ce %.17g' % ce_s)
    print('kl %.17g' % kl_s)
    print('dX', fmt(dX))
    print('dhead', fmt(dH))


case('full', 7, 5, 13, 13, 0.5, 2.0)
case('topk', 7, 5, 13, 4, 0.7, 1.5)
case('weak', 7, 5, 13, 1, 0.6, 1.0)
case('kl_only', 5, 4, 11, 11, 1.0, 3.0)
case('ce_only', 5, 4, 11, 11, 0.0, 1.0)
# tau 1: the classifier's one-softmax path (float exponentials in place, as the cross-entropy)
case('full_tau1', 7, 5, 13, 13, 0.9, 1.0)
case('topk_tau1', 7, 5, 13, 4, 0.5, 1.0)
