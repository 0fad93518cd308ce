//! The key-encryption keys (KEKs) that wrap every entity key at rest.
//!
//! A keyring holds one or more KEK versions; new keys are wrapped under the
//! newest, and any loaded version can unwrap. Its text is one
//! `<version>:<64 hex>` entry per line (or comma-separated, as in an
//! environment variable); `#` starts a comment. Rotation adds a version;
//! retirement destroys old ones, which is what makes erased keys in old
//! backups undecryptable.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::seal::{NONCE_LEN, TAG_LEN};
use crate::{KeyStoreError, Result};

/// Name of the environment variable that may carry the keyring.
pub const KEK_ENV: &str = "DELINK_KEK";

/// Says where the keyring comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// Text held in an environment variable (e.g. from a Kubernetes Secret); read-only.
    Env(String),
    /// A file holding the keyring text; created with mode 0600 when absent and allowed.
    File(PathBuf),
}

impl KekSource {
    /// Picks `DELINK_KEK` when set, else the file.
    pub fn from_env_or_file(file: PathBuf) -> Self {
        match std::env::var(KEK_ENV) {
            Ok(text) if !text.trim().is_empty() => KekSource::Env(text),
            _ => KekSource::File(file),
        }
    }

    fn describe(&self) -> String {
        match self {
            KekSource::Env(_) => format!("the {KEK_ENV} environment variable"),
            KekSource::File(path) => path.display().to_string(),
        }
    }
}

/// Why a wrapped key could not be unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapFailure {
    /// The key was wrapped under a KEK version the keyring does not hold.
    VersionMissing,
    /// Authentication failed: wrong KEK, or altered data.
    Authentication,
}

