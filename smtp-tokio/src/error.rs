//! The adapter's error type: the session's errors plus what I/O adds.

use smtp_proto::Stage;
use std::io;

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

    /// The host name could not be resolved to an address.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name that was looked up.
        host: String,
        /// Why the lookup failed.
        #[source]
        source: io::Error,
    },

    /// No TCP connection could be made within the connect timeout.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port`, or the address dialled.
        target: String,
        /// The last attempt's error (`TimedOut` when the connect timeout ran out).
        #[source]
        source: io::Error,
    },

    /// Reading from or writing to the connection failed, or the message body
    /// reader passed to `send_reader` failed. The connection is unusable.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),

    /// The TLS handshake failed: a certificate that does not verify for the
    /// server name, a protocol error, or the connection dropping mid-handshake.
    /// [`Error::tls`] gives the rustls error when there is one.
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),

    /// A TLS client configuration could not be built (no trust anchors, no
    /// crypto provider, an unreadable PEM file).
    #[error("TLS configuration: {0}")]
    TlsConfig(String),

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
    /// Whether trying again later (on a new connection) may succeed: transient
    /// SMTP errors (`4yz`, `421`, a dropped connection), timeouts, network
    /// errors, and a TLS handshake interrupted by the network.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Smtp(err) => err.is_transient(),
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::Io(_)
            | Error::Timeout { .. } => true,
            Error::Tls(err) => rustls_error(err).is_none(),
            Error::TlsConfig(_) | Error::Poisoned => false,
        }
    }

    /// The SMTP session's error, if that is what this is.
    pub fn smtp(&self) -> Option<&smtp_proto::Error> {
        match self {
            Error::Smtp(err) => Some(err),
            _ => None,
        }
    }

    /// The rustls error behind a failed TLS handshake, if there is one.
    pub fn tls(&self) -> Option<&rustls::Error> {
        match self {
            Error::Tls(err) => rustls_error(err),
            _ => None,
        }
    }

    /// Whether the connection was refused for the caller's safety: the
    /// session's security errors ([`smtp_proto::Error::is_security`]: TLS
    /// required but missing, injected plaintext, credentials in the clear, the
    /// wrong TLS name) and TLS handshakes rustls refused (a certificate that
    /// does not verify, a protocol violation).
    pub fn is_security(&self) -> bool {
        match self {
            Error::Smtp(err) => err.is_security(),
            Error::Tls(err) => rustls_error(err).is_some(),
            _ => false,
        }
    }

    /// Whether the connection is in an unknown state after this error, so the
    /// client must not be used again.
    pub(crate) fn breaks_connection(&self) -> bool {
        !matches!(self, Error::Smtp(_))
    }
}

fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}
