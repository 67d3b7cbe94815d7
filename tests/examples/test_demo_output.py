"""Where the piano demo writes: never into a git checkout by default, always said, nothing left on failure."""
import tempfile
from pathlib import Path

import pytest

from audiograd.cli.main import main
from audiograd.examples import piano


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A git checkout (``repo``, with a subfolder), a plain folder, a home and a temp folder."""
    repo, plain, home, temp = (tmp_path / n for n in ("repo", "plain", "home", "temp"))
    (repo / ".git").mkdir(parents=True)
    (repo / "sub" / "deeper").mkdir(parents=True)
    for d in (plain, home, temp):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return {"repo": repo, "plain": plain, "home": home, "temp": temp}


def _files_under(path: Path):
    return sorted(p.relative_to(path) for p in path.rglob("*") if ".git" not in p.parts)


@pytest.mark.parametrize("git_marker", ["dir", "file"])        # a clone, or a worktree / submodule
@pytest.mark.parametrize("cwd", ["repo", "repo/sub/deeper"])
def test_default_folder_is_outside_a_git_checkout(places, monkeypatch, git_marker, cwd):
    repo = places["repo"]
    if git_marker == "file":
        (repo / ".git").rmdir()
        (repo / ".git").write_text("gitdir: /elsewhere/.git/worktrees/x\n")
    monkeypatch.chdir(places["repo"].parent / cwd)
    assert piano.inside_git_work_tree(Path.cwd())
    path = piano.make_out_dir(None, "C4")
    assert path.parent == places["home"] / "audiograd-demos" and path.name.startswith("piano-C4-")
    assert path.is_dir() and not piano.inside_git_work_tree(path)
    assert _files_under(repo) == [Path("sub"), Path("sub/deeper")]


def test_default_folder_is_the_current_directory_outside_git(places, monkeypatch):
    monkeypatch.chdir(places["plain"])
    assert not piano.inside_git_work_tree(Path.cwd())
    path = piano.make_out_dir(None, "A4")
    assert path.parent == Path(".") and (places["plain"] / path.name).is_dir()
    assert not (places["home"] / "audiograd-demos").exists()


@pytest.mark.parametrize("home_problem", ["inside_git", "unwritable"])
def test_default_falls_back_to_the_temp_folder(places, monkeypatch, home_problem):
    if home_problem == "inside_git":
        (places["home"] / ".git").mkdir()
    else:                                          # ~/audiograd-demos cannot be created: a file is in the way
        (places["home"] / "audiograd-demos").write_text("not a folder")
    monkeypatch.chdir(places["repo"])
    path = piano.make_out_dir(None, "C4")
    assert path.parent == places["temp"] / "audiograd-demos" and path.is_dir()
    assert _files_under(places["repo"]) == [Path("sub"), Path("sub/deeper")]


def test_deleted_current_directory_falls_back_to_home(places, monkeypatch):
    gone = places["plain"] / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    path = piano.make_out_dir(None, "C4")
    assert path.parent == places["home"] / "audiograd-demos" and path.is_dir()


def test_explicit_out_is_used_even_inside_a_checkout(places, monkeypatch):
    monkeypatch.chdir(places["repo"])
    assert piano.make_out_dir("mine", "C4") == Path("mine") and (places["repo"] / "mine").is_dir()


def _fake_train(cfg, clip, f0_guess, name, log):
    return [1.0, 0.5], 0.25, 0.5 * clip


def test_cli_writes_outside_the_checkout_and_says_where(places, monkeypatch, capsys):
    monkeypatch.setattr(piano, "_train", _fake_train)       # the real training has its own slow test
    monkeypatch.chdir(places["repo"] / "sub")
    assert main(["demo", "--note", "C4"]) == 0
    out = capsys.readouterr().out
    (folder,) = (places["home"] / "audiograd-demos").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["result.wav", "spectrogram.png", "target.wav"]
    assert str(folder.absolute()) in out and "git checkout" in out
    assert _files_under(places["repo"]) == [Path("sub"), Path("sub/deeper")]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_run_leaves_no_folder_behind(places, monkeypatch, error):
    def failing_train(*args):
        raise error
    monkeypatch.setattr(piano, "_train", failing_train)
    monkeypatch.chdir(places["plain"])
    with pytest.raises(type(error)):
        piano.run(progress=False, log=lambda s: None)
    with pytest.raises(type(error)):
        piano.run(progress=False, log=lambda s: None, out=str(places["plain"] / "new"))
    assert not any(places["plain"].iterdir())
    (places["plain"] / "empty").mkdir()                   # a folder the user made is kept
    with pytest.raises(type(error)):
        piano.run(progress=False, log=lambda s: None, out=str(places["plain"] / "empty"))
    assert [p.name for p in places["plain"].iterdir()] == ["empty"]


def test_help_names_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "~/audiograd-demos" in help_text and "git checkout" in help_text
