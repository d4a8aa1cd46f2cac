//! The adapter's error type: the session's errors plus what I/O adds.

use smtp_proto::Stage;
use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong talking to a server.
///
/// [`Error::Smtp`] carries the session's decisions (refusals, the TLS and
/// credential guards); the other variants are what the network adds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SMTP session failed or refused: see [`smtp_proto::Error`].
    #[error(transparent)]
    Smtp(#[from] smtp_proto::Error),

    /// The host name could not be resolved, or resolved to no address
    /// (`TimedOut` after [`Options::connect_timeout`](crate::Options::connect_timeout)).
    #[error("could not resolve {host}:{port}: {source}")]
    Resolve {
        /// The host name as given.
        host: String,
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// No TCP connection could be made. With several addresses, this is the
    /// last one tried.
    #[error("could not connect to {address}: {source}")]
    Connect {
        /// The address tried last.
        address: SocketAddr,
        /// Why (`TimedOut` after [`Options::connect_timeout`](crate::Options::connect_timeout)).
        #[source]
        source: io::Error,
    },

    /// Reading from or writing to the connection failed (during the TLS
    /// handshake included, when rustls itself did not object). The client is
    /// poisoned.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),

    /// Reading the message body from the caller's reader failed. The message
    /// was not ended, so the server discards it when the connection closes;
    /// the client is poisoned.
    #[error("reading the message body failed: {0}")]
    BodyRead(#[source] io::Error),

    /// rustls refused the TLS handshake or the TLS layer failed: an untrusted
    /// or mismatching certificate, an alert, a corrupt record. The client is
    /// poisoned.
    #[error("TLS error: {0}")]
    Tls(#[source] rustls::Error),

    /// A TLS client configuration could not be built (no trust anchors, no
    /// crypto provider, invalid PEM). Nothing was sent.
    #[error("TLS configuration: {reason}")]
    TlsConfig {
        /// What was wrong.
        reason: String,
    },

    /// The server did not answer (or accept our bytes) within the timeout for
    /// this stage. The connection is unusable.
    #[error("timed out during {stage}")]
    Timeout {
        /// The step that timed out.
        stage: Stage,
    },

    /// An earlier operation on this client was cancelled part-way (its future
    /// was dropped) or failed on I/O, so the connection's state is unknown;
    /// the client refuses further use. Drop it and connect again.
    #[error("the connection was left in an unknown state by a cancelled or failed operation")]
    Poisoned,
}

impl Error {
    /// Whether trying again later (on a new connection) may succeed: a
    /// transient SMTP error ([`smtp_proto::Error::is_transient`]), a failed
    /// resolution or connection, an I/O error or a timeout.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Smtp(err) => err.is_transient(),
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::Io(_)
            | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The SMTP session's error, if that is what this is.
    pub fn smtp(&self) -> Option<&smtp_proto::Error> {
        match self {
            Error::Smtp(err) => Some(err),
            _ => None,
        }
    }

    /// Whether the connection was refused for the caller's safety: the
    /// session's security errors ([`smtp_proto::Error::is_security`]: TLS
    /// required but missing, injected plaintext, credentials in the clear, the
    /// wrong TLS name) and TLS failures (a certificate that does not verify,
    /// a protocol violation).
    pub fn is_security(&self) -> bool {
        match self {
            Error::Smtp(err) => err.is_security(),
            Error::Tls(_) => true,
            _ => false,
        }
    }

    /// Whether the operation timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// An I/O error from the TLS layer: the rustls error inside it when there
    /// is one, else an I/O error.
    pub(crate) fn from_tls_io(err: io::Error) -> Error {
        let is_rustls = err
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>());
        if is_rustls {
            if let Some(inner) = err.into_inner() {
                if let Ok(tls) = inner.downcast::<rustls::Error>() {
                    return Error::Tls(*tls);
                }
            }
            return Error::Io(io::Error::other("TLS error"));
        }
        Error::Io(err)
    }

    pub(crate) fn tls_config(reason: impl Into<String>) -> Error {
        Error::TlsConfig {
            reason: reason.into(),
        }
    }

    /// Whether the connection is in an unknown state after this error, so the
    /// client must not be used again.
    pub(crate) fn breaks_connection(&self) -> bool {
        !matches!(self, Error::Smtp(_))
    }
}
