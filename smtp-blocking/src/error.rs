//! The crate's error type: the core's verdicts, and what the network adds.

use smtp_proto::{BatchError, Outcome};
use std::io;
use std::net::SocketAddr;

/// Everything that can go wrong with a [`Client`](crate::Client).
///
/// [`Error::Smtp`] is the protocol core's verdict (a refusal, a security
/// check — TLS required but missing, injected plaintext, credentials in the
/// clear, the wrong TLS name —, a malformed reply, a dropped connection, a
/// timeout by the clock the client gives it, a TLS configuration that could
/// not be built); the other variants are what the network adds: name
/// resolution, the socket and the TLS layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SMTP session failed or refused to go on; see [`smtp_proto::Error`].
    #[error(transparent)]
    Smtp(#[from] smtp_proto::Error),

    /// The host name could not be resolved, or resolved to no address
    /// (`TimedOut` after
    /// [`Options::connect_timeout`](crate::Options::connect_timeout)).
    #[error("could not resolve {host}:{port}")]
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
    #[error("could not connect to {address}")]
    Connect {
        /// The address tried last.
        address: SocketAddr,
        /// Why (`TimedOut` after [`Options::connect_timeout`](crate::Options::connect_timeout)).
        #[source]
        source: io::Error,
    },

    /// Reading from or writing to the connection failed (during the TLS
    /// handshake included, when rustls itself did not object). The client is
    /// poisoned: later calls return [`Error::Poisoned`].
    #[error("I/O error")]
    Io(#[source] io::Error),

    /// Reading the message body from the caller's reader failed. The
    /// message was not ended (the connection is shut down before the
    /// end-of-data marker), so the server discards it and no partial message
    /// is delivered; the client is poisoned.
    #[error("reading the message body failed")]
    BodyRead(#[source] io::Error),

    /// rustls refused the TLS handshake or the TLS layer failed: an untrusted
    /// or mismatching certificate, an alert, a corrupt record. The client is
    /// poisoned.
    #[cfg(feature = "rustls")]
    #[error("TLS error")]
    Tls(#[source] rustls::Error),

    /// The message's end of data was handed to the connection (at least in
    /// part) and no final reply came: `source` ended the connection first.
    /// The server may have accepted the message: resending it may deliver
    /// it twice (RFC 1047), so this is not [transient](Error::is_transient).
    /// Reconcile, or resend only where a duplicate is harmless.
    #[error("delivery unknown: the server may have accepted the message")]
    DeliveryUnknown {
        /// What ended the connection.
        #[source]
        source: Box<Error>,
    },

    /// The connection failed before this message's turn (a batch's message
    /// behind the one that failed): nothing of its end of data was written,
    /// so it was not delivered and may be sent again.
    #[error("not sent: the connection failed before this message")]
    NotSent,

    /// The [`pool::Connector`](crate::pool::Connector)'s credential provider
    /// failed (a token endpoint down, say): no connection was opened. The
    /// provider's error is the source.
    #[error("the credential provider failed")]
    Credentials(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// Every connection of a [`pool::Pool`](crate::pool::Pool) stayed in use
    /// for [`PoolOptions::wait_timeout`](crate::pool::PoolOptions::wait_timeout):
    /// the message was not sent.
    #[error("no pooled connection became free within {waited:?}")]
    PoolTimeout {
        /// How long the send waited.
        waited: std::time::Duration,
    },

    /// An earlier I/O error or timeout left the connection unusable, so its
    /// state is unknown; the client refuses further use. Drop it and connect
    /// again.
    #[error("the connection is unusable after an earlier I/O error or timeout")]
    Poisoned,
}

impl Error {
    /// The protocol core's error, if this is one.
    pub fn smtp(&self) -> Option<&smtp_proto::Error> {
        match self {
            Error::Smtp(err) => Some(err),
            _ => None,
        }
    }

    /// Whether trying again later (on a new connection) may succeed: a
    /// transient SMTP error ([`smtp_proto::Error::is_transient`], a timeout
    /// included), a failed resolution or connection, an I/O error, a message
    /// not sent, a credential provider that failed, a pool that stayed busy. Never [`Error::DeliveryUnknown`]: that message may have
    /// been delivered.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Smtp(err) => err.is_transient(),
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::Io(_)
            | Error::NotSent
            | Error::Credentials(_)
            | Error::PoolTimeout { .. } => true,
            _ => false,
        }
    }

    /// What this error, as a message's result, says became of the message:
    /// [`Outcome::Unknown`] for [`Error::DeliveryUnknown`],
    /// [`Outcome::Refused`] for the server's refusal of the transaction
    /// ([`smtp_proto::Error::outcome`]), else [`Outcome::NotSent`]. The
    /// rule for retrying: resend only what [`Outcome::may_resend`] allows.
    pub fn outcome(&self) -> Outcome {
        match self {
            Error::DeliveryUnknown { .. } => Outcome::Unknown,
            Error::Smtp(err) => err.outcome(),
            _ => Outcome::NotSent,
        }
    }

    /// Whether the server may have accepted the message although no reply
    /// said so ([`Error::DeliveryUnknown`]).
    pub fn is_delivery_unknown(&self) -> bool {
        matches!(self, Error::DeliveryUnknown { .. })
    }

    /// Whether the client refused to go on for the caller's safety: a TLS
    /// failure (a certificate that does not verify, a protocol violation) or
    /// a security error of the core ([`smtp_proto::Error::is_security`]: TLS
    /// required but missing, injected plaintext, credentials in the clear,
    /// the wrong TLS name).
    pub fn is_security(&self) -> bool {
        match self {
            Error::Smtp(err) => err.is_security(),
            #[cfg(feature = "rustls")]
            Error::Tls(_) => true,
            _ => false,
        }
    }

    /// Whether the operation timed out: a stage's timeout or the time limit
    /// ([`smtp_proto::Error::Timeout`], [`smtp_proto::Error::TimeLimit`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::DeliveryUnknown { source } => source.is_timeout(),
            Error::Smtp(err) => err.is_timeout(),
            _ => false,
        }
    }

    /// An I/O error from the connection (plain or TLS): [`Error::Tls`] with
    /// the rustls error inside it when there is one, else [`Error::Io`].
    pub(crate) fn from_io(err: io::Error) -> Error {
        #[cfg(feature = "rustls")]
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            if let Some(inner) = err.into_inner() {
                if let Ok(tls) = inner.downcast::<rustls::Error>() {
                    return Error::Tls(*tls);
                }
            }
            return Error::Io(io::Error::other("TLS error"));
        }
        Error::Io(err)
    }
}

