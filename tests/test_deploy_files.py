"""Static checks of deploy/: every file parses, and every port, path, probe, setting name and
metric it names exists in the code. Nothing here builds an image or applies a manifest (no
Docker engine or cluster on the test machine); deploy/README.md says what was run."""

from __future__ import annotations

import importlib.resources
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from adapters import registry
from server.app import create_app
from server.config import Settings
from server.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
PYPROJECT = (REPO / "pyproject.toml").read_text()  # read with re: no tomllib on 3.10
SETTINGS = {name.upper() for name in Settings.model_fields}
# Variables a Morpheus container may set that are not Morpheus settings.
NOT_SETTINGS = {"PATH", "DEBIAN_FRONTEND", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
                "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "MORPHEUS_ENV_FILE"}
# Labels Prometheus adds to every scraped series (static configs and the kubernetes-pods job).
TARGET_LABELS = {"instance", "job", "namespace", "pod"}
REQUIRED_ON_DASHBOARD = {"tts_ttft_ms", "tts_stream_rtf", "tts_underflow_count",
                         "tts_active_streams", "tts_queued_streams", "tts_backend_failover"}


def default(name: str) -> Any:
    field = Settings.model_fields.get(name.lower())
    assert field is not None, f"{name} is not a setting in server/config.py"
    return field.default


def get_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(), warm=False)
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.resource is not None}


ROUTES = get_routes()


def assert_get_route(path: str) -> None:
    assert ("GET", path) in ROUTES, f"GET {path} is not a route of server.app.create_app"


def exported_metrics() -> dict[str, set[str]]:
    """{sample name as scraped: its label names}, from a Metrics with one child per family."""
    m = Metrics()
    for family in vars(m).values():
        names = getattr(family, "_labelnames", None)
        if names:
            family.labels(*["x"] * len(names))
    samples: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            samples.setdefault(s.name, set()).update(s.labels)
    return samples


METRICS = exported_metrics()


def interpolate(value: str) -> str:
    """Compose/HAProxy `${VAR:-default}` / `${VAR-default}` -> default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value)


# --- Dockerfiles


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env_of(instrs: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instrs:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def args_of(instrs: list[tuple[str, str]]) -> dict[str, str]:
    return dict(rest.partition("=")[::2] for word, rest in instrs if word == "ARG")


def one(instrs: list[tuple[str, str]], word: str) -> str:
    found = [rest for w, rest in instrs if w == word]
    assert len(found) == 1, f"expected one {word}, found {found}"
    return found[0]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_matches_the_server(name: str) -> None:
    instrs = instructions(DEPLOY / name)
    env = env_of(instrs)
    run = " ".join(rest for w, rest in instrs if w == "RUN")
    assert "espeak-ng" in run and "ffmpeg" in run
    assert re.search(r"useradd .*\bmorpheus\b", run)
    assert one(instrs, "USER") not in ("root", "0")
    assert int(one(instrs, "EXPOSE")) == default("PORT") == int(env["PORT"])
    assert env["HOST"] == "0.0.0.0"
    unknown = set(env) - SETTINGS - NOT_SETTINGS
    assert not unknown, f"not Morpheus settings: {unknown}"
    health = one(instrs, "HEALTHCHECK")
    assert "/readyz" in health and "os.environ.get('PORT', '5005')" in health
    assert_get_route("/readyz")
    assert one(instrs, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(one(instrs, "CMD")) == ["python", "-m", "server.cli", "serve"]
    # Everything the package and the UI need is copied from the repository.
    copied = {src for w, rest in instrs if w == "COPY" for src in shlex.split(rest)[:-1]}
    include = re.search(r"^include = \[(.*)\]$", PYPROJECT, re.M)
    assert include
    packages = {p.strip(' "*') for p in include.group(1).split(",")}
    assert packages | {"web", "pyproject.toml", "README.md"} <= copied, copied
    for src in copied:
        assert (REPO / src).exists(), src
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", "models", ".git"} <= ignored  # gigabytes that must not reach the builder
    assert not copied & ignored
    assert "pip install" in run


def test_cpu_image_is_python_311_slim_and_the_cuda_image_cuda_124() -> None:
    assert one(instructions(DEPLOY / "Dockerfile"), "FROM") == "python:3.11-slim"
    cuda = instructions(DEPLOY / "Dockerfile.cuda")
    assert one(cuda, "FROM") == "${CUDA_IMAGE}"
    assert args_of(cuda)["CUDA_IMAGE"].startswith("nvidia/cuda:12.4.")
    assert env_of(cuda)["TTS_BACKEND"] in registry.BACKENDS


def test_cuda_image_installs_the_projects_torch_pin_or_onnxruntime_gpu() -> None:
    cuda = instructions(DEPLOY / "Dockerfile.cuda")
    args = args_of(cuda)
    assert re.findall(r'"(torch==[^"]+)"', PYPROJECT) == [f"torch=={args['TORCH_VERSION']}"]
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu12\d", args["TORCH_INDEX"])
    run = " ".join(rest for w, rest in cuda if w == "RUN")
    assert '"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"' in run
    assert '".[snac]"' in run and "onnxruntime-gpu" in run
    assert args["SNAC_DECODER"] == "torch" and "onnx)" in run


# --- compose, Prometheus, Grafana


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_every_yaml_and_json_file_parses() -> None:
    ymls = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
    assert len(ymls) >= 12
    for path in ymls:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), path
    jsons = sorted(DEPLOY.rglob("*.json"))
    assert [p.name for p in jsons] == ["morpheus.json"]
    for path in jsons:
        assert isinstance(json.loads(path.read_text()), dict)


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items()}


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    """The Compose Specification's own JSON schema (vendored by check-jsonschema)."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(load_yaml(DEPLOY / name))


