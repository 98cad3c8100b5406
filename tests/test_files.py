"""publish_staged: the staging folder becomes the output folder whole, or disappears."""

import pytest

from seqlab.files import publish_staged


def staged(tmp_path):
    staging = tmp_path / ".out.staging"
    staging.mkdir()
    return staging, tmp_path / "out"


def test_success_renames_the_staging_folder(tmp_path):
    staging, output = staged(tmp_path)
    output.mkdir()  # an empty folder is taken over
    with publish_staged(staging, output) as folder:
        (folder / "a.txt").write_text("a")
    assert (output / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failure_removes_the_staging_folder_and_keeps_the_error(tmp_path):
    staging, output = staged(tmp_path)
    with pytest.raises(KeyboardInterrupt), publish_staged(staging, output):
        (staging / "a.txt").write_text("a")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_output_is_refused_without_replace(tmp_path):
    staging, output = staged(tmp_path)
    output.mkdir()
    (output / "old.txt").write_text("old")
    with pytest.raises(OSError), publish_staged(staging, output):
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old folder stays, untouched
    assert [p.name for p in output.iterdir()] == ["old.txt"]


@pytest.mark.parametrize("existing", ["folder", "file"])
def test_replace_removes_whatever_is_in_the_way(tmp_path, existing):
    staging, output = staged(tmp_path)
    if existing == "folder":
        output.mkdir()
        (output / "old.txt").write_text("old")
    else:
        output.write_text("a file")
    with publish_staged(staging, output, replace=True):
        (staging / "new.txt").write_text("new")
    assert [p.name for p in output.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
