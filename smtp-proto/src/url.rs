//! One-line configuration from a URL, as curl and lettre take it:
//! `smtp://[user[:secret]@]host[:port][?tls=…&auth=…&helo=…]` (STARTTLS
//! required, port 587) and `smtps://…` (implicit TLS, port 465).
//!
//! The user name and the secret are percent-decoded; the secret is a
//! password, or a token when `auth` is `xoauth2` or `oauthbearer`. Errors
//! name the part that is wrong and never show the secret.

use crate::auth::{Credentials, Mechanism};
use crate::command::EhloName;
use crate::config::{is_valid_server_name, Config, TlsPolicy};
use crate::error::{Error, InputField};
use core::fmt;

/// A parsed `smtp://` or `smtps://` URL.
///
/// ```
/// use smtp_proto::{SmtpUrl, TlsPolicy};
///
/// let url = SmtpUrl::parse("smtp://alice%40example.com@smtp.office365.com?auth=login")?;
/// assert_eq!((url.host(), url.port()), ("smtp.office365.com", 587));
/// assert_eq!(url.tls(), TlsPolicy::Required);
/// assert_eq!(url.user(), Some("alice@example.com"));
/// let config = url.config(); // the server name, TLS policy, mechanism, EHLO name
/// # let _ = config;
/// # Ok::<(), smtp_proto::Error>(())
/// ```
#[derive(Clone)]
pub struct SmtpUrl {
    host: String,
    port: u16,
    tls: TlsPolicy,
    user: Option<String>,
    secret: Option<String>,
    mechanism: Option<Mechanism>,
    helo: Option<EhloName>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("mechanism", &self.mechanism)
            .field("helo", &self.helo)
            .finish()
    }
}

fn bad(part: &str, reason: impl fmt::Display) -> Error {
    Error::invalid(InputField::Url, format!("{part}: {reason}"))
}

impl SmtpUrl {
    /// Parses `url`. The scheme decides the TLS policy and the default
    /// port; `?tls=required|opportunistic|none` changes the policy of
    /// `smtp://` (not of `smtps://`, which is TLS from the first byte);
    /// `?auth=plain|login|xoauth2|oauthbearer` fixes the mechanism;
    /// `?helo=NAME` the EHLO name. Anything else is an
    /// [`Error::InvalidInput`] naming the part (the scheme, the user, the
    /// host, the port, a parameter), never echoing the secret.
    pub fn parse(url: &str) -> Result<SmtpUrl, Error> {
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad(
                "the URL",
                "spaces and control characters are not allowed",
            ));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("the URL", "not scheme://host"))?;
        let (mut tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => (TlsPolicy::Required, 587),
            "smtps" => (TlsPolicy::Implicit, 465),
            _ => return Err(bad("the scheme", "not smtp or smtps")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('#') {
            return Err(bad("the URL", "a path or fragment is not allowed"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, secret) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, secret) = match userinfo.split_once(':') {
                    Some((user, secret)) => (user, Some(secret)),
                    None => (userinfo, None),
                };
                let user = percent_decode(user).ok_or_else(|| bad("the user", "bad %-escape"))?;
                if user.is_empty() {
                    return Err(bad("the user", "empty"));
                }
                // Never echo the secret, not even in its error.
                let secret = secret
                    .map(|s| percent_decode(s).ok_or_else(|| bad("the password", "bad %-escape")))
                    .transpose()?;
                (Some(user), secret)
            }
        };
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => default_port,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port", "not a port number (1 to 65535)"))?,
        };
        if !is_valid_server_name(host) {
            return Err(bad("the host", "not a host name or address"));
        }
        let mut mechanism = None;
        let mut helo = None;
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // Only a plain name is ever shown, and no value: a malformed
            // URL may have carried the secret into the query.
            let part = parameter(key);
            if seen.contains(&key) {
                return Err(bad(&part, "given twice"));
            }
            seen.push(key);
            let value = percent_decode(value).ok_or_else(|| bad(&part, "bad %-escape"))?;
            match key {
                "tls" => {
                    if scheme.eq_ignore_ascii_case("smtps") {
                        return Err(bad(
                            "the parameter \"tls\"",
                            "smtps:// is TLS from the first byte",
                        ));
                    }
                    tls = match value.to_ascii_lowercase().as_str() {
                        "required" => TlsPolicy::Required,
                        "opportunistic" => TlsPolicy::Opportunistic,
                        "none" => TlsPolicy::Disabled,
                        _ => {
                            return Err(bad(
                                "the parameter \"tls\"",
                                "not required, opportunistic or none",
                            ))
                        }
                    }
                }
                "auth" => {
                    mechanism = Some(match value.to_ascii_lowercase().as_str() {
                        "plain" => Mechanism::Plain,
                        "login" => Mechanism::Login,
                        "xoauth2" => Mechanism::XOAuth2,
                        "oauthbearer" => Mechanism::OAuthBearer,
                        _ => {
                            return Err(bad(
                                "the parameter \"auth\"",
                                "not plain, login, xoauth2 or oauthbearer",
                            ))
                        }
                    })
                }
                "helo" => {
                    helo = Some(
                        EhloName::new(value)
                            .map_err(|_| bad("the parameter \"helo\"", "not a valid EHLO name"))?,
                    )
                }
                _ => return Err(bad(&part, "unknown")),
            }
        }
        if mechanism.is_some() && user.is_none() {
            return Err(bad("the parameter \"auth\"", "needs a user"));
        }
        Ok(SmtpUrl {
            host: host.to_owned(),
            port,
            tls,
            user,
            secret,
            mechanism,
            helo,
        })
    }

    /// The host, as given (an IPv6 address in its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: as given, else 587 for `smtp://` and 465 for `smtps://`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS policy: the scheme's, or `?tls=`.
    pub fn tls(&self) -> TlsPolicy {
        self.tls
    }

    /// The user name, percent-decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the URL carries a password or token (after `user:`).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// `?auth=`, if given.
    pub fn mechanism(&self) -> Option<&Mechanism> {
        self.mechanism.as_ref()
    }

    /// `?helo=`, if given.
    pub fn helo(&self) -> Option<&EhloName> {
        self.helo.as_ref()
    }

    /// The credentials the URL carries: the user and its secret, a token
    /// for `auth=xoauth2` or `auth=oauthbearer`, else a password. `None`
    /// without a user or without a secret (supply the secret yourself).
    pub fn credentials(&self) -> Option<Credentials> {
        let (user, secret) = (self.user.as_ref()?, self.secret.as_ref()?);
        Some(match self.mechanism {
            Some(Mechanism::XOAuth2 | Mechanism::OAuthBearer) => {
                Credentials::token(user.clone(), secret.clone())
            }
            _ => Credentials::password(user.clone(), secret.clone()),
        })
    }

    /// The session configuration: the host as the server name (IPv6
    /// brackets included, as [`Config::new`] takes it), the TLS policy, the
    /// mechanism and EHLO name if given, and [`credentials`](Self::credentials)
    /// if the URL carries a secret. Connect to [`host`](Self::host) and
    /// [`port`](Self::port).
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.host.clone()).tls(self.tls);
        if let Some(helo) = &self.helo {
            config = config.ehlo_name(helo.clone());
        }
        if let Some(mechanism) = &self.mechanism {
            config = config.mechanism(mechanism.clone());
        }
        if let Some(credentials) = self.credentials() {
            config = config.credentials(credentials);
        }
        config
    }
}

