//! What a session is told before it starts.

use crate::auth::{Credentials, Mechanism};
use crate::command::EhloName;
use crate::reply::ReplyLimits;

/// When the session uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsPolicy {
    /// TLS from the first byte (port 465, RFC 8314): the session asks for the
    /// handshake before it reads the greeting.
    Implicit,
    /// STARTTLS must be advertised and answered `220`; otherwise the session
    /// fails before any AUTH or MAIL is written and ends with QUIT (RFC 3207).
    #[default]
    Required,
    /// STARTTLS when advertised; plaintext otherwise (the credential guard
    /// still applies).
    Opportunistic,
    /// Never TLS.
    Disabled,
}

/// The configuration of one [`ClientSession`](crate::ClientSession).
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) server_name: String,
    pub(crate) ehlo_name: EhloName,
    pub(crate) tls: TlsPolicy,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) mechanism: Option<Mechanism>,
    pub(crate) allow_insecure_auth: bool,
    pub(crate) reply_limits: ReplyLimits,
    pub(crate) transcript: bool,
    pub(crate) window: usize,
}

/// The default [`Config::window`]: how many transactions may be in flight
/// at once when the server offers PIPELINING and CHUNKING.
pub const DEFAULT_WINDOW: usize = 16;

impl Config {
    /// A configuration for the server known by `server_name`: the name TLS
    /// must be verified for and that the credential guard checks. Defaults:
    /// [`TlsPolicy::Required`], EHLO name `localhost`, no credentials.
    pub fn new(server_name: impl Into<String>) -> Config {
        Config {
            server_name: server_name.into(),
            ehlo_name: EhloName::default(),
            tls: TlsPolicy::default(),
            credentials: None,
            mechanism: None,
            allow_insecure_auth: false,
            reply_limits: ReplyLimits::default(),
            transcript: false,
            window: DEFAULT_WINDOW,
        }
    }

    /// Sets how many transactions may be in flight at once when the server
    /// offers PIPELINING and CHUNKING and each message goes as one
    /// `BDAT n LAST` (its exact size known): their commands and bodies need
    /// no intermediate reply, so a batch keeps this many whole messages
    /// outstanding (RFC 2920 §3.1, RFC 3030 §4) instead of waiting a round
    /// trip for each. Default [`DEFAULT_WINDOW`] (16); at least 1 (one
    /// transaction at a time). Without CHUNKING a message's body waits for
    /// its `354`, so at most two are in flight whatever this says.
    pub fn window(mut self, transactions: usize) -> Config {
        self.window = transactions.max(1);
        self
    }

    /// Sets the TLS policy.
    pub fn tls(mut self, policy: TlsPolicy) -> Config {
        self.tls = policy;
        self
    }

    /// Sets the name sent with EHLO/HELO.
    pub fn ehlo_name(mut self, name: EhloName) -> Config {
        self.ehlo_name = name;
        self
    }

    /// Authenticates with these credentials after EHLO (and STARTTLS).
    pub fn credentials(mut self, credentials: Credentials) -> Config {
        self.credentials = Some(credentials);
        self
    }

    /// Uses this mechanism instead of choosing one (PLAIN, else LOGIN; XOAUTH2,
    /// else OAUTHBEARER for tokens).
    pub fn mechanism(mut self, mechanism: Mechanism) -> Config {
        self.mechanism = Some(mechanism);
        self
    }

    /// Allows credentials over a connection that is neither TLS nor to a
    /// loopback name. Off by default; turning it on lets anyone on the path
    /// read the password.
    pub fn allow_insecure_auth(mut self, allow: bool) -> Config {
        self.allow_insecure_auth = allow;
        self
    }

    /// Sets the bounds on reply lines.
    pub fn reply_limits(mut self, limits: ReplyLimits) -> Config {
        self.reply_limits = limits;
        self
    }

    /// Records the dialogue for [`ClientSession::take_transcript`](crate::ClientSession::take_transcript).
    pub fn transcript(mut self, on: bool) -> Config {
        self.transcript = on;
        self
    }

    /// The configured server name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Whether credentials may go over plaintext to a remote name.
    pub fn insecure_auth_allowed(&self) -> bool {
        self.allow_insecure_auth
    }

    /// The TLS policy.
    pub fn tls_policy(&self) -> TlsPolicy {
        self.tls
    }
}

/// Whether `name` is a loopback name for the credential guard: `localhost`,
/// an address in `127.0.0.0/8`, or `::1` (bracketed or not). A trailing dot
/// and letter case are ignored.
pub(crate) fn is_loopback_name(name: &str) -> bool {
    let name = normalize_name(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<core::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the name TLS verified is the configured server name: compared
/// case-insensitively without a trailing dot or IPv6 brackets, and as
/// addresses when both are IP addresses.
pub(crate) fn same_server_name(configured: &str, verified: &str) -> bool {
    let (a, b) = (normalize_name(configured), normalize_name(verified));
    match (
        a.parse::<core::net::IpAddr>(),
        b.parse::<core::net::IpAddr>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// Whether `name` can be checked against a TLS certificate: an IP address
/// (IPv6 with or without brackets) or a DNS name of letters, digits and `-`
/// in labels of 1 to 63 octets, 253 octets at most, an optional trailing dot.
pub(crate) fn is_valid_server_name(name: &str) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if bare.parse::<core::net::IpAddr>().is_ok() {
        return true;
    }
    let dns = name.strip_suffix('.').unwrap_or(name);
    !dns.is_empty()
        && dns.len() <= 253
        && dns.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn normalize_name(name: &str) -> &str {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_report_what_was_set() {
        let config = Config::new("mail.example.com");
        assert_eq!(config.server_name(), "mail.example.com");
        assert_eq!(config.tls_policy(), TlsPolicy::Required);
        assert!(!config.insecure_auth_allowed());
        for policy in [
            TlsPolicy::Implicit,
            TlsPolicy::Opportunistic,
            TlsPolicy::Disabled,
        ] {
            assert_eq!(config.clone().tls(policy).tls_policy(), policy);
        }
        assert!(config.allow_insecure_auth(true).insecure_auth_allowed());
    }

    #[test]
    fn loopback_names() {
        for yes in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_name(yes), "{yes}");
        }
        for no in [
            "smtp.office365.com",
            "localhost.example.com",
            "mylocalhost",
            "128.0.0.1",
            "10.0.0.1",
            "::2",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_name(no), "{no}");
        }
    }

    #[test]
    fn server_names() {
        for ok in [
            "smtp.office365.com",
            "localhost",
            "a-b.example.",
            "127.0.0.1",
            "::1",
            "[::1]",
            "xn--bcher-kva.example",
        ] {
            assert!(is_valid_server_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a_b",
            "bad..name",
            "-a.b",
            "a b",
            "a\r\n",
            "[a.b]",
            ".",
            "a/b",
        ] {
            assert!(!is_valid_server_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn server_name_matching() {
        assert!(same_server_name(
            "smtp.office365.com",
            "SMTP.Office365.com."
        ));
        assert!(same_server_name("[::1]", "::1"));
        assert!(same_server_name("::1", "0:0:0:0:0:0:0:1"));
        assert!(!same_server_name("smtp.office365.com", "evil.example"));
        assert!(!same_server_name("127.0.0.1", "localhost"));
    }
}
