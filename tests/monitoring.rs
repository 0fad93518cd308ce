//! The shipped alerts, runbooks and dashboard: checked by promtool, and every
//! query run by a real Prometheus server against a scraped worker.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

/// Runs a tool of the Debian `prometheus` package (installed by `.ci/run`).
fn prometheus_tool(name: &str) -> Command {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: install the Debian package `prometheus` (.ci/run does)",
        path.display()
    );
    Command::new(path)
}

/// The alert names of `alerts.yaml`, and each one's expression (kept on one line).
pub(crate) fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring_dir().join("alerts.yaml")).expect("alerts");
    let mut rules = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(alert) = line.strip_prefix("- alert: ") {
            name = Some(alert.to_owned());
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            rules.push((name.take().expect("expr after its alert"), expr.to_owned()));
        }
    }
    rules
}

/// Every `expr` of the dashboard, with Grafana's variables filled in.
pub(crate) fn dashboard_queries() -> Vec<(String, String)> {
    let path = monitoring_dir().join("dashboards/delink.json");
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("dashboard")).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let filled = expr
                .replace("$__rate_interval", "30s")
                .replace("$namespace", ".*");
            queries.push((panel["title"].as_str().expect("title").to_owned(), filled));
        }
    }
    queries
}

/// The `delink_*` metric names an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("delink_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_alert_rules_pass_promtool_and_every_alert_has_firing_and_silent_tests_and_a_runbook() {
    let dir = monitoring_dir();
    for (action, file) in [("check", "alerts.yaml"), ("test", "alerts.test.yaml")] {
        let output = prometheus_tool("promtool")
            .args([action, "rules"])
            .arg(dir.join(file))
            .output()
            .expect("promtool runs");
        assert!(
            output.status.success(),
            "promtool {action} rules {file}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let tests = std::fs::read_to_string(dir.join("alerts.test.yaml")).expect("tests");
    let runbooks = std::fs::read_to_string(dir.join("runbooks.md")).expect("runbooks");
    let rules = alert_rules();
    assert!(rules.len() >= 9, "{} alerts", rules.len());
    for (alert, _) in &rules {
        // A case that fires names the alert in its expected labels' test; a silent one is
        // an empty expectation or another series of the same test left out of it.
        let cases = tests.matches(&format!("alertname: {alert}\n")).count();
        let silent = tests.contains(&format!("alertname: {alert}\n        exp_alerts: []"))
            || tests
                .split("  - interval:")
                .filter(|case| case.contains(&format!("alertname: {alert}\n")))
                .any(|case| case.matches("- series:").count() > case.matches("exp_labels").count());
        assert!(
            cases >= 1 && silent,
            "{alert}: needs a firing and a silent test"
        );
        assert!(
            runbooks.contains(&format!("\n## {alert}\n")),
            "{alert} has no runbook section"
        );
    }
}

/// A Prometheus server on loopback scraping one target every second.
pub(crate) struct Prometheus {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub(crate) fn scraping(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: delink\n    static_configs:\n      - targets: ['{target}']\n        labels: {{ namespace: test, pod: worker-0 }}\n"
            ),
        )
        .expect("config");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = prometheus_tool("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let server = Prometheus {
            child,
            address,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(address, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// Runs an instant query; the result vector (fails on a query error).
    pub(crate) fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let (status, body) = http_get(self.address, &path).expect("prometheus answers");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(status, 200, "{expr}: {body}");
        assert_eq!(answer["status"], "success", "{expr}: {body}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The metric names Prometheus holds series of.
    pub(crate) fn metric_names(&self) -> BTreeSet<String> {
        let (_, body) = http_get(self.address, "/api/v1/label/__name__/values").expect("answer");
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        answer["data"]
            .as_array()
            .expect("names")
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that every dashboard query returns a series and that every alert
/// expression evaluates and reads only metrics Prometheus scraped.
pub(crate) fn assert_every_query_finds_its_series(prometheus: &Prometheus) {
    let scraped = prometheus.metric_names();
    let assert_scraped = |what: &str, expr: &str| {
        let names = metric_names(expr);
        let missing: Vec<_> = names.difference(&scraped).collect();
        assert!(missing.is_empty(), "{what}: {missing:?} never scraped");
    };
    for (title, expr) in dashboard_queries() {
        assert_scraped(&format!("panel {title}"), &expr);
        assert!(
            !prometheus.query(&expr).is_empty(),
            "panel {title}: no series for {expr}"
        );
    }
    for (alert, expr) in alert_rules() {
        assert_scraped(&format!("alert {alert}"), &expr);
        prometheus.query(&expr);
        // The expression without its threshold: the series it compares exist.
        let (left, _) = expr.rsplit_once(" > ").expect("a threshold");
        let left = left.rsplit_once(" and ").map_or(left, |(_, last)| last);
        let left = left.rsplit_once(" or ").map_or(left, |(_, last)| last);
        assert!(
            !prometheus.query(left).is_empty(),
            "alert {alert}: no series for {left}"
        );
    }
}

/// GET over HTTP/1.0 (no chunked bodies): (status, body).
fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