impl Config {
    /// The configuration a URL describes ([`SmtpUrl::parse`] then
    /// [`SmtpUrl::config`]); the port is [`SmtpUrl::port`].
    pub fn from_url(url: &str) -> Result<Config, Error> {
        Ok(SmtpUrl::parse(url)?.config())
    }
}

/// How an error names the parameter `key`: by name when it is a plain
/// word, else without it.
fn parameter(key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 20
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        format!("the parameter {key:?}")
    } else {
        "a parameter".to_owned()
    }
}

/// `host[:port]`, with an IPv6 literal in brackets.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), Error> {
    if hostport.is_empty() {
        return Err(bad("the host", "empty"));
    }
    if hostport.starts_with('[') {
        let end = hostport
            .find(']')
            .ok_or_else(|| bad("the host", "an IPv6 address without its ]"))?;
        let (host, rest) = hostport.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(bad("the host", "junk after the IPv6 address")),
            },
        };
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not
/// UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn schemes_ports_and_policies() {
        let cases: &[(&str, &str, u16, TlsPolicy)] = &[
            (
                "smtp://mail.example.com",
                "mail.example.com",
                587,
                TlsPolicy::Required,
            ),
            (
                "smtp://mail.example.com:2525/",
                "mail.example.com",
                2525,
                TlsPolicy::Required,
            ),
            (
                "smtps://mail.example.com",
                "mail.example.com",
                465,
                TlsPolicy::Implicit,
            ),
            (
                "SMTPS://mail.example.com:4650",
                "mail.example.com",
                4650,
                TlsPolicy::Implicit,
            ),
            (
                "smtp://mx.example.com:25?tls=opportunistic",
                "mx.example.com",
                25,
                TlsPolicy::Opportunistic,
            ),
            (
                "smtp://localhost:25?tls=none",
                "localhost",
                25,
                TlsPolicy::Disabled,
            ),
            ("smtp://[::1]:2525", "[::1]", 2525, TlsPolicy::Required),
            ("smtp://127.0.0.1", "127.0.0.1", 587, TlsPolicy::Required),
        ];
        for (text, host, port, tls) in cases {
            let url = SmtpUrl::parse(text).unwrap();
            assert_eq!(
                (url.host(), url.port(), url.tls()),
                (*host, *port, *tls),
                "{text}"
            );
            assert!(
                url.user().is_none() && url.credentials().is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn users_secrets_and_parameters() {
        let url = SmtpUrl::parse(
            "smtp://alice%40example.com:p%40ss%3Aword@smtp.office365.com?auth=LOGIN&helo=client.example",
        )
        .unwrap();
        assert_eq!(url.user(), Some("alice@example.com"));
        assert!(url.has_secret());
        assert_eq!(url.mechanism(), Some(&Mechanism::Login));
        assert_eq!(url.helo().map(EhloName::as_str), Some("client.example"));
        let debug = format!("{url:?}");
        assert!(
            !debug.contains("p@ss") && debug.contains("<redacted>"),
            "{debug}"
        );
        assert!(matches!(
            url.credentials(),
            Some(Credentials::Password { .. })
        ));

        let url = SmtpUrl::parse("smtps://me@smtp.gmail.com?auth=xoauth2").unwrap();
        assert!(!url.has_secret() && url.credentials().is_none());
        let url = SmtpUrl::parse("smtps://me:ya29.tok@smtp.gmail.com?auth=xoauth2").unwrap();
        assert!(matches!(url.credentials(), Some(Credentials::Token { .. })));
        let config = Config::from_url("smtps://me:ya29.tok@smtp.gmail.com?auth=xoauth2").unwrap();
        assert_eq!(config.server_name(), "smtp.gmail.com");
        assert_eq!(config.tls_policy(), TlsPolicy::Implicit);
    }

    #[test]
    fn errors_name_the_bad_part_and_never_the_secret() {
        let cases: &[(&str, &str)] = &[
            ("mail.example.com", "the URL"),
            ("http://mail.example.com", "the scheme"),
            ("smtp://", "the host"),
            ("smtp://mail.example.com:0", "the port"),
            ("smtp://mail.example.com:99999", "the port"),
            ("smtp://mail.example.com:x", "the port"),
            ("smtp://bad_host!", "the host"),
            ("smtp://[::1", "the host"),
            ("smtp://mail.example.com/path", "path"),
            ("smtp://mail.example.com?tls=maybe", "\"tls\""),
            ("smtps://mail.example.com?tls=none", "\"tls\""),
            ("smtp://u@mail.example.com?auth=cram-md5", "\"auth\""),
            ("smtp://mail.example.com?auth=login", "needs a user"),
            ("smtp://mail.example.com?helo=bad%0Aname", "\"helo\""),
            ("smtp://mail.example.com?helo=a%0", "\"helo\""),
            ("smtp://mail.example.com?foo=1", "\"foo\""),
            ("smtp://mail.example.com?tls=none&tls=none", "twice"),
            ("smtp://%ZZ@mail.example.com", "the user"),
            ("smtp://:secret-one@mail.example.com", "the user"),
            ("smtp://u:secret%G1@mail.example.com", "the password"),
            ("smtp://u:secret two@mail.example.com", "the URL"),
            // A malformed URL can carry the secret into the query: no value
            // and no odd parameter name is ever echoed.
            ("smtp://u?tls=n:secret-x@mail.example.com", "\"tls\""),
            ("smtp://h?x:secret-y@mail.example.com=1", "a parameter"),
            ("smtp://h:secret-z", "the port"),
        ];
        for (text, part) in cases {
            let err = SmtpUrl::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: InputField::Url,
                        ..
                    }
                ),
                "{text}"
            );
            assert!(message.contains(part), "{text}: {message}");
            assert!(!message.contains("secret"), "{text}: {message}");
        }
    }

    #[test]
    fn every_parameter_value() {
        let url = SmtpUrl::parse("smtp://u@h.example?tls=required&auth=plain").unwrap();
        assert_eq!(
            (url.tls(), url.mechanism()),
            (TlsPolicy::Required, Some(&Mechanism::Plain))
        );
        let url = SmtpUrl::parse("smtp://u@h.example?auth=oauthbearer").unwrap();
        assert_eq!(url.mechanism(), Some(&Mechanism::OAuthBearer));
        let url = SmtpUrl::parse("smtp://u:t@h.example?auth=oauthbearer").unwrap();
        assert!(matches!(url.credentials(), Some(Credentials::Token { .. })));
        let url = SmtpUrl::parse("smtp://u@h.example?auth=xoauth2").unwrap();
        assert_eq!(url.mechanism(), Some(&Mechanism::XOAuth2));
        let url = SmtpUrl::parse("smtps://[::1]").unwrap();
        assert_eq!((url.host(), url.port()), ("[::1]", 465));
        for fragment in ["smtp://h.example#top", "smtp://h.example/#x"] {
            assert!(SmtpUrl::parse(fragment).is_err(), "{fragment}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%2fc").as_deref(), Some("a@b/c"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
