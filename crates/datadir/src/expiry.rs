//! Deletion of partitions past their retention.

use std::fs;
use std::path::Path;

use crate::parse_day;

/// Deletes partitions (`date=YYYY-MM-DD` directories) older than `retention_days` before `today`.
pub fn purge_expired(root: &Path, today: i32, retention_days: u32) -> std::io::Result<u64> {
    if !root.exists() {
        return Ok(0);
    }
    let oldest_kept = today - i32::try_from(retention_days).unwrap_or(i32::MAX);
    let mut purged = 0;
    for entry in fs::read_dir(root)? {
        let path = entry?.path();
        let Some(day) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("date="))
            .and_then(parse_day)
        else {
            continue;
        };
        if day < oldest_kept {
            fs::remove_dir_all(&path)?;
            purged += 1;
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_partitions_go_and_recent_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        for date in ["2026-10-01", "2026-10-17", "2026-11-20", "notes"] {
            fs::create_dir_all(dir.path().join(format!("date={date}"))).expect("mkdir");
        }
        let today = crate::utc_day(1_795_178_712_345_000); // 2026-11-20
        assert_eq!(purge_expired(dir.path(), today, 35).expect("purge"), 1);
        assert!(!dir.path().join("date=2026-10-01").exists());
        assert!(dir.path().join("date=2026-10-17").exists());
        assert!(dir.path().join("date=notes").exists());
    }
}