impl BatchError for Error {
    fn not_sent() -> Error {
        Error::NotSent
    }

    fn delivery_unknown(cause: Error) -> Error {
        Error::DeliveryUnknown {
            source: Box::new(cause),
        }
    }
}

/// What [`Address::new`](smtp_proto::Address::new) refuses: `?` makes it
/// [`Error::Smtp`] holding `smtp_proto::Error::InvalidInput`, as before.
impl From<smtp_proto::InvalidInput> for Error {
    fn from(err: smtp_proto::InvalidInput) -> Error {
        Error::Smtp(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::Stage;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Duration;

    #[test]
    fn classification() {
        let timeout = Error::from(smtp_proto::Error::Timeout {
            stage: Stage::DataEnd,
        });
        assert!(timeout.is_transient() && timeout.is_timeout() && !timeout.is_security());
        assert_eq!(timeout.to_string(), "timed out during end of data");
        let unknown = Error::delivery_unknown(timeout);
        assert!(unknown.is_timeout() && !unknown.is_transient());
        assert_eq!(unknown.outcome(), Outcome::Unknown);
        let limit = Error::from(smtp_proto::Error::TimeLimit {
            stage: Stage::Data,
            limit: Duration::from_secs(3),
        });
        assert!(limit.is_transient() && limit.is_timeout() && !limit.is_security());
        assert_eq!(
            limit.to_string(),
            "took longer than the time limit of 3s (during DATA)"
        );

        let closed = Error::from(smtp_proto::Error::ConnectionClosed {
            stage: Stage::Greeting,
        });
        assert!(closed.is_transient() && !closed.is_security());
        assert!(matches!(
            closed.smtp(),
            Some(smtp_proto::Error::ConnectionClosed { .. })
        ));

        let injection = Error::from(smtp_proto::Error::StartTlsInjection);
        assert!(injection.is_security() && !injection.is_transient());
        let insecure = Error::from(smtp_proto::Error::InsecureAuth);
        assert!(insecure.is_security());

        let connect = Error::Connect {
            address: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 25)),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert!(connect.is_transient() && connect.smtp().is_none());
        assert!(connect.to_string().contains("127.0.0.1:25"));

        assert!(Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)).is_transient());
        assert!(!Error::BodyRead(io::Error::from(io::ErrorKind::Other)).is_transient());
        assert!(!Error::Poisoned.is_transient() && !Error::Poisoned.is_security());
        let config = Error::from(smtp_proto::Error::TlsConfig {
            reason: "x".to_owned(),
        });
        assert!(!config.is_transient() && !config.is_timeout());
        assert!(Error::not_sent().is_transient() && !Error::not_sent().is_timeout());
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn tls_errors_are_security_errors() {
        let err = Error::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName,
        ));
        assert!(err.is_security() && !err.is_transient());
    }
}
