# make_seeds.py - writes the seed corpora fuzz/corpus/<format>/ (committed; run again only to
# change them): small valid files of every format, from the shared models and test fixtures
# (tok512.model/.bin, config.json files, GPT-2 merges, stories260K.gguf metadata) and built
# by hand (safetensors, GGUF, llama2.c checkpoints, a sentencepiece model, tokenizer.json of
# both families).
#   python3 fuzz/make_seeds.py [MODELS_DIR]
import json, struct, os, shutil
import sys
# Run from the repository root with ../shared beside it; writes fuzz/corpus/<format>/.
R = 'fuzz/corpus'
M = sys.argv[1] if len(sys.argv) > 1 else '../shared/models'
def out(fmt, name, data):
    d = os.path.join(R, fmt); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)

# ---- safetensors
def st(tensors, meta=None, pad=0):
    hdr = {}
    if meta is not None: hdr['__metadata__'] = meta
    off = 0; blob = b''
    for name, dt, shape, esz in tensors:
        n = 1
        for s in shape: n *= s
        b = bytes((i * 7 + 3) & 255 for i in range(n * esz))
        hdr[name] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(b)]}
        off += len(b); blob += b
    h = json.dumps(hdr, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8 + pad)
    return struct.pack('<Q', len(h)) + h + blob
out('safetensors', 'llama_tiny.safetensors', st([
    ('model.embed_tokens.weight', 'F32', [8, 4], 4),
    ('model.layers.0.input_layernorm.weight', 'F32', [4], 4),
    ('model.layers.0.self_attn.q_proj.weight', 'F16', [4, 4], 2),
    ('model.layers.0.mlp.up_proj.weight', 'BF16', [6, 4], 2),
    ('model.norm.weight', 'F32', [4], 4)], meta={'format': 'pt'}))
out('safetensors', 'raw_dtypes.safetensors', st([
    ('tokens', 'I32', [2, 3], 4), ('grad', 'F64', [3], 8), ('mask', 'BOOL', [4], 1),
    ('u8', 'U8', [1, 1, 2], 1), ('scalar', 'F32', [], 4), ('empty', 'F16', [0, 5], 2),
    ('f8', 'F8_E4M3', [2], 1), ('i64', 'I64', [1], 8)]))
out('safetensors', 'gpt2_tiny.safetensors', st([
    ('wte.weight', 'F32', [16, 8], 4), ('h.0.attn.c_attn.weight', 'F32', [8, 24], 4),
    ('h.0.attn.c_attn.bias', 'F32', [24], 4), ('ln_f.weight', 'F16', [8], 2)]))
out('safetensors', 'empty.safetensors', struct.pack('<Q', 8) + b'{}      ')

