//! What a [`Client`](crate::Client) is told besides the session configuration.

use smtp_proto::{Timeouts, TranscriptLine};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A callback that receives every transcript line, secrets already redacted
/// by the core.
pub type TranscriptHook = Arc<dyn Fn(&TranscriptLine) + Send + Sync>;

/// Timeouts, TLS configuration and the transcript hook of a connection.
///
/// Build it with [`Options::default`] and the setters; the fields are public
/// for reading and adjusting.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long each TCP connection attempt may take. Default 60 s.
    pub connect_timeout: Duration,
    /// How long to wait at each stage of the dialogue (the TLS handshake
    /// included). A reply must arrive whole within its stage's timeout; a
    /// write must make progress within it. Default: RFC 5321 §4.5.3.2.
    pub timeouts: Timeouts,
    /// The rustls configuration for implicit TLS and STARTTLS. `None` builds
    /// one with [`tls::client_config`](crate::tls::client_config)`(&TlsRoots::WebPki)`
    /// when the session's policy may use TLS.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Called with each line of the dialogue. When set (or when `tracing` is
    /// enabled at DEBUG), the session records a transcript.
    pub transcript: Option<TranscriptHook>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect_timeout: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            #[cfg(feature = "rustls")]
            tls: None,
            transcript: None,
        }
    }
}

impl Options {
    /// The defaults: 60 s to connect, RFC 5321 timeouts, bundled Mozilla
    /// roots, no transcript hook.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets the timeout of each TCP connection attempt.
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-stage timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Options {
        self.timeouts = timeouts;
        self
    }

    /// Uses this rustls configuration (custom roots, client certificates,
    /// another provider) instead of the default.
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Options {
        self.tls = Some(config);
        self
    }

    /// Calls `hook` with each transcript line.
    pub fn transcript(mut self, hook: impl Fn(&TranscriptLine) + Send + Sync + 'static) -> Options {
        self.transcript = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Options");
        s.field("connect_timeout", &self.connect_timeout)
            .field("timeouts", &self.timeouts);
        #[cfg(feature = "rustls")]
        s.field("tls", &self.tls.as_ref().map(|_| "custom"));
        s.field("transcript", &self.transcript.as_ref().map(|_| "hook"))
            .finish()
    }
}
