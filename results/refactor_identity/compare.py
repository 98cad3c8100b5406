"""Compare two identity-run folders (issue 17): every file byte for byte, except wall-clock fields and logs."""
import hashlib, json, sys
from pathlib import Path

TIME_KEYS = {"wall_time_s", "tokens_per_second", "elapsed_seconds", "train_seconds", "seconds", "samples_per_second",
             "train_tokens_per_second", "eval_seconds", "runtime", "tokens_per_s", "date", "started", "finished",
             "duration_s", "created", "timestamp", "time", "wall_seconds", "train_runtime"}
TEXT_SKIP = {".log", ".png", ".lock"}

def scrub(value):
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in TIME_KEYS and not k.endswith("_seconds") and not k.endswith("_per_second")}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value

def content(path: Path):
    if path.suffix == ".jsonl":
        return [scrub(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".json":
        return scrub(json.loads(path.read_text()))
    return hashlib.sha256(path.read_bytes()).hexdigest()

a, b = Path(sys.argv[1]), Path(sys.argv[2])
files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix not in TEXT_SKIP}
files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.suffix not in TEXT_SKIP}
bad = 0
for rel in sorted(files_a ^ files_b):
    print("only in one:", rel); bad += 1
same = 0
for rel in sorted(files_a & files_b):
    ca, cb = content(a / rel), content(b / rel)
    if ca != cb:
        bad += 1
        print("DIFFERS:", rel)
    else:
        same += 1
print(f"{same} files identical, {bad} differ or missing")
sys.exit(1 if bad else 0)