# ---- llama2.c checkpoints
def l2c(D, F, L, H, KV, V, S):
    hd = D // H; kvd = KV * hd; Va = abs(V)
    n = Va*D + L*D + L*D*D + 2*L*kvd*D + L*D*D + L*D + 3*L*F*D + D + 2*S*(hd//2)
    if V < 0: n += Va * D
    return struct.pack('<7i', D, F, L, H, KV, V, S) + b''.join(struct.pack('<f', ((i % 13) - 6) / 10) for i in range(n))
out('llama2c', 'tied.bin', l2c(8, 16, 1, 2, 1, 6, 4))
out('llama2c', 'untied.bin', l2c(8, 12, 2, 2, 2, -5, 2))
out('llama2c', 'header_only.bin', struct.pack('<7i', 64, 172, 5, 8, 4, 512, 512))

# ---- configs
for name, src in [('stories260K-hf', 'stories260K-hf'), ('mix-gpt2-30m', 'mix-gpt2-30m'), ('mix-llama-14m', 'mix-llama-14m')]:
    out('config', name + '.config.json', open(f'{M}/{src}/config.json', 'rb').read())
    out('json', name + '.config.json', open(f'{M}/{src}/config.json', 'rb').read())
out('config', 'gpt2.tokenizer_config.json', open(f'{M}/mix-gpt2-30m/tokenizer_config.json', 'rb').read())
out('config', 'llama.tokenizer_config.json', open(f'{M}/mix-llama-14m/tokenizer_config.json', 'rb').read())
out('config', 'qwen2_rope.config.json', json.dumps({
    'architectures': ['Qwen2ForCausalLM'], 'model_type': 'qwen2', 'hidden_size': 32, 'intermediate_size': 64,
    'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2, 'head_dim': 8,
    'vocab_size': 100, 'max_position_embeddings': 64, 'rms_norm_eps': 1e-6, 'rope_scaling': None,
    'rope_parameters': {'rope_theta': 1000000.0, 'rope_type': 'default'}, 'attention_bias': True,
    'tie_word_embeddings': False, 'hidden_act': 'silu', 'bos_token_id': None, 'eos_token_id': [2, 3],
    'dtype': 'bfloat16'}, indent=1))

# ---- json
out('json', 'index.json', json.dumps({'metadata': {'total_size': 123}, 'weight_map': {
    'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors',
    'c.weight': 'model-00001-of-00002.safetensors'}}, indent=2))
out('json', 'escapes.json', '{"s": "a\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/\\b\\f\\r", "n": [0, -0, 1.5e-3, -12, 18446744073709551615, 9223372036854775807, -9223372036854775808, 1E+2], "b": [true, false, null], "e": {}, "a": [], "dup": 1, "dup": 2, "nested": [[[{"x": [1]}]]]}')
out('json', 'utf8.json', '["caf\u00e9", "\u4e2d\u6587", "\U0001F600", "\u2581"]'.encode('utf-8'))

# ---- tokenizer.model / tokenizer.bin
out('tokenizer_model', 'tok512.model', open(f'{M}/stories260K/tok512.model', 'rb').read())
out('tokenizer_bin', 'tok512.bin', open(f'{M}/stories260K/tok512.bin', 'rb').read())

# a minimal sentencepiece model written by hand: 3 control pieces, bytes, a few pieces
def varint(v):
    b = b''
    while True:
        c = v & 127; v >>= 7
        if v: b += bytes([c | 128])
        else: return b + bytes([c])
def fld(f, w, payload):
    k = varint(f << 3 | w)
    if w == 2: return k + varint(len(payload)) + payload
    return k + payload
def piece(s, score, typ):
    return fld(1, 2, fld(1, 2, s.encode()) + fld(2, 5, struct.pack('<f', score)) + fld(3, 0, varint(typ)))
pieces = [('<unk>', 0, 2), ('<s>', 0, 3), ('</s>', 0, 3)] + [('<0x%02X>' % b, 0, 6) for b in range(256)] + \
         [('\u2581', -1, 1), ('a', -2, 1), ('b', -3, 1), ('ab', -4, 1), ('\u2581ab', -5, 1), ('\u2581a', -6, 1)]
trainer = fld(3, 0, varint(2)) + fld(35, 0, varint(1)) + fld(40, 0, varint(0)) + fld(41, 0, varint(1)) + fld(42, 0, varint(2))
norm = fld(1, 2, b'identity') + fld(3, 0, varint(1)) + fld(4, 0, varint(0)) + fld(5, 0, varint(1))
out('tokenizer_model', 'tiny_bpe.model', b''.join(piece(*p) for p in pieces) + fld(2, 2, trainer) + fld(3, 2, norm))

def l2ctok(pieces, maxlen):
    b = struct.pack('<i', maxlen)
    for s, sc in pieces:
        e = s.encode(); b += struct.pack('<fi', sc, len(e)) + e
    return b
out('tokenizer_bin', 'tiny.bin', l2ctok([('<unk>', 0), ('\n<s>\n', 0), ('\n</s>\n', 0)] + [('<0x%02X>' % b, 0) for b in range(256)] +
    [(' ', -1), ('a', -2), ('b', -3), ('ab', -4), (' ab', -5), ('\u00e9', -6)], 8))

# ---- tokenizer.json
# parse tok512.model to build a LlamaConverter-style tokenizer.json (as tests/test_tokenizer.c's spm_json)
def rd_varint(b, i):
    x = 0; s = 0
    while True:
        c = b[i]; i += 1; x |= (c & 127) << s; s += 7
        if not c & 128: return x, i
def spm_pieces(b):
    i = 0; ps = []
    while i < len(b):
        k, i = rd_varint(b, i); f, w = k >> 3, k & 7
        if w == 0: _, i = rd_varint(b, i); continue
        if w == 5: i += 4; continue
        if w == 1: i += 8; continue
        l, i = rd_varint(b, i); sub = b[i:i + l]; i += l
        if f != 1: continue
        j = 0; s = ''; sc = 0.0; ty = 1
        while j < len(sub):
            k, j = rd_varint(sub, j); ff, ww = k >> 3, k & 7
            if ww == 2:
                l2, j = rd_varint(sub, j); 
                if ff == 1: s = sub[j:j + l2].decode()
                j += l2
            elif ww == 5: sc = struct.unpack('<f', sub[j:j + 4])[0]; j += 4
            elif ww == 0:
                v, j = rd_varint(sub, j)
                if ff == 3: ty = v
        ps.append((s, sc, ty))
    return ps
ps = spm_pieces(open(f'{M}/stories260K/tok512.model', 'rb').read())
vocab = {s: i for i, (s, sc, ty) in enumerate(ps)}
merges = []
for i, (s, sc, ty) in enumerate(ps):
    if ty != 1: continue
    for k in range(1, len(s)):
        a, b = s[:k], s[k:]
        if a in vocab and b in vocab: merges.append((sc, vocab[a], vocab[b], a, b))
merges.sort(key=lambda m: (-m[0], m[1], m[2]))
tj = {'version': '1.0', 'added_tokens': [{'id': 0, 'content': '<unk>', 'special': True}, {'id': 1, 'content': '<s>', 'special': True}, {'id': 2, 'content': '</s>', 'special': True}],
      'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'Prepend', 'prepend': '\u2581'}, {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '\u2581'}]},
      'pre_tokenizer': None,
      'decoder': {'type': 'Sequence', 'decoders': [{'type': 'Replace', 'pattern': {'String': '\u2581'}, 'content': ' '}, {'type': 'ByteFallback'}, {'type': 'Fuse'}, {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0}]},
      'model': {'type': 'BPE', 'dropout': None, 'unk_token': '<unk>', 'byte_fallback': True, 'fuse_unk': True, 'vocab': vocab, 'merges': [[m[3], m[4]] for m in merges]}}
out('tokenizer_json', 'tok512.tokenizer.json', json.dumps(tj, ensure_ascii=False))

# a small GPT-2 byte-level tokenizer.json: the 256 byte pieces, the first merges of GPT-2's merges.txt
def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('\u00a1'), ord('\u00ac') + 1)) + list(range(ord('\u00ae'), ord('\u00ff') + 1))
    cs = bs[:]; n = 0
    for b in range(256):
        if b not in bs: bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, [chr(c) for c in cs]))
