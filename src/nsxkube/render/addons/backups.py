"""Backups: the etcd snapshot schedule (systemd timer on each control plane) and Velero values."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    VELERO_NAMESPACE,
    manifest_file,
    mirrored,
    owned_namespace,
    yaml_file,
)
from nsxkube.render.files import RenderedFile

VELERO_CREDENTIALS_SECRET = "velero-s3-credentials"
VELERO_AWS_PLUGIN_IMAGE = "docker.io/velero/velero-plugin-for-aws"

_MONTHS = {name: i for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_SYSTEMD_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # the order systemd expects
# name, lowest, highest, names allowed instead of numbers
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)


def cron_to_on_calendar(expression: str) -> list[str]:
    """systemd ``OnCalendar=`` lines that fire exactly when the five-field cron expression does.

    Every field is expanded to its explicit values, which systemd accepts without cron's
    ``*/n`` shorthand. When both day fields are restricted cron fires on either (OR), systemd
    on both (AND): two lines, one per day field, restore cron's meaning.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"cron expression {expression!r} must have five fields")
    expanded = [_expand_cron_field(text, *spec) for text, spec in zip(fields, _CRON_FIELDS, strict=True)]
    minutes, hours, days, months, weekdays = expanded
    clock = f"{_systemd_list(hours, 0, 23)}:{_systemd_list(minutes, 0, 59)}:00"
    month_text = _systemd_list(months, 1, 12)
    day_text = _systemd_list(days, 1, 31)
    weekday_text = _systemd_weekdays(weekdays)
    day_restricted, weekday_restricted = not fields[2].startswith("*"), not fields[4].startswith("*")
    if day_restricted and weekday_restricted:
        return [f"*-{month_text}-{day_text} {clock}", f"{weekday_text} *-{month_text}-* {clock}"]
    prefix = f"{weekday_text} " if weekday_restricted else ""
    return [f"{prefix}*-{month_text}-{day_text if day_restricted else '*'} {clock}"]


