//! The key-encryption key (KEK) that wraps every entity key at rest.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::seal::{NONCE_LEN, TAG_LEN};
use crate::{EntityKey, KeyStoreError, Result};

/// Name of the environment variable that may carry the KEK (`<version>:<64 hex>` or `<64 hex>`).
pub(crate) const KEK_ENV: &str = "DELINK_KEK";

/// Length of a wrapped entity key: nonce ‖ 32-byte key ciphertext ‖ tag.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + 32 + TAG_LEN;

/// Says where the KEK comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// Text held in an environment variable (e.g. from a Kubernetes Secret).
    Env(String),
    /// A file holding the KEK text; created with mode 0600 when absent and allowed.
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
}

/// Holds one KEK version; redacted in `Debug`, zeroed on drop.
pub struct Kek {
    version: u32,
    secret: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("version", &self.version)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Kek {
    /// Returns the KEK version recorded with every key it wraps.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Loads the KEK; a missing file is generated only when `may_create` is set.
    pub fn load(source: &KekSource, may_create: bool) -> Result<Option<Kek>> {
        match source {
            KekSource::Env(text) => Kek::parse(text).map(Some),
            KekSource::File(path) if path.exists() => {
                let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| {
                    KeyStoreError::Io {
                        action: "reading the KEK",
                        path: path.clone(),
                        source,
                    }
                })?);
                Kek::parse(&text).map(Some)
            }
            KekSource::File(path) if may_create => Kek::generate(path).map(Some),
            KekSource::File(_) => Ok(None),
        }
    }

    /// Parses `<version>:<64 hex>` or a bare `<64 hex>` (version 1).
    pub fn parse(text: &str) -> Result<Kek> {
        let text = text.trim();
        let (version, hex) = match text.split_once(':') {
            Some((version, hex)) => (
                version
                    .parse::<u32>()
                    .map_err(|_| KeyStoreError::KekMalformed {
                        reason: "the version before ':' is not a number",
                    })?,
                hex,
            ),
            None => (1, text),
        };
        if hex.len() != 64 {
            return Err(KeyStoreError::KekMalformed {
                reason: "expected 64 hex digits (256 bits)",
            });
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        for (byte, pair) in secret.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(Kek { version, secret })
    }

    fn generate(path: &Path) -> Result<Kek> {
        let fresh = EntityKey::random()?;
        let mut text = Zeroizing::new(String::from("1:"));
        for byte in fresh.expose() {
            text.push_str(&format!("{byte:02x}"));
        }
        text.push('\n');
        let io_error = |source| KeyStoreError::Io {
            action: "creating the KEK file",
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_error)?;
        file.write_all(text.as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        tracing::info!(path = %path.display(), "generated a new KEK; back it up, it cannot be recovered");
        Kek::parse(&text)
    }

    /// Wraps an entity key, binding `aad` (scope and lookup tag).
    pub(crate) fn wrap(&self, key: &EntityKey, aad: &[u8]) -> Result<[u8; WRAPPED_LEN]> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| KeyStoreError::Random)?;
        let cipher = XChaCha20Poly1305::new(self.secret.as_ref().into());
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key.expose(),
                    aad,
                },
            )
            .map_err(|_| KeyStoreError::Seal)?;
        let mut wrapped = [0u8; WRAPPED_LEN];
        wrapped[..NONCE_LEN].copy_from_slice(&nonce);
        wrapped[NONCE_LEN..].copy_from_slice(&ciphertext);
        Ok(wrapped)
    }

    /// Unwraps a key made by [`Kek::wrap`]; `None` when authentication fails.
    pub(crate) fn unwrap_key(&self, wrapped: &[u8; WRAPPED_LEN], aad: &[u8]) -> Option<EntityKey> {
        let cipher = XChaCha20Poly1305::new(self.secret.as_ref().into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&wrapped[..NONCE_LEN]),
                    Payload {
                        msg: &wrapped[NONCE_LEN..],
                        aad,
                    },
                )
                .ok()?,
        );
        let bytes: [u8; 32] = plaintext.as_slice().try_into().ok()?;
        Some(EntityKey::from_bytes(bytes))
    }
}

fn hex_digit(byte: u8) -> Result<u8> {
    match byte {
        b'0'..=b'9' => Ok(byte - b'0'),
        b'a'..=b'f' => Ok(byte - b'a' + 10),
        b'A'..=b'F' => Ok(byte - b'A' + 10),
        _ => Err(KeyStoreError::KekMalformed {
            reason: "expected 64 hex digits (256 bits)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_bare_and_versioned_text() {
        assert_eq!(Kek::parse(HEX).expect("bare").version(), 1);
        assert_eq!(
            Kek::parse(&format!("7:{HEX}\n"))
                .expect("versioned")
                .version(),
            7
        );
        assert!(Kek::parse("1:abc").is_err());
        assert!(Kek::parse(&HEX.replace('0', "g")).is_err());
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let kek = Kek::parse(HEX).expect("kek");
        assert!(!format!("{kek:?}").contains("0a0b"));
        let error = Kek::parse(&format!("x:{HEX}")).expect_err("bad version");
        assert!(!error.to_string().contains("0a0b"));
    }

    #[test]
    fn generated_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/kek");
        let source = KekSource::File(path.clone());
        assert!(Kek::load(&source, false).expect("load").is_none());
        let created = Kek::load(&source, true).expect("create").expect("kek");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reloaded = Kek::load(&source, false).expect("reload").expect("kek");
        let key = EntityKey::random().expect("rng");
        let wrapped = created.wrap(&key, b"aad").expect("wrap");
        let unwrapped = reloaded.unwrap_key(&wrapped, b"aad").expect("unwrap");
        assert_eq!(unwrapped.expose(), key.expose());
        assert!(reloaded.unwrap_key(&wrapped, b"other").is_none());
    }
}