def test_compose_wires_morpheus_to_llama_server() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    llama, morpheus = services["llama"], services["morpheus"]
    assert interpolate(llama["image"]) == "ghcr.io/ggml-org/llama.cpp:server"
    llama_env = compose_env(llama)
    assert interpolate(llama_env["LLAMA_ARG_MODEL"]).endswith(".gguf")
    assert any(v.endswith(":/models:ro") for v in llama["volumes"])  # the Orpheus GGUF

    env = compose_env(morpheus)
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert env["TTS_BACKEND"] == "snac_llamacpp" and env["TTS_BACKEND"] in registry.BACKENDS
    assert env["FALLBACK_BACKEND"] in registry.BACKENDS
    url = urlsplit(env["SNAC_URL"])
    assert (url.hostname, url.port, url.path) == (
        "llama", int(llama_env["LLAMA_ARG_PORT"]), "/v1/completions")
    assert env["PARALLEL_STREAMS"] == llama_env["LLAMA_ARG_N_PARALLEL"]
    mounts = [interpolate(v).split(":")[1] for v in morpheus["volumes"]]
    assert any(env["SNAC_MODEL"] == m or env["SNAC_MODEL"].startswith(m + "/") for m in mounts)
    ports = [interpolate(p) for p in morpheus["ports"]]
    assert [p.split(":")[-1] for p in ports] == [str(default("PORT"))]
    grace = float(env.get("SHUTDOWN_GRACE_S", default("SHUTDOWN_GRACE_S")))
    assert float(morpheus["stop_grace_period"].rstrip("s")) > grace >= default("SHUTDOWN_GRACE_S")
    assert morpheus["depends_on"]["llama"]["condition"] == "service_healthy"
    build = morpheus["build"]
    assert (DEPLOY / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).is_file()
    assert "profiles" not in llama and "profiles" not in morpheus
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]


def test_compose_gpu_override_builds_the_cuda_image() -> None:
    base = load_yaml(DEPLOY / "docker-compose.yml")["services"]
    gpu = load_yaml(DEPLOY / "docker-compose.gpu.yml")["services"]
    assert set(gpu) <= set(base)
    assert interpolate(gpu["llama"]["image"]) == "ghcr.io/ggml-org/llama.cpp:server-cuda"
    assert (REPO / gpu["morpheus"]["build"]["dockerfile"]).is_file()
    assert gpu["morpheus"]["build"]["args"]["SNAC_DECODER"] in ("torch", "onnx")
    assert set(compose_env(gpu["morpheus"])) <= SETTINGS
    for svc in gpu.values():
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]


def test_monitoring_files_are_mounted_and_scrape_the_metrics_route() -> None:
    services = load_yaml(DEPLOY / "docker-compose.yml")["services"]
    mounts: dict[str, str] = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            src, dst = volume.split(":")[:2]
            assert (DEPLOY / src).exists(), src
            mounts[dst] = src
    prom = load_yaml(DEPLOY / mounts["/etc/prometheus/prometheus.yml"])
    [job] = prom["scrape_configs"]
    assert_get_route(job["metrics_path"])
    [target] = job["static_configs"][0]["targets"]
    assert target == f"morpheus:{default('PORT')}"

    datasources = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    [ds] = datasources["datasources"]
    assert urlsplit(ds["url"]).hostname == "prometheus"
    providers = load_yaml(DEPLOY / "grafana/provisioning/dashboards/morpheus.yml")["providers"]
    dash_dir = providers[0]["options"]["path"]
    assert mounts[f"{dash_dir}/morpheus.json"] == "./grafana/morpheus.json"
    dashboard = json.loads((DEPLOY / "grafana/morpheus.json").read_text())
    for panel in dashboard["panels"]:
        for target in [panel, *panel["targets"]]:
            assert target["datasource"]["uid"] == ds["uid"]


