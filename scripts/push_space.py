"""Publish an experiment's demo as a Hugging Face Space (app.py, pinned requirements, the models, README).

    python scripts/push_space.py --run_dir runs/transfer_gap_tiny --repo_id you/seqlab-demo [--private]
    python scripts/push_space.py --run_dir runs/transfer_gap_tiny --repo_id you/seqlab-demo --dry_run_dir out/space

The token comes from HF_TOKEN or `hf auth login`. --dry_run_dir writes the folder and uploads nothing;
`python app.py` in it starts the demo without seqlab installed.
"""

import argparse
import tempfile

from seqlab.errors import SeqlabUsageError, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="output folder of scripts/transfer_gap.py")
    parser.add_argument("--repo_id", required=True, help="OWNER/NAME of the Space")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--dry_run_dir", help="write the Space folder here and upload nothing")
    args = parser.parse_args()
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise SeqlabUsageError(f"--repo_id must look like OWNER/NAME, got {args.repo_id!r}.")
    from seqlab.demo.space import write_space
    from seqlab.hub import push_folder

    if args.dry_run_dir:
        files = write_space(args.run_dir, args.dry_run_dir)
        print(
            f"dry run: wrote {len(files)} files to {args.dry_run_dir} (nothing uploaded); "
            f"start it with: cd {args.dry_run_dir} && python app.py"
        )
        return
    with tempfile.TemporaryDirectory() as staging:
        folder = f"{staging}/space"
        files = write_space(args.run_dir, folder)
        url = push_folder(folder, args.repo_id, private=args.private, repo_type="space", space_sdk="gradio")
    print(f"uploaded {len(files)} files to https://huggingface.co/spaces/{args.repo_id} ({url})")


if __name__ == "__main__":
    run_cli(main)
