"""docs/cluster-yaml.md carries the generated key table: it cannot drift from the model."""

from pathlib import Path

from nsxkube.spec.reference import reference_rows, update_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster-yaml.md"


def test_reference_table_is_current():
    text = DOC.read_text(encoding="utf-8")
    assert update_document(text) == text, "run: python -m nsxkube.spec.reference docs/cluster-yaml.md"


def test_reference_lists_every_leaf_key_with_its_default():
    rows = {key: default for key, _, default, _ in reference_rows()}
    assert rows["network.api_vip"] == "`172.16.50.10`"
    assert rows["nsx.tep_mtu"] == "`1700`"
    assert rows["vsphere.server"] == "required"
    assert rows["nodes.control_planes.count"] == "`3`"
    assert "addons.backups.velero.secret_key_env" in rows
