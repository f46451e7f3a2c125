#!/usr/bin/python3
"""A reference for floe's Hugging Face checkpoint reader and writer (runtime/state/hf_checkpoint.hpp).

The transformers package is not available here, so this file re-implements the forward passes
of BertForSequenceClassification, BertForMaskedLM and ViTForImageClassification (transformers
4.x, eval mode) over state dicts with Hugging Face's parameter names, in the order of
operations of the originals: modeling_bert.py and modeling_vit.py. Only python3-torch is needed
(safetensors files are read and written by hand: the format is 8 bytes of header length, a JSON
header, the data).

  make --out DIR                      tiny random checkpoints (seeded), the inputs, the logits
  logits --folder F --inputs I --out O  the logits of any such Hugging Face folder
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}


# --- safetensors, by hand ---------------------------------------------------------------------

def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data, out = raw[8 + n:], {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        buf = bytearray(data[begin:end])
        t = torch.frombuffer(buf, dtype=DTYPES[e["dtype"]]) if buf else torch.empty(0, dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


def load_folder(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    st = os.path.join(folder, "model.safetensors")
    sd = read_safetensors(st) if os.path.exists(st) else torch.load(os.path.join(folder, "pytorch_model.bin"))
    # What transformers does to old names when it loads (PreTrainedModel._fix_key).
    fixed = {}
    for k, v in sd.items():
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        fixed[k] = v.float() if v.is_floating_point() else v
    return config, fixed


# --- the models, as transformers computes them -------------------------------------------------

def linear(sd, prefix, x):
    return F.linear(x, sd[prefix + ".weight"], sd.get(prefix + ".bias"))


def layer_norm(sd, prefix, x, eps):
    return F.layer_norm(x, (x.shape[-1],), sd[prefix + ".weight"], sd[prefix + ".bias"], eps)


def act(config, x):
    assert config.get("hidden_act", "gelu") == "gelu", config.get("hidden_act")
    return F.gelu(x)  # transformers' "gelu" is GELUActivation: the erf form


def self_attention(sd, prefix, config, hidden, mask):
    """BertSelfAttention / ViTSelfAttention: scores scaled after the product, mask added."""
    heads = config["num_attention_heads"]
    n, l, d = hidden.shape
    hd = d // heads

    def split(t):
        return t.view(n, l, heads, hd).permute(0, 2, 1, 3)

    q = split(linear(sd, prefix + ".query", hidden))
    k = split(linear(sd, prefix + ".key", hidden))
    v = split(linear(sd, prefix + ".value", hidden))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
    if mask is not None:
        scores = scores + mask
    probs = F.softmax(scores, dim=-1)
    context = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
    return context.view(n, l, d)


def bert_encoder(sd, p, config, ids):
    """BertModel's sequence output; p is "bert." or "" (a BertModel saved on its own)."""
    eps = config.get("layer_norm_eps", 1e-12)
    n, l = ids.shape
    positions = torch.arange(l).unsqueeze(0)
    types = torch.zeros_like(ids)
    h = F.embedding(ids, sd[p + "embeddings.word_embeddings.weight"])
    h = h + F.embedding(types, sd[p + "embeddings.token_type_embeddings.weight"])
    h = h + F.embedding(positions, sd[p + "embeddings.position_embeddings.weight"])
    h = layer_norm(sd, p + "embeddings.LayerNorm", h, eps)
    # get_extended_attention_mask: [N, 1, 1, L], (1 - mask) * the dtype's lowest value
    mask = (ids != config.get("pad_token_id", 0)).to(h.dtype)[:, None, None, :]
    mask = (1.0 - mask) * torch.finfo(h.dtype).min
    for i in range(config["num_hidden_layers"]):
        b = f"{p}encoder.layer.{i}."
        a = self_attention(sd, b + "attention.self", config, h, mask)
        h = layer_norm(sd, b + "attention.output.LayerNorm", linear(sd, b + "attention.output.dense", a) + h, eps)
        inter = act(config, linear(sd, b + "intermediate.dense", h))
        h = layer_norm(sd, b + "output.LayerNorm", linear(sd, b + "output.dense", inter) + h, eps)
    return h