/// Holds every loaded KEK version; secrets are redacted in `Debug` and zeroed on drop.
pub struct Keyring {
    source: KekSource,
    keks: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.versions())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Keyring {
    /// Loads the keyring; a missing file is generated (version 1) only when `may_create` is set.
    pub fn load(source: &KekSource, may_create: bool) -> Result<Option<Keyring>> {
        let text = match source {
            KekSource::Env(text) => Zeroizing::new(text.clone()),
            KekSource::File(path) if path.exists() => read_secret(path)?,
            KekSource::File(path) if may_create => {
                generate_file(path)?;
                read_secret(path)?
            }
            KekSource::File(_) => return Ok(None),
        };
        Ok(Some(Keyring {
            source: source.clone(),
            keks: parse(&text)?,
        }))
    }

    /// Builds a keyring from text, for tests and tools (read-only like an environment variable).
    pub fn from_text(text: &str) -> Result<Keyring> {
        Ok(Keyring {
            source: KekSource::Env(text.to_owned()),
            keks: parse(text)?,
        })
    }

    /// Re-reads the source, picking up versions another process added or destroyed.
    pub fn reload(&mut self) -> Result<()> {
        if let KekSource::File(path) = &self.source {
            self.keks = parse(&read_secret(path)?)?;
        }
        Ok(())
    }

    /// Returns the newest version, under which new keys are wrapped.
    pub fn current_version(&self) -> u32 {
        self.keks.keys().next_back().copied().unwrap_or(0)
    }

    /// Lists the loaded versions, oldest first.
    pub fn versions(&self) -> Vec<u32> {
        self.keks.keys().copied().collect()
    }

    /// Wraps secret bytes under the newest version, binding `aad`; returns the
    /// version and nonce ‖ ciphertext ‖ tag.
    pub fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<(u32, Vec<u8>)> {
        let (version, secret) =
            self.keks
                .iter()
                .next_back()
                .ok_or(KeyStoreError::KekMalformed {
                    reason: "the keyring holds no KEK",
                })?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| KeyStoreError::Random)?;
        let cipher = XChaCha20Poly1305::new(secret.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| KeyStoreError::Seal)?;
        let mut wrapped = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&ciphertext);
        Ok((*version, wrapped))
    }

    /// Unwraps bytes made by [`Keyring::wrap`] under `version` with the same `aad`.
    pub fn unwrap(
        &self,
        version: u32,
        wrapped: &[u8],
        aad: &[u8],
    ) -> std::result::Result<Zeroizing<Vec<u8>>, UnwrapFailure> {
        let secret = self
            .keks
            .get(&version)
            .ok_or(UnwrapFailure::VersionMissing)?;
        if wrapped.len() < NONCE_LEN + TAG_LEN {
            return Err(UnwrapFailure::Authentication);
        }
        let cipher = XChaCha20Poly1305::new(secret.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(&wrapped[..NONCE_LEN]),
                Payload {
                    msg: &wrapped[NONCE_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| UnwrapFailure::Authentication)
    }

    /// Generates a new, newest version and saves it to the keyring file.
    pub fn add_version(&mut self) -> Result<u32> {
        let path = self.writable_path("adding a KEK version")?;
        let version = self.current_version() + 1;
        self.keks.insert(version, random_secret()?);
        self.save(&path)?;
        tracing::info!(version, path = %path.display(), "added a KEK version; back up the keyring");
        Ok(version)
    }

    /// Destroys KEK versions: rewrites the keyring file without them, zeroing the old text first.
    pub fn destroy(&mut self, versions: &[u32]) -> Result<()> {
        let path = self.writable_path("destroying KEK versions")?;
        if versions.contains(&self.current_version()) {
            return Err(KeyStoreError::KekMalformed {
                reason: "the newest KEK version cannot be destroyed; rotate first",
            });
        }
        for version in versions {
            self.keks.remove(version);
        }
        self.save(&path)
    }

    fn writable_path(&self, action: &'static str) -> Result<PathBuf> {
        match &self.source {
            KekSource::File(path) => Ok(path.clone()),
            KekSource::Env(_) => Err(KeyStoreError::KekReadOnly {
                action,
                source_name: self.source.describe(),
            }),
        }
    }

    /// Replaces the keyring file atomically; the old file's bytes are overwritten with zeros first.
    fn save(&self, path: &Path) -> Result<()> {
        let mut text = Zeroizing::new(String::new());
        for (version, secret) in &self.keks {
            text.push_str(&format!("{version}:"));
            for byte in secret.iter() {
                text.push_str(&format!("{byte:02x}"));
            }
            text.push('\n');
        }
        let staged = path.with_extension("new");
        let io_error = |action| {
            let path = path.to_path_buf();
            move |source| KeyStoreError::Io {
                action,
                path,
                source,
            }
        };
        let _ = fs::remove_file(&staged);
        write_private(&staged, text.as_bytes()).map_err(io_error("writing the keyring"))?;
        if let Ok(old) = fs::metadata(path) {
            let zeros = vec![0u8; old.len() as usize];
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut file| file.write_all(&zeros).and_then(|()| file.sync_all()))
                .map_err(io_error("overwriting the old keyring"))?;
        }
        fs::rename(&staged, path).map_err(io_error("replacing the keyring"))?;
        sync_parent(path).map_err(io_error("syncing the keyring directory"))
    }
}

fn read_secret(path: &Path) -> Result<Zeroizing<String>> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| KeyStoreError::Io {
            action: "reading the KEK",
            path: path.to_path_buf(),
            source,
        })
}

fn parse(text: &str) -> Result<BTreeMap<u32, Zeroizing<[u8; 32]>>> {
    let mut keks = BTreeMap::new();
    let entries = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty());
    for entry in entries {
        let (version, hex) = match entry.split_once(':') {
            Some((version, hex)) => (
                version
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|version| *version > 0)
                    .ok_or(KeyStoreError::KekMalformed {
                        reason: "the version before ':' is not a positive number",
                    })?,
                hex.trim(),
            ),
            None => (1, entry),
        };
        if keks.insert(version, parse_hex(hex)?).is_some() {
            return Err(KeyStoreError::KekMalformed {
                reason: "a KEK version appears twice",
            });
        }
    }
    if keks.is_empty() {
        return Err(KeyStoreError::KekMalformed {
            reason: "the keyring holds no KEK",
        });
    }
    Ok(keks)
}

fn parse_hex(hex: &str) -> Result<Zeroizing<[u8; 32]>> {
    let malformed = || KeyStoreError::KekMalformed {
        reason: "expected 64 hex digits (256 bits)",
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(malformed());
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    for (byte, pair) in secret.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let digits = std::str::from_utf8(pair).map_err(|_| malformed())?;
        *byte = u8::from_str_radix(digits, 16).map_err(|_| malformed())?;
    }
    Ok(secret)
}

