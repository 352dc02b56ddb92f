"""What ships in deploy/prometheus stays true to the code and to compose.yaml: every alert asks
about a metric the code exports and points at a runbook that exists, every service is scraped
where compose runs it, and every service has a healthcheck on its readiness."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from services.infra.metrics import exported_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
# What Prometheus itself makes of every scrape, not the code.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "increase", "rate", "irate", "histogram_quantile",
    "by", "without", "and", "or", "unless", "on", "ignoring", "absent", "bool",
}  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = load(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (label matchers, ranges, groupings out)."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare)) - PROMQL_WORDS


def our_services() -> dict[str, dict[str, Any]]:
    """compose's services that run our image and keep running (the one-shot `setup` not)."""
    services = load(ROOT / "compose.yaml")["services"]
    return {
        name: service
        for name, service in services.items()
        if service.get("image") == "resultflow:latest" and service.get("restart") != "no"
    }


def test_the_metric_reader_finds_series_names_and_skips_labels_and_functions() -> None:
    expr = 'sum by (queue) (increase(resultflow_sms_total{outcome="x"}[1h])) > 0 or up == 0'
    assert metric_names(expr) == {"resultflow_sms_total", "up"}


def test_every_alert_reads_only_metrics_the_code_exports() -> None:
    exported = exported_names() | PROMETHEUS_OWN
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "ResultFlowServiceDown",
        "ResultFlowReportsStuck",
        "ResultFlowDeadLettersWaiting",
        "ResultFlowDeadLetterQueueNotEmpty",
        "ResultFlowSmsOutcomeUnknown",
        "ResultFlowConverterRestarts",
    }
    unknown = {
        rule["alert"]: sorted(metric_names(rule["expr"]) - exported)
        for rule in rules
        if metric_names(rule["expr"]) - exported
    }
    assert unknown == {}
    assert all(metric_names(rule["expr"]) for rule in rules)


def test_every_alert_points_at_a_runbook_that_exists() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "operations.md").read_text(), re.M)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    for rule in alert_rules():
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md" and anchor in anchors, rule["alert"]


def test_prometheus_scrapes_every_service_on_the_port_compose_gives_it() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    scraped = {
        (name, target["port"])
        for job in config["scrape_configs"]
        for target in job["dns_sd_configs"]
        for name in target["names"]
    }
    services = our_services()
    assert {"ingest", "ingest-mllp", "render", "convert", "notify", "gateway"} <= set(services)
    ports = {int(service["environment"]["RESULTFLOW_HEALTH_PORT"]) for service in services.values()}
    assert len(ports) == 1
    (port,) = ports
    assert scraped == {(name, port) for name in services}


def test_every_service_has_a_healthcheck_on_its_readiness() -> None:
    for name, service in our_services().items():
        command = " ".join(service["healthcheck"]["test"])
        port = service["environment"]["RESULTFLOW_HEALTH_PORT"]
        assert f"127.0.0.1:{port}/readyz" in command, name
        assert service["environment"]["RESULTFLOW_HEALTH_HOST"] == "0.0.0.0", name


# Debian's `prometheus` package, which scripts/setup.sh installs for its promtool.
PROMTOOL = shutil.which("promtool") or "promtool"


def test_prometheus_accepts_the_config_and_its_rules(tmp_path: Path) -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    )
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    checked = subprocess.run(
        [str(PROMTOOL), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_each_alert_fires_on_what_should_fire_it_and_not_before_its_time() -> None:
    tested = subprocess.run(
        [str(PROMTOOL), "test", "rules", "alerts.test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
