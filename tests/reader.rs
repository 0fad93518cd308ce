//! An independent reader (pyarrow and DuckDB) reads the output with the
//! documented schema and Hive partitions.

use std::collections::BTreeMap;
use std::process::Command;

use crate::util::{python, two_runs};

const READ_BACK: &str = r#"
import json, sys
import pyarrow.dataset as ds
import duckdb
root = sys.argv[1]
out = {}
for name in ("history", "devices"):
    dataset = ds.dataset(f"{root}/{name}", format="parquet", partitioning="hive")
    table = dataset.to_table()
    out[name] = {
        "rows": table.num_rows,
        "schema": [f"{f.name}: {f.type}" for f in dataset.schema],
        "dates": sorted(set(str(d) for d in table.column("date").to_pylist())),
    }
    con = duckdb.connect()
    count = con.execute(
        f"select count(*) from read_parquet('{root}/{name}/*/*.parquet', hive_partitioning = true)"
    ).fetchone()[0]
    out[name]["duckdb_rows"] = count
print(json.dumps(out))
"#;

/// Parses the `| column | type |` tables of docs/schema.md, by dataset heading.
pub(crate) fn documented_schema() -> BTreeMap<String, Vec<String>> {
    let text = include_str!("../docs/schema.md");
    let mut schema: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = heading
                .split_whitespace()
                .next()
                .map(|word| word.trim_matches(|c| c == '`' || c == '/').to_owned());
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4
            && cells[1].starts_with('`')
            && let Some(dataset) = &current
        {
            let column = cells[1].trim_matches('`');
            let arrow_type = cells[2].trim_matches('`');
            schema
                .entry(dataset.clone())
                .or_default()
                .push(format!("{column}: {arrow_type}"));
        }
    }
    schema
}

#[test]
fn pyarrow_and_duckdb_read_the_documented_schema_and_partitions() {
    let runs = two_runs();
    let output = Command::new(python())
        .args(["-c", READ_BACK])
        .arg(&runs.data)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let documented = documented_schema();
    for (name, rows) in [
        ("history", runs.summary["history_rows"].clone()),
        ("devices", runs.summary["devices_rows"].clone()),
    ] {
        assert_eq!(read[name]["rows"], rows, "{name} rows via pyarrow");
        assert_eq!(read[name]["duckdb_rows"], rows, "{name} rows via duckdb");
        let schema: Vec<String> = read[name]["schema"]
            .as_array()
            .expect("schema")
            .iter()
            .map(|f| f.as_str().expect("text").to_owned())
            .collect();
        let mut expected = documented.get(name).cloned().unwrap_or_default();
        expected.push("date: string".to_owned());
        assert_eq!(schema, expected, "{name} schema vs docs/schema.md");
        let dates = read[name]["dates"].as_array().expect("dates");
        assert!(dates.len() >= 3, "several UTC dates: {dates:?}");
    }
}
