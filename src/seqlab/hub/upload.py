"""Upload an exported folder with huggingface_hub (create_repo + upload_folder)."""

from pathlib import Path


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    api=None,
    repo_type: str = "model",
    space_sdk: str | None = None,
) -> str:
    """Create the repository if needed and upload every file of `folder` in one commit.

    `repo_type="space"` with `space_sdk="gradio"` publishes a Space (scripts/push_space.py).
    The token comes from `token`, else from HF_TOKEN or the cache written by `hf auth login`
    (huggingface_hub's own lookup). Returns the URL of the commit.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    extra = {"space_sdk": space_sdk} if space_sdk else {}
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type=repo_type, **extra)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=f"Upload {'Space' if repo_type == 'space' else 'model'} exported by seqlab",
    )
    return str(getattr(commit, "commit_url", commit))