def _expand_cron_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    def number(token: str) -> int:
        token = token.lower()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise ValueError(f"cron {name} field {text!r}: {token!r} is not a number")
        return int(token)

    values: set[int] = set()
    for item in text.split(","):
        base, has_step, step_text = item.partition("/")
        step = number(step_text) if has_step else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = high if has_step else start
        if step < 1 or not low <= start <= end <= high:
            raise ValueError(f"cron {name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if names is _WEEKDAYS:
        values = {0 if v == 7 else v for v in values}  # cron's 7 is Sunday too
    return values


def _systemd_list(values: set[int], low: int, high: int) -> str:
    if values == set(range(low, high + 1)):
        return "*"
    return ",".join(f"{v:02d}" for v in sorted(values))


def _systemd_weekdays(values: set[int]) -> str:
    # cron numbers Sunday 0; systemd lists Monday first.
    return ",".join(day for i, day in enumerate(_SYSTEMD_WEEKDAYS) if (i + 1) % 7 in values)


def etcd_backup_service(design: Design) -> str:
    etcd = design.spec.addons.backups.etcd
    return "\n".join([
        "# Takes one etcd snapshot with scripts/etcd-backup.sh, installed as "
        f"{paths.ETCD_BACKUP_PROGRAM}.",
        f"# Install on every control plane as /etc/systemd/system/{paths.ETCD_BACKUP_UNIT}.service",
        "[Unit]",
        f"Description=etcd snapshot of cluster {design.name} (kept: {etcd.keep} in {etcd.directory})",
        "After=network-online.target",
        "# Only control planes run etcd; elsewhere the unit is skipped, not failed.",
        "ConditionPathExists=/etc/kubernetes/manifests/etcd.yaml",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart={paths.ETCD_BACKUP_PROGRAM}",
        "# A snapshot reads the whole database: stay out of etcd's way.",
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        "",
    ])


def etcd_backup_timer(design: Design) -> str:
    etcd = design.spec.addons.backups.etcd
    return "\n".join([
        f"# Install on every control plane as /etc/systemd/system/{paths.ETCD_BACKUP_UNIT}.timer, then:",
        f"#   systemctl daemon-reload && systemctl enable --now {paths.ETCD_BACKUP_UNIT}.timer",
        f"# addons.backups.etcd.schedule '{etcd.schedule}' (cron, node local time), written for systemd.",
        "[Unit]",
        f"Description=Schedule etcd snapshots of cluster {design.name}",
        "",
        "[Timer]",
        *(f"OnCalendar={line}" for line in cron_to_on_calendar(etcd.schedule)),
        "# A control plane that was down at the scheduled time snapshots when it comes back.",
        "Persistent=true",
        "AccuracySec=1min",
        f"Unit={paths.ETCD_BACKUP_UNIT}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def velero_values(design: Design) -> dict[str, Any]:
    velero = design.spec.addons.backups.velero
    plugin = f"{mirrored(design, VELERO_AWS_PLUGIN_IMAGE)}:v{design.versions.velero_plugin_aws.lstrip('v')}"
    return {
        "initContainers": [{
            "name": "velero-plugin-for-aws",
            "image": plugin,
            "imagePullPolicy": "IfNotPresent",
            "volumeMounts": [{"mountPath": "/target", "name": "plugins"}],
        }],
        "configuration": {
            "backupStorageLocation": [{
                "name": "default",
                "provider": "aws",
                "bucket": velero.bucket,
                "prefix": design.name,
                "default": True,
                "config": {"region": velero.region, "s3Url": velero.s3_url, "s3ForcePathStyle": "true"},
            }],
            # CSI snapshots need no VolumeSnapshotLocation.
            "volumeSnapshotLocation": [],
            "features": "EnableCSI",
            # The node-agent data mover copies each CSI snapshot into the bucket: a backup then
            # survives the loss of the datastore, which a bare vSphere snapshot would not.
            "defaultSnapshotMoveData": True,
            "uploaderType": "kopia",
        },
        "credentials": {"useSecret": True, "existingSecret": VELERO_CREDENTIALS_SECRET},
        "deployNodeAgent": True,
        "snapshotsEnabled": True,
        "schedules": {
            "daily": {
                "disabled": False,
                "schedule": velero.schedule,
                "useOwnerReferencesInBackup": False,
                "template": {"ttl": velero.ttl, "includedNamespaces": ["*"], "snapshotMoveData": True},
            },
        },
    }


def render_backups(design: Design) -> list[RenderedFile]:
    backups = design.spec.addons.backups
    files: list[RenderedFile] = []
    if backups.etcd.enabled:
        files += [
            RenderedFile(paths.ETCD_BACKUP_SERVICE, etcd_backup_service(design)),
            RenderedFile(paths.ETCD_BACKUP_TIMER, etcd_backup_timer(design)),
        ]
    if backups.velero.enabled:
        velero = backups.velero
        files += [
            manifest_file(paths.VELERO_NAMESPACE, [
                "Velero's node-agent reads pod volumes from the host (hostPath): the namespace must be privileged.",
            ], [owned_namespace(design, VELERO_NAMESPACE, "privileged")]),
            yaml_file(paths.VELERO_VALUES, [
                f"Velero {design.versions.velero} with the AWS (S3) plugin {design.versions.velero_plugin_aws} "
                f"for {design.name}: bucket {velero.bucket} at {velero.s3_url}.",
                f"Credentials: the Secret {VELERO_CREDENTIALS_SECRET}, made by {paths.CREATE_SECRETS} from "
                f"${velero.access_key_env} and ${velero.secret_key_env}.",
                f"Daily schedule '{velero.schedule}', kept {velero.ttl}; CSI snapshots moved to S3 by the node-agent.",
            ], velero_values(design)),
        ]
    return files
