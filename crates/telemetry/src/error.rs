use std::net::SocketAddr;

/// Explains why telemetry could not be set up or served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metric could not be created or registered (a programming error: a
    /// name or label set that Prometheus rejects, or a name registered twice).
    #[error("cannot register the metrics")]
    Registry(#[from] prometheus::Error),
    /// The admin address could not be bound.
    #[error(
        "cannot bind the admin server to {addr}; is another process using it? set admin.listen to a free address"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The admin server's socket, runtime or thread could not be set up.
    #[error("cannot start the admin server on {addr}: {action} failed")]
    Start {
        /// The bound address.
        addr: SocketAddr,
        /// What was being done.
        action: &'static str,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The admin server stopped with an error.
    #[error("the admin server on {addr} failed")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// The error it stopped with.
        source: std::io::Error,
    },
    /// The admin server's thread panicked.
    #[error("the admin server thread on {addr} panicked")]
    Panicked {
        /// The bound address.
        addr: SocketAddr,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_can_travel_between_threads_and_into_anyhow() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<Error>();
    }

    #[test]
    fn messages_are_lowercase_without_a_trailing_period() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9464));
        let io = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        for error in [
            Error::Bind { addr, source: io() },
            Error::Start {
                addr,
                action: "spawning its thread",
                source: io(),
            },
            Error::Serve { addr, source: io() },
            Error::Panicked { addr },
        ] {
            let message = error.to_string();
            assert!(message.starts_with(char::is_lowercase), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}
