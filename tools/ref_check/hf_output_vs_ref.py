#!/usr/bin/env python3
"""Checks that Hugging Face folders written by `shrink convert` are the same models when read by
an independent implementation: ../shared/tools/ref (PyTorch, float64; `load_hf` reads
config.json + model.safetensors itself). For each case, the original model goes through shrink
(directly to HF, or via GGUF and back), the reference loads the output folder, and its
log-probabilities on the fixture tokens are compared with the fixture computed from the
original file (max abs difference; float32 storage of the fixture bounds it near 1e-5).

Needs /usr/bin/python3 with torch (Debian: python3-torch python3-numpy). Never used by shrink
or its tests; run by hand:   python3 tools/ref_check/hf_output_vs_ref.py [SHARED_DIR]
"""
import os, subprocess, sys, tempfile

shared = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "../shared")
sys.path.insert(0, os.path.join(shared, "tools", "ref"))
import torch          # noqa: E402
import models         # noqa: E402  (the reference)
import st             # noqa: E402  (its safetensors reader)

shrink = os.path.abspath(os.environ.get("SHRINK", "build/shrink"))
cases = [  # (source, fixture, route)
    ("models/stories260K/stories260K.bin", "fixtures/stories260K/logprobs.safetensors", ["hf"]),
    ("models/stories260K/stories260K.bin", "fixtures/stories260K/logprobs.safetensors", ["gguf", "hf"]),
    ("models/tiny-llama-gqa", "fixtures/tiny-llama-gqa/logprobs.safetensors", ["gguf", "hf"]),
    ("models/tiny-gpt2", "fixtures/tiny-gpt2/logprobs.safetensors", ["gguf", "hf"]),
    ("models/mix-llama-22m", "fixtures/mix-llama-22m/logprobs.safetensors", ["gguf", "hf"]),
    ("models/mix-gpt2-30m", "fixtures/mix-gpt2-30m/logprobs.safetensors", ["gguf", "hf"]),
]
worst = 0.0
with tempfile.TemporaryDirectory() as tmp:
    for i, (src, fix, route) in enumerate(cases):
        cur = os.path.join(shared, src)
        for k, fmt in enumerate(route):
            out = os.path.join(tmp, f"c{i}_{k}" + (".gguf" if fmt == "gguf" else ""))
            subprocess.run([shrink, "convert", cur, out, "--to", fmt], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cur = out
        model, _ = models.load_hf(cur, dtype=torch.float64)
        ref, _ = st.load(os.path.join(shared, fix))
        ids = torch.as_tensor(ref["tokens"]).long()
        with torch.no_grad():
            lp = torch.log_softmax(model(ids[None])[0], dim=-1)
        err = (lp - torch.as_tensor(ref["logprobs"]).double()).abs().max().item()
        worst = max(worst, err)
        print(f"{src:40s} -> {' -> '.join(route):10s}: reference on shrink's HF output, "
              f"max |logprob - fixture| = {err:.2e}")
print(f"worst {worst:.2e}: {'OK' if worst < 1e-4 else 'MISMATCH'}")
sys.exit(0 if worst < 1e-4 else 1)