def bert_classify(sd, config, ids):
    h = bert_encoder(sd, "bert.", config, ids)
    pooled = torch.tanh(linear(sd, "bert.pooler.dense", h[:, 0]))
    return linear(sd, "classifier", pooled)


def bert_mlm(sd, config, ids):
    h = bert_encoder(sd, "bert.", config, ids)
    eps = config.get("layer_norm_eps", 1e-12)
    t = act(config, linear(sd, "cls.predictions.transform.dense", h))
    t = layer_norm(sd, "cls.predictions.transform.LayerNorm", t, eps)
    # tie_word_embeddings (default true): the decoder is the word embedding matrix
    if config.get("tie_word_embeddings", True):
        w = sd["bert.embeddings.word_embeddings.weight"]
    else:
        w = sd["cls.predictions.decoder.weight"]
    return F.linear(t, w, sd["cls.predictions.bias"])


def vit_classify(sd, config, images):
    eps = config.get("layer_norm_eps", 1e-12)
    patch = config["patch_size"]
    x = F.conv2d(images, sd["vit.embeddings.patch_embeddings.projection.weight"],
                 sd["vit.embeddings.patch_embeddings.projection.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    cls = sd["vit.embeddings.cls_token"].expand(x.shape[0], -1, -1)
    h = torch.cat((cls, x), dim=1) + sd["vit.embeddings.position_embeddings"]
    for i in range(config["num_hidden_layers"]):
        b = f"vit.encoder.layer.{i}."
        a = self_attention(sd, b + "attention.attention", config, layer_norm(sd, b + "layernorm_before", h, eps), None)
        h = linear(sd, b + "attention.output.dense", a) + h
        inter = act(config, linear(sd, b + "intermediate.dense", layer_norm(sd, b + "layernorm_after", h, eps)))
        h = linear(sd, b + "output.dense", inter) + h
    h = layer_norm(sd, "vit.layernorm", h, eps)
    return linear(sd, "classifier", h[:, 0, :])


def logits_of(config, sd, inputs):
    arch = config["architectures"][0]
    with torch.no_grad():
        if arch == "BertForSequenceClassification":
            return bert_classify(sd, config, inputs["ids"])
        if arch == "BertForMaskedLM":
            return bert_mlm(sd, config, inputs["ids"])
        if arch == "ViTForImageClassification":
            return vit_classify(sd, config, inputs["images"])
    raise SystemExit(f"hf_reference: unsupported architecture {arch}")


# --- tiny random checkpoints --------------------------------------------------------------------

def labels(n):
    return {"id2label": {str(i): f"LABEL_{i}" for i in range(n)}, "label2id": {f"LABEL_{i}": i for i in range(n)}}


def bert_config(arch, eps=1e-12, **extra):
    c = {"architectures": [arch], "model_type": "bert", "hidden_size": 16, "num_hidden_layers": 2,
         "num_attention_heads": 2, "intermediate_size": 24, "hidden_act": "gelu", "vocab_size": 40,
         "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": eps, "pad_token_id": 0,
         "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "position_embedding_type": "absolute"}
    c.update(extra)
    return c


def vit_config(**extra):
    c = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": 16,
         "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24, "hidden_act": "gelu",
         "image_size": 8, "patch_size": 4, "num_channels": 1, "layer_norm_eps": 1e-12, "qkv_bias": True}
    c.update(labels(3))
    c.update(extra)
    return c


def random_like_hf(shapes, gen):
    """Weights large enough that attention, masking and every bias matter in the logits."""
    out = {}
    for name, shape in shapes.items():
        if name.endswith("LayerNorm.weight") or name.endswith("layernorm_before.weight") \
                or name.endswith("layernorm_after.weight") or name == "vit.layernorm.weight":
            out[name] = 1 + 0.2 * torch.randn(shape, generator=gen)
        else:
            out[name] = 0.3 * torch.randn(shape, generator=gen)
    return out


def bert_shapes(c, head):
    d, f, shapes = c["hidden_size"], c["intermediate_size"], {}
    shapes["bert.embeddings.word_embeddings.weight"] = (c["vocab_size"], d)
    shapes["bert.embeddings.position_embeddings.weight"] = (c["max_position_embeddings"], d)
    shapes["bert.embeddings.token_type_embeddings.weight"] = (c["type_vocab_size"], d)
    shapes["bert.embeddings.LayerNorm.weight"] = shapes["bert.embeddings.LayerNorm.bias"] = (d,)
    for i in range(c["num_hidden_layers"]):
        b = f"bert.encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[b + m + ".weight"], shapes[b + m + ".bias"] = (d, d), (d,)
        shapes[b + "attention.output.LayerNorm.weight"] = shapes[b + "attention.output.LayerNorm.bias"] = (d,)
        shapes[b + "intermediate.dense.weight"], shapes[b + "intermediate.dense.bias"] = (f, d), (f,)
        shapes[b + "output.dense.weight"], shapes[b + "output.dense.bias"] = (d, f), (d,)
        shapes[b + "output.LayerNorm.weight"] = shapes[b + "output.LayerNorm.bias"] = (d,)
    if head == "classify":
        shapes["bert.pooler.dense.weight"], shapes["bert.pooler.dense.bias"] = (d, d), (d,)
        shapes["classifier.weight"], shapes["classifier.bias"] = (len(c["id2label"]), d), (len(c["id2label"]),)
    else:
        shapes["cls.predictions.transform.dense.weight"] = (d, d)
        shapes["cls.predictions.transform.dense.bias"] = (d,)
        shapes["cls.predictions.transform.LayerNorm.weight"] = (d,)
        shapes["cls.predictions.transform.LayerNorm.bias"] = (d,)
        shapes["cls.predictions.bias"] = (c["vocab_size"],)
    return shapes


def vit_shapes(c):
    d, f, p = c["hidden_size"], c["intermediate_size"], c["patch_size"]
    patches = (c["image_size"] // p) ** 2
    shapes = {"vit.embeddings.cls_token": (1, 1, d), "vit.embeddings.position_embeddings": (1, patches + 1, d),
              "vit.embeddings.patch_embeddings.projection.weight": (d, c["num_channels"], p, p),
              "vit.embeddings.patch_embeddings.projection.bias": (d,),
              "vit.layernorm.weight": (d,), "vit.layernorm.bias": (d,),
              "classifier.weight": (len(c["id2label"]), d), "classifier.bias": (len(c["id2label"]),)}
    for i in range(c["num_hidden_layers"]):
        b = f"vit.encoder.layer.{i}."
        for m in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                  "attention.output.dense"):
            shapes[b + m + ".weight"], shapes[b + m + ".bias"] = (d, d), (d,)
        for m in ("layernorm_before", "layernorm_after"):
            shapes[b + m + ".weight"] = shapes[b + m + ".bias"] = (d,)
        shapes[b + "intermediate.dense.weight"], shapes[b + "intermediate.dense.bias"] = (f, d), (f,)
        shapes[b + "output.dense.weight"], shapes[b + "output.dense.bias"] = (d, f), (d,)
    return shapes


def save_folder(folder, config, sd, fmt):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if fmt == "safetensors":
        write_safetensors(os.path.join(folder, "model.safetensors"), sd)
    else:
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))


