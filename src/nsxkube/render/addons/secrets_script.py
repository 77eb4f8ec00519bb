"""addons/create-secrets.sh: every Secret the add-ons need, made from environment variables at apply time."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.backups import VELERO_CREDENTIALS_SECRET
from nsxkube.render.addons.common import CSI_NAMESPACE, MONITORING_NAMESPACE, VELERO_NAMESPACE, placeholder
from nsxkube.render.addons.observability import GRAFANA_ADMIN_SECRET
from nsxkube.render.addons.vsphere import CPI_SECRET, CSI_SECRET
from nsxkube.render.files import RenderedFile


def _preamble(design: Design, env_names: list[str], uses_bundle: bool) -> list[str]:
    exports = " ".join(f"{name}=..." for name in env_names)
    return [
        "#!/usr/bin/env bash",
        f"# Creates the Kubernetes Secrets the add-ons of {design.name} need, straight from environment variables:",
        "# no secret is ever written into the bundle. Run with kubectl pointing at the cluster:",
        f"#   export {exports}",
        f"#   bash {paths.CREATE_SECRETS}",
        "# Safe to run again: a changed password simply replaces the stored one.",
        "set -euo pipefail",
        "",
        *(['bundle=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)'] if uses_bundle else []),
        "umask 077",
        'work=$(mktemp -d)',
        "trap 'rm -rf \"$work\"' EXIT",
        "",
        "require() {",
        "  local name",
        '  for name in "$@"; do',
        '    if [[ -z "${!name:-}" ]]; then',
        '      echo "create-secrets: environment variable $name is not set" >&2',
        "      exit 1",
        "    fi",
        "    export \"${name?}\"",
        "  done",
        "}",
        "",
        "# Values travel through files in a private directory, never on a command line (ps would show them);",
        "# server-side apply keeps no copy in a last-applied annotation.",
        "apply_secret() {  # namespace name directory",
        '  kubectl -n "$1" create secret generic "$2" --from-file="$3" --dry-run=client -o yaml \\',
        '    | kubectl apply --server-side --force-conflicts --field-manager=nsxkube -f -',
        "}",
        "",
        f"require {' '.join(env_names)}",
        "",
    ]


def _vsphere(design: Design) -> list[str]:
    vsphere = design.spec.vsphere
    user, password = vsphere.credentials.user_env, vsphere.credentials.password_env
    lines = [
        f'echo "vSphere CPI: secret kube-system/{CPI_SECRET}"',
        'mkdir "$work/cpi"',
        f'printf \'%s\' "${user}" > "$work/cpi/{vsphere.server}.username"',
        f'printf \'%s\' "${password}" > "$work/cpi/{vsphere.server}.password"',
        f'apply_secret kube-system {CPI_SECRET} "$work/cpi"',
        "",
    ]
    if not design.spec.addons.storage.enabled:
        return lines
    # gcfg reads quoted values: a backslash or double quote inside must be escaped.
    perl = ("BEGIN { for my $n (qw(" + f"{user} {password}" + ")) { ($v{$n} = $ENV{$n}) =~ s/([\\\\\"])/\\\\$1/g } } "
            f"s/__({user}|{password})__/$v{{$1}}/g")
    return [
        *lines,
        f'echo "vSphere CSI: secret {CSI_NAMESPACE}/{CSI_SECRET}"',
        f'kubectl apply -f "$bundle/{paths.CSI_NAMESPACE}"',
        'mkdir "$work/csi"',
        f"# Fills {placeholder(user)} and {placeholder(password)} of the template from the environment.",
        "# shellcheck disable=SC2016  # the $ belong to perl, not to the shell",
        f"perl -pe '{perl}' \\",
        f'  "$bundle/{paths.CSI_CONF_TEMPLATE}" > "$work/csi/csi-vsphere.conf"',
        f'apply_secret {CSI_NAMESPACE} {CSI_SECRET} "$work/csi"',
        "",
    ]


def _velero(design: Design) -> list[str]:
    velero = design.spec.addons.backups.velero
    return [
        f'echo "Velero: secret {VELERO_NAMESPACE}/{VELERO_CREDENTIALS_SECRET}"',
        f'kubectl apply -f "$bundle/{paths.VELERO_NAMESPACE}"',
        'mkdir "$work/velero"',
        "printf '[default]\\naws_access_key_id=%s\\naws_secret_access_key=%s\\n' \\",
        f'  "${velero.access_key_env}" "${velero.secret_key_env}" > "$work/velero/cloud"',
        f'apply_secret {VELERO_NAMESPACE} {VELERO_CREDENTIALS_SECRET} "$work/velero"',
        "",
    ]


def _grafana() -> list[str]:
    ns, name = MONITORING_NAMESPACE, GRAFANA_ADMIN_SECRET
    return [
        "# Grafana's admin password is made here, once, on the operator's machine; it is never in the bundle.",
        f'kubectl apply -f "$bundle/{paths.MONITORING_NAMESPACE}"',
        f"if kubectl -n {ns} get secret {name} >/dev/null 2>&1; then",
        f'  echo "Grafana: secret {ns}/{name} exists, kept"',
        "else",
        '  mkdir "$work/grafana"',
        "  printf '%s' admin > \"$work/grafana/admin-user\"",
        "  openssl rand -base64 24 | tr -d '\\n' > \"$work/grafana/admin-password\"",
        f'  apply_secret {ns} {name} "$work/grafana"',
        f"  echo \"Grafana: admin password generated; read it with: kubectl -n {ns} get secret {name} "
        "-o jsonpath='{.data.admin-password}' | base64 -d\"",
        "fi",
        "",
    ]


def secret_env_names(design: Design) -> list[str]:
    """The environment variables the script reads (names only)."""
    creds = design.spec.vsphere.credentials
    names = [creds.user_env, creds.password_env]
    velero = design.spec.addons.backups.velero
    if velero.enabled:
        names += [velero.access_key_env, velero.secret_key_env]
    return names


def render_secrets_script(design: Design) -> RenderedFile:
    addons = design.spec.addons
    body = _vsphere(design)
    if addons.backups.velero.enabled:
        body += _velero(design)
    if addons.monitoring.enabled and addons.monitoring.grafana:
        body += _grafana()
    body.append('echo "create-secrets: done"')
    uses_bundle = any("$bundle" in line for line in body)
    lines = _preamble(design, secret_env_names(design), uses_bundle) + body
    return RenderedFile(paths.CREATE_SECRETS, "\n".join(lines) + "\n", mode=0o755)