def promql_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana/morpheus.json").read_text())
    return [(t["expr"], t.get("legendFormat", "")) for p in dashboard["panels"]
            for t in p["targets"]]


def test_dashboard_queries_name_real_metrics_and_labels() -> None:
    families = set()
    for expr, legend in promql_exprs():
        names = set(re.findall(r"\btts_[a-z0-9_]+\b", expr))
        assert names, expr
        labels: set[str] = set(TARGET_LABELS)
        for name in names:
            assert name in METRICS, f"{name} is not exported by server/metrics.py"
            labels |= METRICS[name]
            families.add(name if name in REQUIRED_ON_DASHBOARD
                         else re.sub(r"_(bucket|sum|count|total|created)$", "", name))
        used = {lb.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr)
                for lb in group.split(",")}
        used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        used |= set(re.findall(r"[{,]\s*(\w+)\s*=~?", expr))
        assert used <= labels, (expr, used - labels)
    assert REQUIRED_ON_DASHBOARD <= families, REQUIRED_ON_DASHBOARD - families


# --- Kubernetes


def k8s_docs() -> dict[str, dict[str, Any]]:
    """{kind: manifest} over the kustomization's resources."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            assert doc["kind"] not in docs
            docs[doc["kind"]] = doc
    return docs


def test_kustomization_lists_every_manifest() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml",
                                                      "prometheus-adapter-values.yaml"}
    assert listed == present
    assert set(k8s_docs()) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                               "HorizontalPodAutoscaler"}


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_manifests_follow_the_kubernetes_schemas(version: str) -> None:
    """Strict: an unknown or misplaced field fails, as `kubectl apply` would refuse it."""
    for doc in k8s_docs().values():
        kubernetes_validate.validate(doc, version, strict=True)


def container() -> dict[str, Any]:
    [c] = k8s_docs()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_deployment_probes_ports_and_settings_match_the_server() -> None:
    docs = k8s_docs()
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = {e["name"]: e for e in c["env"]}
    config = docs["ConfigMap"]["data"]
    assert set(env) <= SETTINGS and set(config) <= SETTINGS, (set(env) | set(config)) - SETTINGS
    assert [s["configMapRef"]["name"] for s in c["envFrom"]] == [docs["ConfigMap"]["metadata"]["name"]]
    assert ports == {"http": default("PORT")} and int(env["PORT"]["value"]) == ports["http"]
    assert env["HOST"]["value"] == "0.0.0.0"
    assert config["TTS_BACKEND"] in registry.BACKENDS
    assert env["WEBRTC_HOST_ADDRESSES"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert_get_route(probe["path"])
        assert probe["port"] in ports
    annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert_get_route(annotations["prometheus.io/path"])
    assert int(annotations["prometheus.io/port"]) == ports["http"]


def test_grace_period_covers_the_pre_stop_sleep_and_the_drain() -> None:
    spec = k8s_docs()["Deployment"]["spec"]["template"]["spec"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    config = k8s_docs()["ConfigMap"]["data"]
    grace = float(config.get("SHUTDOWN_GRACE_S", default("SHUTDOWN_GRACE_S")))
    assert grace >= default("SHUTDOWN_GRACE_S")
    assert spec["terminationGracePeriodSeconds"] > float(command[1]) + grace


def test_service_pdb_and_hpa_select_the_deployment() -> None:
    docs = k8s_docs()
    deployment = docs["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = docs["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    [port] = service["ports"]
    assert port["targetPort"] == "http" and port["port"] == default("PORT")
    pdb = docs["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["minReplicas"] >= 2 and pdb["maxUnavailable"] < hpa["minReplicas"]


def test_hpa_scales_on_queued_streams_served_by_the_prometheus_adapter() -> None:
    hpa = k8s_docs()["HorizontalPodAutoscaler"]["spec"]
    [metric] = hpa["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name == "tts_queued_streams" and name in METRICS
    values = load_yaml(K8S / "prometheus-adapter-values.yaml")
    [rule] = values["rules"]["custom"]
    assert rule["name"]["as"] == name
    series = re.match(r"(\w+)\{", rule["seriesQuery"])
    assert series and series.group(1) == name
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


# --- HAProxy


HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")


def test_haproxy_config_checks_readyz_and_is_valid() -> None:
    cfg = (DEPLOY / "haproxy/haproxy.cfg").read_text()
    [check] = re.findall(r"option httpchk (\S+) (\S+)", cfg)
    assert check[0] == "GET"
    assert_get_route(check[1])
    assert check[1] == "/readyz"
    assert "503" in re.search(r"retry-on (.*)", cfg).group(1).split()  # type: ignore[union-attr]
    assert HAPROXY, "haproxy is missing: `make test` installs it (APT_TEST)"
    done = subprocess.run([HAPROXY, "-c", "-f", str(DEPLOY / "haproxy/haproxy.cfg")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
