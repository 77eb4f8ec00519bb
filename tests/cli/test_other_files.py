"""The other files nsxkube reads — image bundle indexes, run records, lab state, kubeconfigs — read
as untrusted input: hostile content is a clear refusal or 'no such record', never a hang, a memory
blow-up or an internal error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest

from nsxkube.errors import UsageError
from nsxkube.images import BundleError, bundle_references
from nsxkube.lab import state
from nsxkube.pipeline.record import read_record
from nsxkube.providers.nodes.kubeconfig import server_of
from nsxkube.untrusted import InputError, read_json
from tests.cli.hostile_inputs import billion_laughs

BILLION_LAUGHS = billion_laughs()  # 9^9 strings once expanded: minutes of CPU with yaml.safe_load
HOSTILE_JSON = ["[" * 200_000, '{"a": ' * 200_000, "not json", '"a string"', "[1, 2]", "\xff\xfe"]


def _tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(("member", "content"), [
    ("index.json", b"[" * 200_000), ("index.json", b"not json"), ("index.json", b"[1, 2]"),
    ("index.json", b'{"manifests": 5}'), ("index.json", b'{"manifests": [1, {"annotations": 7}]}'),
    ("manifest.json", b'{"RepoTags": 1}'), ("manifest.json", b'[{"RepoTags": [1, null]}, "x"]'),
    ("manifest.json", b"\xff\xfe"),
])
def test_a_hostile_bundle_index_is_refused_or_names_nothing(tmp_path, member, content):
    bundle = tmp_path / "images.tar"
    _tar(bundle, {"oci-layout": b"{}", member: content})
    try:
        assert bundle_references(bundle) == []
    except BundleError as err:
        assert str(err).startswith(str(bundle)) and "\n" not in str(err)


def test_a_huge_bundle_index_is_not_read(tmp_path):
    bundle = tmp_path / "images.tar"
    _tar(bundle, {"index.json": b" " * (5 << 20)})
    with pytest.raises(BundleError, match="more than an image index holds"):
        bundle_references(bundle)


@pytest.mark.parametrize("content", HOSTILE_JSON)
def test_a_hostile_run_record_is_no_record(tmp_path, content):
    (tmp_path / "last-apply.json").write_text(content, encoding="utf-8", errors="surrogateescape")
    assert read_record(tmp_path, "apply") is None


def test_a_huge_run_record_is_not_read(tmp_path):
    (tmp_path / "last-apply.json").write_text('{"a": "' + "x" * (2 << 20) + '"}')
    assert read_record(tmp_path, "apply") is None
    with pytest.raises(InputError, match="larger than 1 MiB"):
        read_json(tmp_path / "last-apply.json")


@pytest.mark.parametrize("content", [*HOSTILE_JSON, '{"pid": "x"}', '{"pid": 1, "services": 5}', "{}" + " " * 70_000])
def test_a_hostile_lab_state_is_no_running_lab(tmp_path, content):
    (tmp_path / state.STATE_FILE).write_text(content, encoding="utf-8", errors="surrogateescape")
    assert state.read_state(tmp_path) is None


def test_lab_env_with_a_broken_line_keeps_the_others_and_a_missing_one_is_a_usage_error(tmp_path):
    (tmp_path / state.ENV_FILE).write_text("export A='unbalanced\nexport B=2\n")
    assert state.read_env(tmp_path) == {"B": "2"}
    with pytest.raises(UsageError, match="cannot read: no such file"):
        state.read_env(tmp_path / "elsewhere")


@pytest.mark.parametrize("text", [BILLION_LAUGHS, "a: !!python/object/apply:os.system ['true']\n", "[" * 100_000])
def test_a_hostile_kubeconfig_names_no_server(text):
    assert server_of(text) is None


def test_abillion_laughs_kubeconfig_returns_at_once():
    code = f"from nsxkube.providers.nodes.kubeconfig import server_of\nassert server_of({BILLION_LAUGHS!r}) is None\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_hostile_json_in_every_reader_is_an_input_error(tmp_path):
    for number, content in enumerate(HOSTILE_JSON[:3]):
        path = tmp_path / f"{number}.json"
        path.write_text(content)
        with pytest.raises(InputError):
            read_json(path)
    assert json.loads("[1]") == read_json(_write(tmp_path / "ok.json", "[1]"))


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("make", ["directory", "latin-1", "huge"])
def test_a_broken_known_hosts_file_is_a_provider_error(tmp_path, make):
    from nsxkube.errors import ProviderError
    from nsxkube.providers.nodes.hostkeys import read_known_hosts

    path = tmp_path / "known_hosts"
    if make == "directory":
        path.mkdir()
    elif make == "latin-1":
        path.write_bytes("192.0.2.1 ssh-ed25519 AAAA café\n".encode("latin-1"))
    else:
        with open(path, "wb") as handle:
            handle.truncate(17 << 20)
    with pytest.raises(ProviderError, match="cannot read the known_hosts file"):
        read_known_hosts(path)


def test_hostile_lines_of_the_request_log_are_skipped(tmp_path):
    from nsxkube.lab.summary import _request_counts

    log = tmp_path / "nsx-requests.jsonl"
    log.write_text('{"method": "PATCH"}\n[1, 2]\n' + "[" * 100_000 + "\nnot json\n" + '{"method": "GET"}\n')
    assert _request_counts(log) == {"PATCH": 1, "GET": 1}


def test_a_bundle_with_too_many_entries_is_refused_before_its_index_is_read(tmp_path, monkeypatch):
    import nsxkube.images as images

    monkeypatch.setattr(images, "MEMBER_LIMIT", 10)
    bundle = tmp_path / "images.tar"
    _tar(bundle, {**{f"blobs/sha256/{i:064x}": b"x" for i in range(11)}, "index.json": b'{"manifests": []}'})
    with pytest.raises(BundleError, match="more than 10 entries"):
        bundle_references(bundle)
    _tar(bundle, {**{f"blobs/sha256/{i:064x}": b"x" for i in range(9)}, "./index.json": b'{"manifests": []}'})
    assert bundle_references(bundle) == []
