//! The Kubernetes manifests: both overlays render with `kubectl kustomize`,
//! every object validates offline (tests/support/check_manifests.py), and the
//! configuration they ship is one delink accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{delink, install_test_venv, run_ok, test_venv};

/// The Kubernetes version the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.32.0";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Renders a kustomization with `kubectl kustomize` into a file.
fn render(kustomization: &Path, into: &Path) {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(kustomization)
        .output()
        .expect("kubectl runs (Debian kubernetes-client; .ci/run installs it)");
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        kustomization.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(into, &output.stdout).expect("write");
}

/// Runs the offline checker on rendered files: its exit code and report.
fn run_checker(files: &[PathBuf]) -> (Option<i32>, String) {
    install_test_venv();
    let output = Command::new(test_venv().join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/check_manifests.py"))
        .arg(KUBERNETES_VERSION)
        .args(files)
        .output()
        .expect("python runs");
    let mut report = String::from_utf8_lossy(&output.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), report)
}

/// Runs the checker and asserts it found nothing; its report.
fn check(files: &[PathBuf]) -> String {
    let (code, report) = run_checker(files);
    assert_eq!(code, Some(0), "{report}");
    report
}

#[test]
fn both_overlays_render_and_every_object_validates_against_kubernetes_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (overlay, kinds) in [
        (
            "local",
            &[
                "Deployment",
                "PodDisruptionBudget",
                "ServiceMonitor",
                "CronJob",
            ][..],
        ),
        (
            "production",
            &[
                "Deployment",
                "ScaledObject",
                "PrometheusRule",
                "ServiceMonitor",
                "CronJob",
            ][..],
        ),
    ] {
        let rendered = dir.path().join(format!("{overlay}.yaml"));
        render(&deploy_dir().join("overlays").join(overlay), &rendered);
        let report = check(std::slice::from_ref(&rendered));
        for kind in kinds {
            assert!(report.contains(kind), "{overlay} lacks a {kind}: {report}");
        }
        assert!(report.contains(", 0 problems"), "{report}");
    }
    let report = check(&[deploy_dir().join("jobs/erase.yaml")]);
    assert!(report.contains("Job"), "{report}");
}

#[test]
fn the_manifest_checker_finds_a_broken_deployment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = dir.path().join("base.yaml");
    render(&deploy_dir().join("base"), &rendered);
    let text = std::fs::read_to_string(&rendered).expect("rendered");
    let broken = text
        .replacen(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            1,
        )
        .replacen(
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 20",
            1,
        )
        .replacen("path: /readyz", "path: /metrics", 1)
        .replacen("replicas: 2", "replicas: two", 1);
    assert_ne!(broken, text);
    std::fs::write(&rendered, broken).expect("write");
    let (code, report) = run_checker(&[rendered]);
    assert_eq!(code, Some(1), "{report}");
    for expected in [
        "root filesystem must be read-only",
        "must exceed pipeline.shutdown_timeout_secs",
        "readinessProbe must GET /readyz",
        "replicas",
    ] {
        assert!(report.contains(expected), "{expected}: {report}");
    }
}

#[test]
fn the_shipped_deployment_configuration_and_policy_are_accepted_by_delink() {
    let base = deploy_dir().join("base");
    assert_eq!(
        std::fs::read(base.join("policy.toml")).expect("deployed policy"),
        std::fs::read(deploy_dir().join("../config/policy.toml")).expect("policy"),
        "deploy/base/policy.toml must be a copy of config/policy.toml"
    );
    let output = run_ok(
        delink()
            .args(["validate", "--config"])
            .arg(base.join("delink.toml"))
            .arg("--policy")
            .arg(base.join("policy.toml"))
            // What the Secret provides in the cluster; validate connects to nothing.
            .env(
                "DELINK_POSTGRES_URL",
                "host=postgres user=delink dbname=delink",
            ),
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration ok"));
    // The operator resource holds exactly the rules Prometheus is tested with.
    let monitoring = deploy_dir().join("monitoring");
    let rules = std::fs::read_to_string(monitoring.join("alerts.yaml")).expect("alerts");
    let resource = std::fs::read_to_string(monitoring.join("prometheusrule.yaml")).expect("rule");
    let groups = |text: &str, indent: &str| -> Vec<String> {
        let start = text.find(&format!("{indent}groups:")).expect("groups");
        text[start..]
            .lines()
            .map(|line| {
                line.strip_prefix(indent)
                    .unwrap_or(line)
                    .trim_end()
                    .to_owned()
            })
            .filter(|line| !line.is_empty())
            .collect()
    };
    assert_eq!(groups(&rules, ""), groups(&resource, "  "));
}