fn random_secret() -> Result<Zeroizing<[u8; 32]>> {
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(secret.as_mut()).map_err(|_| KeyStoreError::Random)?;
    Ok(secret)
}

fn generate_file(path: &Path) -> Result<()> {
    let mut keyring = Keyring {
        source: KekSource::File(path.to_path_buf()),
        keks: BTreeMap::new(),
    };
    keyring.keks.insert(1, random_secret()?);
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| KeyStoreError::Io {
                action: "creating the KEK directory",
                path: parent.to_path_buf(),
                source,
            })?;
    }
    keyring.save(path)?;
    tracing::info!(path = %path.display(), "generated a new KEK; back it up apart from the data, it cannot be recovered");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const HEX2: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_bare_versioned_and_multi_version_text() {
        assert_eq!(Keyring::from_text(HEX).expect("bare").versions(), [1]);
        let ring = Keyring::from_text(&format!("7:{HEX}\n# old\n3:{HEX2}\n")).expect("lines");
        assert_eq!(ring.versions(), [3, 7]);
        assert_eq!(ring.current_version(), 7);
        let ring = Keyring::from_text(&format!("1:{HEX}, 2:{HEX2}")).expect("commas");
        assert_eq!(ring.versions(), [1, 2]);
        assert!(Keyring::from_text("1:abc").is_err());
        assert!(Keyring::from_text(&HEX.replace('0', "g")).is_err());
        assert!(Keyring::from_text(&format!("1:{HEX}\n1:{HEX2}")).is_err());
        assert!(Keyring::from_text("").is_err());
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let ring = Keyring::from_text(HEX).expect("kek");
        assert!(!format!("{ring:?}").contains("0a0b"));
        let error = Keyring::from_text(&format!("x:{HEX}")).expect_err("bad version");
        assert!(!error.to_string().contains("0a0b"));
    }

    #[test]
    fn any_loaded_version_unwraps_and_new_keys_use_the_newest() {
        let old = Keyring::from_text(&format!("1:{HEX}")).expect("old");
        let both = Keyring::from_text(&format!("1:{HEX}\n2:{HEX2}")).expect("both");
        let new = Keyring::from_text(&format!("2:{HEX2}")).expect("new");
        let key = [7u8; 32];
        let (version, wrapped) = old.wrap(&key, b"aad").expect("wrap");
        assert_eq!(version, 1);
        let unwrapped = both.unwrap(1, &wrapped, b"aad").expect("unwrap");
        assert_eq!(unwrapped.as_slice(), key);
        assert_eq!(
            new.unwrap(1, &wrapped, b"aad").map(|_| ()),
            Err(UnwrapFailure::VersionMissing)
        );
        assert_eq!(
            both.unwrap(1, &wrapped, b"other").map(|_| ()),
            Err(UnwrapFailure::Authentication)
        );
        assert_eq!(both.wrap(&key, b"aad").expect("wrap").0, 2);
    }

    #[test]
    fn file_keyring_is_private_and_rotates_and_destroys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keyrings/kek");
        let source = KekSource::File(path.clone());
        assert!(Keyring::load(&source, false).expect("load").is_none());
        let mut ring = Keyring::load(&source, true).expect("create").expect("ring");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = fs::metadata(dir.path().join("keyrings"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "the keyring directory is private too");
        let (_, wrapped) = ring.wrap(&[7u8; 32], b"aad").expect("wrap");
        assert_eq!(ring.add_version().expect("rotate"), 2);
        let reloaded = Keyring::load(&source, false)
            .expect("reload")
            .expect("ring");
        assert_eq!(reloaded.versions(), [1, 2]);
        assert!(ring.destroy(&[2]).is_err(), "the newest version is kept");
        ring.destroy(&[1]).expect("destroy");
        let reloaded = Keyring::load(&source, false)
            .expect("reload")
            .expect("ring");
        assert_eq!(reloaded.versions(), [2]);
        assert_eq!(
            reloaded.unwrap(1, &wrapped, b"aad").map(|_| ()),
            Err(UnwrapFailure::VersionMissing)
        );
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_environment_keyring_is_read_only() {
        let mut ring = Keyring::from_text(HEX).expect("ring");
        let error = ring.add_version().expect_err("read-only");
        assert!(error.to_string().contains(KEK_ENV), "{error}");
    }
}
