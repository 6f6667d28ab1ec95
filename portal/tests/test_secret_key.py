"""The secret key file: made once, private, and the same for processes that start together."""

import multiprocessing

from portal.secret_key import load_or_create_secret_key


def test_it_makes_a_private_key_once_and_reads_it_back(tmp_path):
    path = tmp_path / "var" / "secret_key"

    key = load_or_create_secret_key(path)

    assert len(key) >= 50
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret_key(path) == key
    assert [entry.name for entry in path.parent.iterdir()] == ["secret_key"]


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "secret_key"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        keys = pool.map(load_or_create_secret_key, [path] * 8)

    assert set(keys) == {path.read_text().strip()}
