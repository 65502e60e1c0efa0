#!/usr/bin/env python3
"""Writes a random-weight Hugging Face checkpoint (config.json +
model.safetensors, F32) with a real model's exact shapes, for
scripts/hf_bench.sh. Standard library only: the safetensors layout is
written here by hand (8-byte LE header length, JSON header padded with
spaces to a multiple of 8, tensors contiguous), independently of
export/safetensors.cpp. Values come from one small random block, tiled
(decode speed does not depend on them).

  scripts/hf_random.py mamba-130m OUT_DIR
  scripts/hf_random.py mamba-370m OUT_DIR     (1.5 GB: the import's memory check)
  scripts/hf_random.py pythia-160m OUT_DIR
"""
import array, json, math, os, random, struct, sys

def main():
    which, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(1)
    block = array.array('f', [rnd.uniform(-0.05, 0.05) for _ in range(1 << 16)])
    tensors = []  # (name, shape, fill) fill: 'rand' | float constant | 'alog'
    if which in ('mamba-130m', 'mamba-370m'):
        V, D, L, N, K = (50280, 768, 24, 16, 4) if which == 'mamba-130m' else (50280, 1024, 48, 16, 4)
        E, R = 2 * D, math.ceil(D / 16)
        config = {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": V,
                  "hidden_size": D, "num_hidden_layers": L, "state_size": N, "expand": 2,
                  "intermediate_size": E, "conv_kernel": K, "time_step_rank": R,
                  "layer_norm_epsilon": 1e-5, "use_bias": False, "use_conv_bias": True,
                  "hidden_act": "silu", "residual_in_fp32": True, "tie_word_embeddings": True,
                  "eos_token_id": 0, "torch_dtype": "float32"}
        tensors.append(("backbone.embeddings.weight", [V, D], 'rand'))
        for i in range(L):
            p = f"backbone.layers.{i}."
            tensors += [(p + "norm.weight", [D], 1.0), (p + "mixer.in_proj.weight", [2 * E, D], 'rand'),
                        (p + "mixer.conv1d.weight", [E, 1, K], 'rand'), (p + "mixer.conv1d.bias", [E], 0.0),
                        (p + "mixer.x_proj.weight", [R + 2 * N, E], 'rand'),
                        (p + "mixer.dt_proj.weight", [E, R], 'rand'), (p + "mixer.dt_proj.bias", [E], -4.0),
                        (p + "mixer.A_log", [E, N], 'alog'), (p + "mixer.D", [E], 1.0),
                        (p + "mixer.out_proj.weight", [D, E], 'rand')]
        tensors.append(("backbone.norm_f.weight", [D], 1.0))
    elif which == 'pythia-160m':
        V, D, L, H, F = 50304, 768, 12, 12, 3072
        config = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "vocab_size": V,
                  "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
                  "intermediate_size": F, "hidden_act": "gelu", "rotary_pct": 0.25,
                  "rotary_emb_base": 10000, "max_position_embeddings": 2048, "layer_norm_eps": 1e-5,
                  "use_parallel_residual": True, "tie_word_embeddings": False, "eos_token_id": 0,
                  "torch_dtype": "float16"}
        tensors.append(("gpt_neox.embed_in.weight", [V, D], 'rand'))
        for i in range(L):
            p = f"gpt_neox.layers.{i}."
            for ln in ("input_layernorm", "post_attention_layernorm"):
                tensors += [(p + ln + ".weight", [D], 1.0), (p + ln + ".bias", [D], 0.0)]
            tensors += [(p + "attention.query_key_value.weight", [3 * D, D], 'rand'),
                        (p + "attention.query_key_value.bias", [3 * D], 0.0),
                        (p + "attention.dense.weight", [D, D], 'rand'), (p + "attention.dense.bias", [D], 0.0),
                        (p + "mlp.dense_h_to_4h.weight", [F, D], 'rand'), (p + "mlp.dense_h_to_4h.bias", [F], 0.0),
                        (p + "mlp.dense_4h_to_h.weight", [D, F], 'rand'), (p + "mlp.dense_4h_to_h.bias", [D], 0.0)]
        tensors += [("gpt_neox.final_layer_norm.weight", [D], 1.0), ("gpt_neox.final_layer_norm.bias", [D], 0.0),
                    ("embed_out.weight", [V, D], 'rand')]
    else:
        sys.exit("unknown model " + which)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    tensors.sort(key=lambda t: t[0])  # one dtype: the reference writer orders by name
    for name, shape, _ in tensors:
        n = math.prod(shape) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for name, shape, fill in tensors:
            n = math.prod(shape)
            if fill == 'rand':
                reps, rest = divmod(n, len(block))
                for _ in range(reps):
                    block.tofile(f)
                block[:rest].tofile(f)
            elif fill == 'alog':  # log(1..N) per row
                row = array.array('f', [math.log(j + 1) for j in range(shape[1])])
                for _ in range(shape[0]):
                    row.tofile(f)
            else:
                array.array('f', [fill] * n).tofile(f)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {out}: {which}, {len(tensors)} tensors, {off} bytes of F32 weights")

main()