def bert_for_text(args):
    """A BERT checkpoint folder for a real vocabulary, initialised as BERT is (normal 0.02): the
    start of an end-to-end fine-tuning, with the vocab.txt beside it as Hugging Face ships it."""
    with open(args.vocab, encoding="utf-8") as f:
        vocab = f.read()
    size = len(vocab.splitlines())
    head = "classify" if args.arch == "BertForSequenceClassification" else "mlm"
    c = bert_config(args.arch, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                    intermediate_size=args.intermediate, vocab_size=size, max_position_embeddings=args.max_pos)
    if head == "classify":
        c.update(labels(2))
    gen = torch.Generator().manual_seed(args.seed)
    sd = {}
    for name, shape in bert_shapes(c, head).items():
        if name.endswith("LayerNorm.weight"):
            sd[name] = torch.ones(shape)
        elif name.endswith("bias"):
            sd[name] = torch.zeros(shape)
        else:
            sd[name] = 0.02 * torch.randn(shape, generator=gen)
    save_folder(args.out, c, sd, "safetensors")
    with open(os.path.join(args.out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write(vocab)


def make(out):
    gen = torch.Generator().manual_seed(1234)
    os.makedirs(out, exist_ok=True)
    # Rows of 10, 7, 3 and 1 real tokens, padded with 0 ([PAD]); ids 1..39.
    ids = torch.randint(1, 40, (4, 10), generator=gen)
    for row, length in enumerate((10, 7, 3, 1)):
        ids[row, length:] = 0
    images = torch.randn((3, 1, 8, 8), generator=gen)
    inputs = {"ids": ids, "images": images}
    write_safetensors(os.path.join(out, "inputs.safetensors"), inputs)
    folders = {}

    # BertForSequenceClassification, safetensors, with the position_ids buffer older versions save.
    c = bert_config("BertForSequenceClassification", **labels(2))
    sd = random_like_hf(bert_shapes(c, "classify"), gen)
    folders["bert_cls"] = (c, sd, dict(sd, **{"bert.embeddings.position_ids": torch.arange(16).unsqueeze(0)}),
                           "safetensors")

    # The same architecture as pytorch_model.bin with TF-era LayerNorm.gamma/beta names, eps 1e-6.
    c = bert_config("BertForSequenceClassification", eps=1e-6, **labels(2))
    sd = random_like_hf(bert_shapes(c, "classify"), gen)
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in sd.items()}
    folders["bert_cls_bin"] = (c, sd, old, "bin")

    # BertForMaskedLM as save_pretrained writes safetensors: the tied decoder matrix left out.
    c = bert_config("BertForMaskedLM", **labels(2))
    sd = random_like_hf(bert_shapes(c, "mlm"), gen)
    folders["bert_mlm"] = (c, sd, sd, "safetensors")

    # BertForMaskedLM as torch.save writes it: the tied decoder weight and bias saved too, sharing
    # storage with the word embeddings and cls.predictions.bias.
    c = bert_config("BertForMaskedLM", **labels(2))
    sd = random_like_hf(bert_shapes(c, "mlm"), gen)
    full = dict(sd, **{"cls.predictions.decoder.weight": sd["bert.embeddings.word_embeddings.weight"],
                       "cls.predictions.decoder.bias": sd["cls.predictions.bias"]})
    folders["bert_mlm_bin"] = (c, sd, full, "bin")

    c = vit_config()
    sd = random_like_hf(vit_shapes(c), gen)
    folders["vit"] = (c, sd, sd, "safetensors")
    c = vit_config()
    sd = random_like_hf(vit_shapes(c), gen)
    folders["vit_bin"] = (c, sd, sd, "bin")

    for name, (config, sd, saved, fmt) in folders.items():
        save_folder(os.path.join(out, name), config, saved, fmt)
        write_safetensors(os.path.join(out, name + ".logits.safetensors"), {"logits": logits_of(config, sd, inputs)})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write tiny checkpoints, inputs and reference logits")
    m.add_argument("--out", required=True)
    b = sub.add_parser("bert", help="a BERT folder for a real vocabulary (BERT's initialisation), vocab.txt beside it")
    b.add_argument("--out", required=True)
    b.add_argument("--vocab", required=True)
    b.add_argument("--arch", default="BertForMaskedLM", choices=["BertForMaskedLM", "BertForSequenceClassification"])
    b.add_argument("--hidden", type=int, default=32)
    b.add_argument("--layers", type=int, default=2)
    b.add_argument("--heads", type=int, default=2)
    b.add_argument("--intermediate", type=int, default=64)
    b.add_argument("--max-pos", type=int, default=48)
    b.add_argument("--seed", type=int, default=1)
    lg = sub.add_parser("logits", help="the logits of a Hugging Face folder on the inputs")
    lg.add_argument("--folder", required=True)
    lg.add_argument("--inputs", required=True)
    lg.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "make":
        make(args.out)
    elif args.command == "bert":
        bert_for_text(args)
    else:
        config, sd = load_folder(args.folder)
        write_safetensors(args.out, {"logits": logits_of(config, sd, read_safetensors(args.inputs))})


if __name__ == "__main__":
    sys.exit(main())