bu = bytes_to_unicode()
gv = {bu[b]: i for i, b in enumerate(sorted(bu))}
gm = []
for line in open('tests/fixtures/models/tokenizers/gpt2/merges.txt', encoding='utf-8'):
    if line.startswith('#version'): continue
    a, b = line.rstrip('\n').split(' ')
    if a in gv and b in gv:
        gv.setdefault(a + b, len(gv)); gm.append(a + ' ' + b)
    if len(gm) >= 150: break
gv['<|endoftext|>'] = len(gv)
gj = {'version': '1.0', 'added_tokens': [{'id': gv['<|endoftext|>'], 'content': '<|endoftext|>', 'special': True}],
      'normalizer': None, 'pre_tokenizer': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
      'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
      'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'vocab': gv, 'merges': gm}}
out('tokenizer_json', 'gpt2_small.tokenizer.json', json.dumps(gj, ensure_ascii=False))
# the tiny Llama tokenizer.json of tests/test_tokenizer.c
out('tokenizer_json', 'llama_tiny.tokenizer.json', '{"model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "\u2581": 4, "a": 5, "b": 6, "ab": 7, "\u2581ab": 8}, "merges": ["a b", "\u2581 ab"]}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}, "added_tokens": [{"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}]}'.encode('utf-8'))
out('tokenizer_json', 'metaspace.tokenizer.json', json.dumps({'model': {'type': 'BPE', 'vocab': {'<unk>': 0, '\u2581': 1, 'x': 2, '\u2581x': 3}, 'merges': [['\u2581', 'x']], 'unk_token': '<unk>'}, 'pre_tokenizer': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'first'}, 'decoder': {'type': 'Metaspace'}}, ensure_ascii=False))

