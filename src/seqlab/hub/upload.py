"""Upload an exported folder with huggingface_hub (create_repo + upload_folder)."""

from pathlib import Path


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None, api=None) -> str:
    """Create the model repository if needed and upload every file of `folder` in one commit.

    The token comes from `token`, else from HF_TOKEN or the cache written by `hf auth login`
    (huggingface_hub's own lookup). Returns the URL of the commit.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload model exported by seqlab",
    )
    return str(getattr(commit, "commit_url", commit))
