"""Checks rendered Kubernetes manifests of delink, offline.

Usage: check_manifests.py KUBERNETES_VERSION RENDERED.yaml... 

Every object of a built-in kind is validated strictly against the Kubernetes
schemas that kubernetes-validate ships. The custom resources (ServiceMonitor,
PrometheusRule, ScaledObject) have no schema there: their fields are checked
here against the objects they refer to. Then what the deployment depends on
is checked across objects: probes, security context, grace period against
the shutdown limit, Secrets never inlined. Prints one line per problem and
exits 1 when there is any.
"""

import sys
import tomllib

import kubernetes_validate
import yaml

CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}

problems = []


def problem(text):
    problems.append(text)


def pod_specs(objects):
    for obj in objects:
        kind = obj["kind"]
        if kind == "Deployment" or kind == "Job":
            yield obj, obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def check_pods(objects):
    for obj, spec in pod_specs(objects):
        name = f'{obj["kind"]}/{obj["metadata"]["name"]}'
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problem(f"{name}: pods must run as non-root")
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container.get("securityContext", {})
            if not context.get("readOnlyRootFilesystem"):
                problem(f'{name}/{container["name"]}: root filesystem must be read-only')
            if context.get("allowPrivilegeEscalation") is not False:
                problem(f'{name}/{container["name"]}: privilege escalation must be off')
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problem(f'{name}/{container["name"]}: capabilities must all be dropped')
            for variable in container.get("env", []):
                secret_like = any(word in variable["name"] for word in ("KEK", "POSTGRES_URL", "PASSWORD"))
                if secret_like and "value" in variable:
                    problem(f'{name}: {variable["name"]} is inlined; it must come from a Secret')
            if "memory" not in container.get("resources", {}).get("limits", {}):
                problem(f'{name}/{container["name"]}: no memory limit')


def config_of(objects):
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "delink-config":
            return tomllib.loads(obj["data"]["delink.toml"])
    problem("no ConfigMap delink-config with delink.toml")
    return {}


def check_worker(objects, config):
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    if len(deployments) != 1:
        problem(f"expected one Deployment, found {len(deployments)}")
        return None
    worker = deployments[0]
    spec = worker["spec"]["template"]["spec"]
    container = spec["containers"][0]
    shutdown = config.get("pipeline", {}).get("shutdown_timeout_secs", 25)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace <= shutdown:
        problem(f"terminationGracePeriodSeconds {grace} must exceed pipeline.shutdown_timeout_secs {shutdown}")
    probes = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        got = container.get(probe, {}).get("httpGet", {})
        if got.get("path") != path or got.get("port") != "admin":
            problem(f"{probe} must GET {path} on the admin port, got {got}")
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
    listen = config.get("admin", {}).get("listen", "")
    if not listen.endswith(f':{ports.get("admin")}'):
        problem(f"admin.listen {listen!r} does not serve the admin port {ports.get('admin')}")
    if "podAntiAffinity" not in spec.get("affinity", {}):
        problem("workers need pod anti-affinity")
    return worker


def labels_match(selector, labels):
    return all(labels.get(key) == value for key, value in selector.items())


def check_custom(objects, config, worker):
    services = [o for o in objects if o["kind"] == "Service"]
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    pod_labels = worker["spec"]["template"]["metadata"]["labels"] if worker else {}
    for pdb in pdbs:
        if not labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            problem("the PodDisruptionBudget selects no worker")
    for obj in objects:
        kind = obj["kind"]
        spec = obj.get("spec", {})
        if kind == "ServiceMonitor":
            targets = [s for s in services if labels_match(spec["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
            if not targets:
                problem("the ServiceMonitor selects no Service")
            for endpoint in spec["endpoints"]:
                names = {p["name"] for s in targets for p in s["spec"]["ports"]}
                if endpoint["port"] not in names or endpoint.get("path") != "/metrics":
                    problem(f"ServiceMonitor endpoint {endpoint} is not a Service port serving /metrics")
        elif kind == "PrometheusRule":
            rules = [r for group in spec["groups"] for r in group["rules"]]
            if not rules or any("alert" not in r or "expr" not in r for r in rules):
                problem("the PrometheusRule must hold alert rules")
        elif kind == "ScaledObject":
            target = spec["scaleTargetRef"]["name"]
            if worker is None or target != worker["metadata"]["name"]:
                problem(f"the ScaledObject scales {target}, not the worker Deployment")
            if spec["minReplicaCount"] < 1 or spec["maxReplicaCount"] < spec["minReplicaCount"]:
                problem("the ScaledObject replica bounds are wrong")
            for trigger in spec["triggers"]:
                meta = trigger["metadata"]
                kafka = config.get("kafka", {})
                if trigger["type"] == "kafka":
                    if meta["consumerGroup"] != kafka.get("group_id"):
                        problem(f'the ScaledObject watches group {meta["consumerGroup"]}, the workers join {kafka.get("group_id")}')
                    if meta["topic"] not in kafka.get("topics", []):
                        problem(f'the ScaledObject watches topic {meta["topic"]}, not one the workers read')


def main():
    version, files = sys.argv[1], sys.argv[2:]
    objects = []
    for path in files:
        with open(path) as handle:
            for obj in yaml.safe_load_all(handle):
                if obj:
                    objects.append(obj)
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problem(f'{obj["kind"]}/{obj["metadata"]["name"]}: {error.message} at {list(error.path)}')
        except kubernetes_validate.SchemaNotFoundError:
            problem(f'{obj["kind"]} {obj["apiVersion"]}: no schema for Kubernetes {version}')
    check_pods(objects)
    if any(o["kind"] == "Deployment" for o in objects):
        config = config_of(objects)
        worker = check_worker(objects, config)
        check_custom(objects, config, worker)
    kinds = sorted({o["kind"] for o in objects})
    for line in problems:
        print(f"problem: {line}")
    print(f"{len(objects)} objects ({', '.join(kinds)}), {len(problems)} problems")
    sys.exit(1 if problems else 0)


main()