# ---- GGUF: tiny llama (f32; f16 untied, alignment 64) and gpt2 models whose metadata
# follow llama.cpp's (stories260K.gguf's keys with smaller sizes), every value type and some
# quantized tensor types, and ggml's own kv-types test file
FMT = {0:'<B',1:'<b',2:'<H',3:'<h',4:'<I',5:'<i',6:'<f',7:'<?',10:'<Q',11:'<q',12:'<d'}
class GR:
    def __init__(s, b): s.b = b; s.p = 0
    def take(s, n): v = s.b[s.p:s.p+n]; s.p += n; return v
    def u(s, f): v = struct.unpack_from(f, s.b, s.p)[0]; s.p += struct.calcsize(f); return v
    def str(s): n = s.u('<Q'); return s.take(n).decode('utf-8', 'replace')
def val(r, t):
    if t == 8: return r.str()
    if t == 9:
        at = r.u('<I'); n = r.u('<Q'); return (at, [val(r, at) for _ in range(n)])
    return r.u(FMT[t])
def read(path):
    b = open(path, 'rb').read(); r = GR(b)
    magic, ver, nt, nkv = r.u('<I'), r.u('<I'), r.u('<Q'), r.u('<Q')
    kvs = []
    for _ in range(nkv):
        k = r.str(); t = r.u('<I'); kvs.append((k, t, val(r, t)))
    ts = []
    for _ in range(nt):
        name = r.str(); nd = r.u('<I'); ne = [r.u('<q') for _ in range(nd)]; ty = r.u('<I'); off = r.u('<Q')
        ts.append((name, ne, ty, off))
    return ver, kvs, ts
RG = 'fuzz/corpus/gguf'; os.makedirs(RG, exist_ok=True)
SH = os.path.dirname(M.rstrip('/'))
def s_(x): e = x.encode(); return struct.pack('<Q', len(e)) + e
PK = {0:'<B',1:'<b',2:'<H',3:'<h',4:'<I',5:'<i',6:'<f',7:'<?',10:'<Q',11:'<q',12:'<d'}
def v_(t, v):
    if t == 8: return s_(v)
    if t == 9:
        at, items = v; return struct.pack('<IQ', at, len(items)) + b''.join(v_(at, i) for i in items)
    return struct.pack(PK[t], v)
