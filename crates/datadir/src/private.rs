//! Files and directories that may hold personal data: owner-only (0600 / 0700),
//! whatever the umask, so another account on the host cannot read them.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a file that may hold personal data.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of a directory that may hold personal data.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates (or truncates) a file readable and writable by its owner only.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    // A file that existed keeps its mode through `open`: tighten it.
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE_MODE))?;
    Ok(file)
}

/// Opens a file for appending, creating it owner-only.
pub fn append_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE_MODE))?;
    Ok(file)
}

/// Creates a directory and its missing parents owner-only, and makes `path` itself
/// owner-only if it already existed.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)?;
    fs::set_permissions(path, Permissions::from_mode(PRIVATE_DIR_MODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_directories_are_owner_only_even_when_they_existed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        create_private_dir_all(&nested).expect("dirs");
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        let file = nested.join("f");
        fs::write(&file, b"x").expect("write");
        fs::set_permissions(&file, Permissions::from_mode(0o644)).expect("chmod");
        create_private_file(&file).expect("file");
        assert_eq!(mode(&file), 0o600);
        let appended = nested.join("g");
        append_private_file(&appended).expect("append");
        assert_eq!(mode(&appended), 0o600);
    }
}
