//! How a client connects: timeouts, TLS configuration, transcript hook.

use smtp_proto::{Timeouts, TranscriptLine};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A callback that receives every line of the dialogue, secrets already
/// redacted by the session.
pub type TranscriptHook = Arc<dyn Fn(&TranscriptLine) + Send + Sync>;

/// The default [`Options::connect_timeout`]: 60 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the adapter needs beyond the session's [`Config`](smtp_proto::Config).
///
/// ```
/// use smtp_tokio::Options;
/// use smtp_proto::Timeouts;
/// use std::time::Duration;
///
/// let options = Options::default()
///     .connect_timeout(Duration::from_secs(10))
///     .timeouts(Timeouts::uniform(Duration::from_secs(30)))
///     .transcript(|line| eprintln!("{line}"));
/// # let _ = options;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// How long resolving the host and opening the TCP connection may take,
    /// all addresses together. Default 60 seconds.
    pub connect_timeout: Duration,
    /// How long to wait at each stage of the dialogue (for each read, write
    /// and the TLS handshake). Default: RFC 5321 §4.5.3.2.
    pub timeouts: Timeouts,
    /// The rustls configuration for TLS; `None` uses the bundled webpki roots
    /// ([`tls::client_config`](crate::tls::client_config) with
    /// [`TlsRoots::WebPki`](crate::tls::TlsRoots::WebPki)).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Receives the dialogue line by line (secrets redacted). Independently,
    /// every line is logged with `tracing::debug!` under the target
    /// `smtp_tokio::transcript` when that level is enabled.
    pub transcript: Option<TranscriptHook>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeouts: Timeouts::default(),
            tls: None,
            transcript: None,
        }
    }
}

impl Options {
    /// The defaults: 60 s to connect, RFC 5321 timeouts, webpki roots, no hook.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets [`Options::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`Options::timeouts`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Options {
        self.timeouts = timeouts;
        self
    }

    /// Sets [`Options::tls`], the rustls configuration.
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Options {
        self.tls = Some(config);
        self
    }

    /// Sets [`Options::transcript`], the transcript hook.
    pub fn transcript(mut self, hook: impl Fn(&TranscriptLine) + Send + Sync + 'static) -> Options {
        self.transcript = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeouts", &self.timeouts)
            .field("tls", &self.tls.as_ref().map(|_| "custom"))
            .field("transcript", &self.transcript.as_ref().map(|_| "hook"))
            .finish()
    }
}
