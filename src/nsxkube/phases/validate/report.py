"""The validation report, as data (JSON for scripts: the keys never change with the language), as
Markdown (for a change ticket), as JUnit XML (one testcase per check, for CI), in English or
Russian (the user's team reads Russian)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from nsxkube.phases.validate.model import CheckResult

LANGUAGES = ("en", "ru")
WORDS: dict[str, dict[str, str]] = {
    "en": {"ok": "ok", "warn": "warn", "fail": "FAIL", "skipped": "skipped", "title": "Validation of cluster",
           "check": "check", "verdict": "verdict", "detail": "what was seen", "hint": "what to do",
           "summary": "Summary", "passed": "passed", "failed": "failed", "warnings": "warnings",
           "skipped_n": "skipped", "seconds": "s", "see": "see"},
    "ru": {"ok": "ок", "warn": "предупреждение", "fail": "ОШИБКА", "skipped": "пропущено",
           "title": "Проверка кластера", "check": "проверка", "verdict": "результат", "detail": "что обнаружено",
           "hint": "что сделать", "summary": "Итог", "passed": "успешно", "failed": "с ошибкой",
           "warnings": "с предупреждением", "skipped_n": "пропущено", "seconds": "с", "see": "см."},
}
# Check titles in Russian; the id stays the key everywhere.
TITLES_RU: dict[str, str] = {
    "nsx.objects": "Сегмент, группы, сервисы и политика DFW в NSX соответствуют проекту",
    "nsx.tep-mtu": "MTU TEP в NSX вмещает MTU узлов",
    "nsx.bindings": "API VIP и пулы LoadBalancer разрешены на портах узлов",
    "vsphere.vms": "ВМ узлов включены и соответствуют проекту",
    "vsphere.anti-affinity": "Правила анти-аффинности DRS",
    "kubernetes.api-vip": "API отвечает через VIP",
    "kubernetes.etcd": "etcd исправен, по члену на каждой управляющей ноде",
    "nodes.ready": "Все узлы в состоянии Ready",
    "nodes.design": "Роли, метки, версия kubelet и ProviderID узлов",
}


def title(result: CheckResult, lang: str) -> str:
    return TITLES_RU.get(result.id, result.title) if lang == "ru" else result.title


def counts(results: Sequence[CheckResult]) -> Counter[str]:
    return Counter(r.verdict for r in results)


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 only when no check failed (warnings and skips do not fail a run)."""
    return 1 if any(r.verdict == "fail" for r in results) else 0


def as_dict(cluster: str, results: Sequence[CheckResult], seconds: float) -> dict[str, Any]:
    tally = counts(results)
    return {
        "cluster": cluster,
        "ok": exit_code(results) == 0,
        "seconds": round(seconds, 2),
        "counts": {v: tally.get(v, 0) for v in ("ok", "warn", "fail", "skipped")},
        "checks": [{"id": r.id, "group": r.group, "title": r.title, "verdict": r.verdict, "detail": r.detail,
                    "hint": r.hint, "doc": r.doc, "seconds": r.seconds} for r in results],
    }


def as_json(cluster: str, results: Sequence[CheckResult], seconds: float) -> str:
    return json.dumps(as_dict(cluster, results, seconds), indent=2, ensure_ascii=False)


def summary_line(results: Sequence[CheckResult], lang: str) -> str:
    words, tally = WORDS[lang], counts(results)
    return (f"{tally.get('ok', 0)} {words['passed']}, {tally.get('fail', 0)} {words['failed']}, "
            f"{tally.get('warn', 0)} {words['warnings']}, {tally.get('skipped', 0)} {words['skipped_n']}")


def as_markdown(cluster: str, results: Sequence[CheckResult], seconds: float, lang: str = "en") -> str:
    words = WORDS[lang]
    lines = [f"# {words['title']} {cluster}", "",
             f"**{words['summary']}:** {summary_line(results, lang)} ({seconds:.1f} {words['seconds']})", "",
             f"| {words['check']} | {words['verdict']} | {words['detail']} |", "|---|---|---|"]
    for r in results:
        detail = r.detail + (f" — {words['hint']}: {r.hint}" if r.hint else "") + (
            f" ({words['see']} {r.doc})" if r.doc else "")
        lines.append(f"| `{r.id}` {_cell(title(r, lang))} | {words[r.verdict]} | {_cell(detail)} |")
    return "\n".join(lines) + "\n"


def as_junit(cluster: str, results: Sequence[CheckResult], seconds: float) -> str:
    """JUnit XML: one testcase per check (classname = group); fail → failure, skipped → skipped,
    warn passes with its detail in system-out."""
    tally = counts(results)
    suite = ET.Element("testsuite", {"name": f"nsxkube validate {cluster}", "tests": str(len(results)),
                                     "failures": str(tally.get("fail", 0)), "errors": "0",
                                     "skipped": str(tally.get("skipped", 0)), "time": f"{seconds:.3f}"})
    for r in results:
        case = ET.SubElement(suite, "testcase", {"classname": r.group, "name": r.id, "time": f"{r.seconds:.3f}"})
        if r.verdict == "fail":
            failure = ET.SubElement(case, "failure", {"message": r.detail})
            failure.text = "\n".join(x for x in (r.detail, r.hint, r.doc) if x)
        elif r.verdict == "skipped":
            ET.SubElement(case, "skipped", {"message": r.detail})
        else:
            ET.SubElement(case, "system-out").text = f"{r.verdict}: {r.detail}" + (f"\n{r.hint}" if r.hint else "")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())
