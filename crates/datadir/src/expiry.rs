//! Deletion of partitions past their retention.

use anyhow::Result;

use crate::{OutputStore, parse_day};

/// Deletes the partitions (`date=YYYY-MM-DD`) below `prefix` older than
/// `retention_days` before `today`; returns how many went.
pub fn purge_expired(
    outputs: &OutputStore,
    prefix: &str,
    today: i32,
    retention_days: u32,
) -> Result<u64> {
    let oldest_kept = today - i32::try_from(retention_days).unwrap_or(i32::MAX);
    let mut purged = 0;
    for (date, partition) in outputs.partitions(prefix)? {
        if parse_day(&date).is_some_and(|day| day < oldest_kept) {
            outputs.delete_prefix(&partition)?;
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
        let root = dir.path().join("history");
        for date in ["2026-10-01", "2026-10-17", "2026-11-20", "notes"] {
            let partition = root.join(format!("date={date}"));
            std::fs::create_dir_all(&partition).expect("mkdir");
            std::fs::write(partition.join("part-a.parquet"), b"x").expect("write");
        }
        let outputs = OutputStore::local(dir.path()).expect("outputs");
        let today = crate::utc_day(1_795_178_712_345_000); // 2026-11-20
        assert_eq!(
            purge_expired(&outputs, "history", today, 35).expect("purge"),
            1
        );
        assert!(!root.join("date=2026-10-01").exists());
        assert!(root.join("date=2026-10-17/part-a.parquet").exists());
        assert!(root.join("date=notes").exists());
    }
}
