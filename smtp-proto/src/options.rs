//! What a connection is told besides the session's [`Config`]: how long
//! each step may take, the TLS configuration, where the transcript goes.
//! The session applies the timeouts ([`ClientSession::with_options`]); the
//! adapters (`smtp-blocking`, `smtp-tokio`) take the rest.
//!
//! [`Config`]: crate::Config
//! [`ClientSession::with_options`]: crate::ClientSession::with_options

use crate::stage::Timeouts;
use crate::transcript::{TranscriptHook, TranscriptLine};
use core::fmt;
use core::time::Duration;
use std::sync::Arc;

/// The default [`Options::connect_timeout`]: 60 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a connection needs beyond the session's [`Config`](crate::Config):
/// timeouts, the TLS configuration and the transcript hook.
///
/// Build it with [`Options::default`] and the setters; the fields are public
/// for reading and adjusting.
///
/// ```
/// use smtp_proto::{Options, Timeouts};
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
    /// How long connecting may take: resolving the host and opening the TCP
    /// connection, every address tried together, within the time limit
    /// ([`ClientSession::start_connect`](crate::ClientSession::start_connect)).
    /// Default [`DEFAULT_CONNECT_TIMEOUT`] (60 s).
    pub connect_timeout: Duration,
    /// How long to wait at each stage of the dialogue (for each read, write
    /// and the TLS handshake). A reply must arrive whole within its stage's
    /// timeout; a write must make progress within it. Default: RFC 5321
    /// §4.5.3.2.
    pub timeouts: Timeouts,
    /// The most, in all, that setting up the session (connecting, the
    /// greeting, EHLO, TLS and AUTH) may take, and then each message (from
    /// when sending it begins until its result is known; in a batch, from
    /// the previous message's result). The per-stage timeouts bound each
    /// wait (RFC 5321 §4.5.3.2 times each write of a data block, so a server
    /// that takes every block just in time keeps a large body going for
    /// hours); this bounds the whole. Past it the session fails with
    /// [`Error::TimeLimit`](crate::Error::TimeLimit). Default `None`: no
    /// limit.
    pub time_limit: Option<Duration>,
    /// The rustls configuration for implicit TLS and STARTTLS. `None` uses
    /// [`tls::default_config`](crate::tls::default_config) (the bundled
    /// webpki roots, built once per process) when the session's policy may
    /// use TLS.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Receives the dialogue line by line (secrets redacted), as the session
    /// records it. The adapters also log every line with `tracing::debug!`
    /// when that level is enabled.
    pub transcript: Option<TranscriptHook>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeouts: Timeouts::default(),
            time_limit: None,
            #[cfg(feature = "rustls")]
            tls: None,
            transcript: None,
        }
    }
}

impl Options {
    /// The defaults: 60 s to connect, RFC 5321 timeouts, bundled Mozilla
    /// (webpki) roots, no transcript hook.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets [`Options::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`Options::timeouts`], the per-stage timeouts.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Options {
        self.timeouts = timeouts;
        self
    }

    /// Sets [`Options::time_limit`]: the most the session's set-up, and
    /// then each message, may take in all.
    pub fn time_limit(mut self, limit: Duration) -> Options {
        self.time_limit = Some(limit);
        self
    }

    /// Sets [`Options::tls`]: this rustls configuration (custom roots,
    /// client certificates, another provider) instead of the default.
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Options {
        self.tls = Some(config);
        self
    }

    /// Sets [`Options::transcript`]: calls `hook` with each transcript line.
    pub fn transcript(mut self, hook: impl Fn(&TranscriptLine) + Send + Sync + 'static) -> Options {
        self.transcript = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Options");
        s.field("connect_timeout", &self.connect_timeout)
            .field("timeouts", &self.timeouts)
            .field("time_limit", &self.time_limit);
        #[cfg(feature = "rustls")]
        s.field("tls", &self.tls.as_ref().map(|_| "custom"));
        s.field("transcript", &self.transcript.as_ref().map(|_| "hook"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_set_and_debug_names_no_hook_or_secret() {
        let options = Options::new()
            .connect_timeout(Duration::from_secs(3))
            .timeouts(Timeouts::uniform(Duration::from_secs(7)))
            .time_limit(Duration::from_secs(9))
            .transcript(|_| {});
        assert_eq!(options.connect_timeout, Duration::from_secs(3));
        assert_eq!(options.time_limit, Some(Duration::from_secs(9)));
        assert!(options.transcript.is_some());
        let shown = format!("{options:?}");
        assert!(shown.starts_with("Options {"), "{shown}");
        assert!(shown.contains("transcript: Some(\"hook\")"), "{shown}");
        assert!(shown.contains("time_limit: Some(9s)"), "{shown}");
        assert!(format!("{:?}", Options::new()).contains("transcript: None"));
    }

    #[cfg(any(feature = "ring", feature = "aws-lc-rs"))]
    #[test]
    fn a_tls_configuration_is_kept_and_not_shown() {
        let config = crate::tls::client_config(&crate::tls::TlsRoots::WebPki);
        let Ok(config) = config else {
            panic!("the webpki roots build")
        };
        let options = Options::new().tls(Arc::clone(&config));
        assert!(options
            .tls
            .as_ref()
            .is_some_and(|tls| Arc::ptr_eq(tls, &config)));
        assert!(format!("{options:?}").contains("tls: Some(\"custom\")"));
    }
}
