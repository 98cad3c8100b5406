"""Diagnostic for the search: linear-probe accuracy of frozen features (last / mean / max pooling) of a
pretrained body vs the same config at random init, N labelled SST-2 sentences, validation accuracy."""
import sys, torch, numpy as np
import seqlab
from seqlab.data import load_text_dataset, stratified_subset, carve_dev_split
from transformers import AutoModel, AutoConfig, AutoTokenizer
torch.set_num_threads(1)
folder = sys.argv[1]
tok = AutoTokenizer.from_pretrained(folder)
train = load_text_dataset("sst2_sentence", "train"); val = load_text_dataset("sst2_sentence", "validation")
rest, dev = carve_dev_split(train, 500, seed=0)

def feats(model, texts):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 128):
            enc = tok(texts[i:i+128], padding=True, truncation=True, max_length=64, return_tensors="pt")
            h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            last = h[torch.arange(h.shape[0]), enc["attention_mask"].sum(1) - 1]
            mean = (h * m).sum(1) / m.sum(1)
            mx = (h + (m - 1) * 1e4).max(1).values
            emb = model.get_input_embeddings()(enc["input_ids"]); embmean = (emb * m).sum(1) / m.sum(1)
            out.append({"last": last, "mean": mean, "max": mx, "embmean": embmean})
    return {k: torch.cat([o[k] for o in out]) for k in out[0]}

def probe(xtr, ytr, xte, yte, steps=300):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-5
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    best = 0
    for wd in (1e-3, 1e-2, 1e-1, 1.0):
        w = torch.zeros(xtr.shape[1], 2, requires_grad=True); b = torch.zeros(2, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps)
        def closure():
            opt.zero_grad(); loss = torch.nn.functional.cross_entropy(xtr @ w + b, ytr) + wd * (w ** 2).sum(); loss.backward(); return loss
        opt.step(closure)
        best = max(best, ((xte @ w + b).argmax(1) == yte).float().mean().item())
    return best  # best over wd on validation: an optimistic probe, fine for comparing features

config = AutoConfig.from_pretrained(folder)
models = {"pretrained": AutoModel.from_pretrained(folder).eval()}
torch.manual_seed(0); models["random"] = AutoModel.from_config(config).eval()
yte = torch.tensor(val["label"])
fv = {k: feats(m, val["text"]) for k, m in models.items()}
for n in (100, 1000):
    accs = {k: {p: [] for p in ("last", "mean", "max", "embmean")} for k in models}
    for seed in range(3):
        sub = stratified_subset(rest, n, seed=seed); ytr = torch.tensor(sub["label"])
        for k, m in models.items():
            f = feats(m, sub["text"])
            for p in accs[k]:
                accs[k][p].append(probe(f[p], ytr, fv[k][p], yte))
    print(folder, n, {k: {p: round(float(np.mean(v)), 3) for p, v in d.items()} for k, d in accs.items()}, flush=True)
