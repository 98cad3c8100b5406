"""Export a trained seqlab model (weights, config with auto_map, code, tokenizer, model card) and upload it.

    python scripts/push_to_hub.py --model_dir runs/finetune/lstm --repo_id you/seqlab-lstm-sst2 [--private]
    python scripts/push_to_hub.py --model_dir runs/finetune/lstm --repo_id you/seqlab-lstm-sst2 --dry_run_dir out/

The token comes from HF_TOKEN or `hf auth login`. --dry_run_dir writes the folder and uploads nothing.
"""

import argparse
import tempfile

from seqlab.errors import SeqlabUsageError, run_cli
from seqlab.hub import export_for_hub, push_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="output_dir of a finished training run")
    parser.add_argument("--repo_id", required=True, help="OWNER/NAME of the Hub model repository")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry_run_dir", help="write the export here and upload nothing")
    parser.add_argument("--base_model", help="Hub id of the pretrained model a fine-tune started from")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--publish_file_names", action="store_true",
                        help="name local data files in the card by their base names (default: 'local file N'); "
                        "folders are never published")  # fmt: skip
    args = parser.parse_args()
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise SeqlabUsageError(f"--repo_id must look like OWNER/NAME, got {args.repo_id!r}.")
    overrides = {"license": args.license}
    if args.base_model:
        overrides["base_model"] = args.base_model
    if args.dry_run_dir:
        files = export_for_hub(args.model_dir, args.dry_run_dir, args.repo_id, overrides, args.publish_file_names)
        print(f"dry run: wrote {len(files)} files to {args.dry_run_dir} (nothing uploaded): {', '.join(files)}")
        return
    with tempfile.TemporaryDirectory() as staging:
        folder = f"{staging}/export"
        files = export_for_hub(args.model_dir, folder, args.repo_id, overrides, args.publish_file_names)
        url = push_folder(folder, args.repo_id, private=args.private)
    print(f"uploaded {len(files)} files to https://huggingface.co/{args.repo_id} ({url})")


if __name__ == "__main__":
    run_cli(main)