def gguf(kvs, tensors, align=32):
    # tensors: (name, ne, type, bytes)
    h = struct.pack('<IIQQ', 0x46554747, 3, len(tensors), len(kvs))
    for k, t, v in kvs: h += s_(k) + struct.pack('<I', t) + v_(t, v)
    off = 0; data = b''
    for name, ne, ty, b in tensors:
        h += s_(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<q', n) for n in ne) + struct.pack('<IQ', ty, off)
        pad = (-len(b)) % align
        data += b + b'\0' * pad; off += len(b) + pad
    h += b'\0' * ((-len(h)) % align)
    return h + data
def f32(n, seed=1): return b''.join(struct.pack('<f', ((i * seed) % 17 - 8) / 16) for i in range(n))
def f16(n, seed=1): return b''.join(struct.pack('<e', ((i * seed) % 17 - 8) / 16) for i in range(n))
def prod(ne):
    p = 1
    for n in ne: p *= n
    return p

_, kvs, _ = read(SH + '/fixtures/gguf/stories260K.gguf')
D, F, H, KV, V, S = 8, 16, 2, 1, 512, 16
hd = D // H
repl = {'llama.context_length': S, 'llama.embedding_length': D, 'llama.feed_forward_length': F,
        'llama.attention.head_count': H, 'llama.attention.head_count_kv': KV, 'llama.block_count': 1,
        'llama.rope.dimension_count': hd}
kvs = [(k, t, repl.get(k, v)) for k, t, v in kvs]
def llama_tensors(dt16, untied):
    T = []
    def add(name, ne, half=False):
        n = prod(ne)
        if half: T.append((name, ne, 1, f16(n, len(T) + 3)))
        else: T.append((name, ne, 0, f32(n, len(T) + 3)))
    add('token_embd.weight', [D, V])
    add('output_norm.weight', [D])
    if untied: add('output.weight', [D, V], dt16)
    add('blk.0.attn_q.weight', [D, D], dt16); add('blk.0.attn_k.weight', [D, KV * hd], dt16)
    add('blk.0.attn_v.weight', [D, KV * hd], dt16); add('blk.0.attn_output.weight', [D, D], dt16)
    add('blk.0.attn_norm.weight', [D]); add('blk.0.ffn_gate.weight', [D, F], dt16)
    add('blk.0.ffn_down.weight', [F, D], dt16); add('blk.0.ffn_up.weight', [D, F], dt16)
    add('blk.0.ffn_norm.weight', [D])
    return T
open(RG + '/llama-tiny-f32.gguf', 'wb').write(gguf(kvs, llama_tensors(False, False)))
open(RG + '/llama-tiny-f16-untied.gguf', 'wb').write(gguf(kvs + [('general.alignment', 4, 64)], llama_tensors(True, True), align=64))

# GPT-2: tokens and merges of fuzz/corpus/tokenizer_json/gpt2_small.tokenizer.json
tj = json.load(open('fuzz/corpus/tokenizer_json/gpt2_small.tokenizer.json', encoding='utf-8'))
vocab = sorted(tj['model']['vocab'].items(), key=lambda kv: kv[1])
toks = [k for k, _ in vocab]
V2 = len(toks); D2, S2 = 8, 16
ttype = [3 if t == '<|endoftext|>' else 1 for t in toks]
kv2 = [('general.architecture', 8, 'gpt2'), ('general.name', 8, 'gpt2-tiny'),
       ('gpt2.context_length', 4, S2), ('gpt2.embedding_length', 4, D2), ('gpt2.feed_forward_length', 4, 4 * D2),
       ('gpt2.block_count', 4, 1), ('gpt2.attention.head_count', 4, 2), ('gpt2.attention.layer_norm_epsilon', 6, 1e-5),
       ('general.file_type', 4, 1), ('tokenizer.ggml.model', 8, 'gpt2'), ('tokenizer.ggml.pre', 8, 'gpt-2'),
       ('tokenizer.ggml.tokens', 9, (8, toks)), ('tokenizer.ggml.token_type', 9, (5, ttype)),
       ('tokenizer.ggml.merges', 9, (8, tj['model']['merges'])),
       ('tokenizer.ggml.bos_token_id', 4, V2 - 1), ('tokenizer.ggml.eos_token_id', 4, V2 - 1),
       ('tokenizer.ggml.add_bos_token', 7, False)]
T2 = []
def add2(name, ne, half=False):
    n = prod(ne); T2.append((name, ne, 1 if half else 0, (f16 if half else f32)(n, len(T2) + 5)))
add2('token_embd.weight', [D2, V2]); add2('position_embd.weight', [D2, S2])
add2('output_norm.weight', [D2]); add2('output_norm.bias', [D2])
add2('blk.0.attn_norm.weight', [D2]); add2('blk.0.attn_norm.bias', [D2])
add2('blk.0.attn_qkv.weight', [D2, 3 * D2], True); add2('blk.0.attn_qkv.bias', [3 * D2])
add2('blk.0.attn_output.weight', [D2, D2], True); add2('blk.0.attn_output.bias', [D2])
add2('blk.0.ffn_norm.weight', [D2]); add2('blk.0.ffn_norm.bias', [D2])
add2('blk.0.ffn_up.weight', [D2, 4 * D2], True); add2('blk.0.ffn_up.bias', [4 * D2])
add2('blk.0.ffn_down.weight', [4 * D2, D2], True); add2('blk.0.ffn_down.bias', [D2])
open(RG + '/gpt2-tiny.gguf', 'wb').write(gguf(kv2, T2))

# every value type and nested arrays; tensors of quantized types (sizes from ggml's table)
kv3 = [('general.alignment', 4, 16), ('u8', 0, 1), ('i8', 1, -1), ('u16', 2, 2), ('i16', 3, -2), ('u32', 4, 3),
       ('i32', 5, -3), ('f32', 6, 0.5), ('bool', 7, True), ('str', 8, 'caf\u00e9'), ('u64', 10, 2**63), ('i64', 11, -2**62),
       ('f64', 12, 1e300), ('arr.u8', 9, (0, [1, 2, 3])), ('arr.f64', 9, (12, [1.5])), ('arr.empty', 9, (8, [])),
       ('arr.nested', 9, (9, [(4, [1, 2]), (8, ['x', 'yz'])])), ('arr.bool', 9, (7, [True, False]))]
T3 = [('q4_0', [32, 2], 2, bytes(36)), ('q8_0', [64], 8, bytes(68)), ('q4_K', [256], 12, bytes(144)),
      ('q6_K', [256, 1, 1, 1], 14, bytes(210)), ('bf16', [3, 2], 30, bytes(12)), ('i32', [2], 26, bytes(8))]
open(RG + '/types-and-quants.gguf', 'wb').write(gguf(kv3, T3, align=16))
# shrink's own types (GGUF ids 1000..1013, docs/formats.md): the tiny llama with its matrices in
# the row-head types (rows of 8 and 16: f32 d [, f32 m or a] before each row's int8 codes), and
# one tensor of each block type
def own_rows(ty, ne, seed):
    head = 8 if ty in (1001, 1003, 1013) else 4
    b = b''
    for r in range(prod(ne[1:])):
        b += struct.pack('<f', 0.01 * (1 + (r + seed) % 5))
        if head == 8: b += struct.pack('<f', -0.05 if ty != 1013 else 0.02)
        b += bytes(((i * seed + r) * 37) & 255 for i in range(ne[0]))
    return b
def own_tensors():
    T = []
    def add(name, ne, ty=0):
        T.append((name, ne, ty, f32(prod(ne), len(T) + 3) if ty == 0 else own_rows(ty, ne, len(T) + 3)))
    add('token_embd.weight', [D, V], 1000)
    add('output_norm.weight', [D])
    add('blk.0.attn_q.weight', [D, D], 1001); add('blk.0.attn_k.weight', [D, KV * hd], 1002)
    add('blk.0.attn_v.weight', [D, KV * hd], 1003); add('blk.0.attn_output.weight', [D, D], 1012)
    add('blk.0.attn_norm.weight', [D]); add('blk.0.ffn_gate.weight', [D, F], 1013)
    add('blk.0.ffn_down.weight', [F, D], 1000); add('blk.0.ffn_up.weight', [D, F], 1001)
    add('blk.0.ffn_norm.weight', [D])
    return T
open(RG + '/llama-tiny-own-int8.gguf', 'wb').write(gguf(kvs, own_tensors()))
T4 = [('int4_g32', [32, 2], 1004, bytes(36)), ('int4_g64', [64], 1005, bytes(34)),
      ('int4_g128', [128], 1006, bytes(66)), ('int4_g32_asym', [32], 1007, bytes(20)),
      ('int4_g64_asym', [64, 1], 1008, bytes(36)), ('int4_g128_asym', [128], 1009, bytes(68)),
      ('nf4', [64, 2], 1010, bytes(68)), ('nf4_dq', [128, 2], 1011, bytes(2 * (4 + 66))),
      ('int8_ch', [3, 2], 1000, bytes(14))]
open(RG + '/own-types.gguf', 'wb').write(gguf([('general.alignment', 4, 16)], T4, align=16))
# the unstructured sparse types (ids 1019 sparse_f16, 1020 sparse_i8; docs/formats.md): rows
# of 64 with a sound index (u32 nnz, u32 nb = 1, [f32 d,] u64 bitmap, 32 value slots), so a
# mutation of the bitmap or the count reaches the reader's index check
def sparse_row(i8, bits):
    nnz = bin(bits).count('1')
    head = struct.pack('<II', nnz, 1) + (struct.pack('<f', 0.01) if i8 else b'')
    vals = bytes((3 * k + 1) & 127 for k in range(nnz)) if i8 else b''.join(
        struct.pack('<e', 0.25 * (k + 1)) for k in range(nnz))
    return head + struct.pack('<Q', bits) + vals + bytes((32 - nnz) * (1 if i8 else 2))
T5 = [('sparse_f16', [64, 2], 1019, sparse_row(0, 0x8000000100F00021) + sparse_row(0, 0)),
      ('sparse_i8', [64], 1020, sparse_row(1, 0xFFFF))]
open(RG + '/sparse-types.gguf', 'wb').write(gguf([('general.alignment', 4, 16)], T5, align=16))
shutil.copy(SH + '/fixtures/gguf/ggml-gguf-kv-types.gguf', RG)
os.chmod(RG + '/ggml-gguf-kv-types.gguf', 0o644)
