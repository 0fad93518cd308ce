//! Talking to a running worker's admin server: GET, its announced address, scrape values.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStderr};
use std::time::{Duration, Instant};

/// What a run prints on stderr once its admin server listens.
const ANNOUNCEMENT: &str = "admin: serving /metrics, /healthz and /readyz on http://";

/// Sends a GET and returns (status, body).
pub(crate) fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

/// Reads the admin address the run announces on stderr.
pub(crate) fn admin_address(child: &mut Child) -> (SocketAddr, BufReader<ChildStderr>) {
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("stderr") > 0,
            "no admin line"
        );
        if let Some(rest) = line.trim().strip_prefix(ANNOUNCEMENT) {
            return (rest.parse().expect("address"), stderr);
        }
    }
}

/// Returns the value of an unlabelled series in a scrape.
pub(crate) fn value(scrape: &str, name: &str) -> Option<u64> {
    scrape.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits for the admin address announced in a log file a run writes its stderr to.
pub(crate) fn admin_address_in(log: &Path, patience: Duration) -> SocketAddr {
    let deadline = Instant::now() + patience;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = text
            .lines()
            .find_map(|line| line.trim().strip_prefix(ANNOUNCEMENT))
        {
            return address.parse().expect("address");
        }
        assert!(
            Instant::now() < deadline,
            "no admin line in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Returns the value of the series of `name` that carries every `key="value"` in `labels`.
pub(crate) fn labelled_value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let prefix = format!("{name}{{");
    scrape.lines().find_map(|line| {
        let (series, value) = line.strip_prefix(&prefix)?.rsplit_once("} ")?;
        let pairs: Vec<&str> = series.split(',').collect();
        labels
            .iter()
            .all(|(key, wanted)| pairs.contains(&format!("{key}=\"{wanted}\"").as_str()))
            .then(|| value.trim().parse().ok())?
    })
}

/// Returns the sum of every series of `name` in a scrape.
pub(crate) fn summed_value(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}
