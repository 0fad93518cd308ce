//! Turns database failures into key-store errors that never carry a value.

use delink_keystore::KeyStoreError;

/// Builds the error of a failed database call while doing `action`.
///
/// The detail is the SQLSTATE code or a fixed phrase, never the server's
/// message: PostgreSQL messages may quote a row (`Key (tag)=(\x…) already
/// exists`), and a tag or a wrapped key must not reach a log.
pub(crate) fn backend(action: &'static str) -> impl FnOnce(postgres::Error) -> KeyStoreError {
    move |error| KeyStoreError::Backend {
        action,
        detail: error_class(&error),
    }
}

/// Builds a backend error from a fixed phrase (a broken invariant, not a driver error).
pub(crate) fn broken(action: &'static str, detail: &'static str) -> KeyStoreError {
    KeyStoreError::Backend {
        action,
        detail: detail.to_owned(),
    }
}

fn error_class(error: &postgres::Error) -> String {
    if let Some(code) = error.code() {
        return format!("SQLSTATE {}", code.code());
    }
    if error.is_closed() {
        return "connection closed".to_owned();
    }
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io_error) = inner.downcast_ref::<std::io::Error>() {
            return format!("connection failed: {}", io_error.kind());
        }
        source = inner.source();
    }
    "client error without a server code".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_named_by_its_kind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let url = format!("postgres://nobody:pw-secret@127.0.0.1:{port}/none");
        let error = postgres::Client::connect(&url, postgres::NoTls)
            .map(|_| ())
            .expect_err("nothing listens");
        let error = backend("connecting")(error);
        let shown = error.to_string();
        assert!(shown.contains("connection refused"), "{shown}");
        assert!(!shown.contains("pw-secret"), "{shown}");
    }
}
