//! OAuth 2.0 access tokens for XOAUTH2 and OAUTHBEARER, sans I/O: the token
//! endpoint's guard, the request body of the client credentials and refresh
//! token grants (RFC 6749 §4.4 and §6), the response parsed (§5.1, §5.2),
//! and the cache that says when a token must be renewed. The adapters send
//! the request and feed the answer back (`smtp_blocking::oauth2`,
//! `smtp_tokio::oauth2`).
//!
//! Secrets (client secret, refresh token, access token) are [`Secret`]s:
//! never in `Debug` output, never in an error.
//!
//! ```
//! use smtp_proto::oauth2::{Grant, TokenEndpoint, TokenResponse};
//!
//! let endpoint = TokenEndpoint::microsoft("contoso.onmicrosoft.com")?;
//! let grant = Grant::client_credentials("app-id", "client-secret", TokenEndpoint::MICROSOFT_SCOPE);
//! let body = grant.form();
//! assert!(body.expose().starts_with("grant_type=client_credentials&client_id=app-id"));
//! // ... POST `body` to `endpoint.url()` with
//! // Content-Type: application/x-www-form-urlencoded, then:
//! let response = TokenResponse::parse(200, br#"{"access_token":"t","expires_in":3599}"#)?;
//! assert_eq!(response.access_token.expose(), "t");
//! # Ok::<(), smtp_proto::oauth2::OAuth2Error>(())
//! ```

use crate::auth::Secret;
use crate::config::is_loopback_name;
use std::fmt;
use std::time::{Duration, Instant};

/// A token endpoint that passed the guard: `https://`, or `http://` to a
/// loopback host (`localhost`, `127.0.0.0/8`, `[::1]`), as for credentials
/// over SMTP.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEndpoint {
    url: String,
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenEndpoint").field(&self.url).finish()
    }
}

impl TokenEndpoint {
    /// Microsoft's scope for SMTP with application permissions
    /// (`SMTP.SendAsApp`, client credentials grant).
    pub const MICROSOFT_SCOPE: &'static str = "https://outlook.office365.com/.default";
    /// Microsoft's delegated scope (`SMTP.Send`) with a refresh token.
    pub const MICROSOFT_DELEGATED_SCOPE: &'static str =
        "https://outlook.office.com/SMTP.Send offline_access";
    /// Gmail's scope for SMTP.
    pub const GMAIL_SCOPE: &'static str = "https://mail.google.com/";
    /// Google's token endpoint.
    pub const GOOGLE_URL: &'static str = "https://oauth2.googleapis.com/token";

    /// Checks `url`: `https://HOST...`, or `http://HOST...` where HOST is a
    /// loopback name. Anything else is [`OAuth2Error::InsecureEndpoint`]
    /// (or [`OAuth2Error::InvalidEndpoint`] when it is no URL).
    pub fn new(url: impl Into<String>) -> Result<TokenEndpoint, OAuth2Error> {
        let url = url.into();
        let invalid = |why: &str| OAuth2Error::InvalidEndpoint {
            url: printable(&url),
            why: why.to_owned(),
        };
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("spaces or control characters"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected https://HOST/PATH"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(bracketed) = host_port.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or_default()
        } else {
            host_port.split(':').next().unwrap_or_default()
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if scheme.eq_ignore_ascii_case("https") {
            return Ok(TokenEndpoint { url });
        }
        if scheme.eq_ignore_ascii_case("http") && is_loopback_name(host) {
            return Ok(TokenEndpoint { url });
        }
        if scheme.eq_ignore_ascii_case("http") {
            return Err(OAuth2Error::InsecureEndpoint {
                url: printable(&url),
            });
        }
        Err(invalid(
            "the scheme must be https (or http to a loopback address)",
        ))
    }

    /// Microsoft identity platform's v2.0 endpoint of `tenant` (a tenant
    /// id, a domain, or `organizations`):
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub fn microsoft(tenant: &str) -> Result<TokenEndpoint, OAuth2Error> {
        if tenant.is_empty()
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(OAuth2Error::InvalidEndpoint {
                url: printable(tenant),
                why: "a tenant is an id or a domain name".to_owned(),
            });
        }
        TokenEndpoint::new(format!(
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
        ))
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// At most 200 characters of `text`, for errors.
fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// How to get a token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// RFC 6749 §4.4: the application's own identity (Microsoft's
    /// `SMTP.SendAsApp`).
    ClientCredentials {
        /// The client (application) id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
        /// The scope (space-separated).
        scope: String,
    },
    /// RFC 6749 §6: a user's delegated consent, renewed with a refresh
    /// token; the server may hand back a new one (rotation), which replaces
    /// it here (see [`Grant::rotate`]).
    RefreshToken {
        /// The client (application) id.
        client_id: String,
        /// The client secret of a confidential client, if any.
        client_secret: Option<Secret>,
        /// The current refresh token.
        refresh_token: Secret,
        /// The scope (space-separated).
        scope: String,
    },
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::ClientCredentials {
                client_id, scope, ..
            } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("scope", scope)
                .finish_non_exhaustive(),
            Grant::RefreshToken {
                client_id, scope, ..
            } => f
                .debug_struct("RefreshToken")
                .field("client_id", client_id)
                .field("scope", scope)
                .finish_non_exhaustive(),
        }
    }
}

impl Grant {
    /// The client credentials grant.
    pub fn client_credentials(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        scope: impl Into<String>,
    ) -> Grant {
        Grant::ClientCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: scope.into(),
        }
    }

    /// The refresh token grant (a public client: no client secret; see
    /// [`Grant::with_client_secret`]).
    pub fn refresh_token(
        client_id: impl Into<String>,
        refresh_token: impl Into<Secret>,
        scope: impl Into<String>,
    ) -> Grant {
        Grant::RefreshToken {
            client_id: client_id.into(),
            client_secret: None,
            refresh_token: refresh_token.into(),
            scope: scope.into(),
        }
    }

    /// Adds a client secret to a refresh token grant (a confidential
    /// client, as Google's are); replaces the secret of a client
    /// credentials grant.
    pub fn with_client_secret(mut self, secret: impl Into<Secret>) -> Grant {
        match &mut self {
            Grant::ClientCredentials { client_secret, .. } => *client_secret = secret.into(),
            Grant::RefreshToken { client_secret, .. } => *client_secret = Some(secret.into()),
        }
        self
    }

    /// `client_credentials` or `refresh_token`, as in `grant_type`.
    pub fn name(&self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::RefreshToken { .. } => "refresh_token",
        }
    }

    /// The request body (`application/x-www-form-urlencoded`); a secret,
    /// since it carries the client secret or refresh token.
    pub fn form(&self) -> Secret {
        let mut form = Form::default();
        match self {
            Grant::ClientCredentials {
                client_id,
                client_secret,
                scope,
            } => {
                form.pair("grant_type", "client_credentials");
                form.pair("client_id", client_id);
                form.pair("client_secret", client_secret.expose());
                form.pair("scope", scope);
            }
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                scope,
            } => {
                form.pair("grant_type", "refresh_token");
                form.pair("client_id", client_id);
                if let Some(secret) = client_secret {
                    form.pair("client_secret", secret.expose());
                }
                form.pair("refresh_token", refresh_token.expose());
                if !scope.is_empty() {
                    form.pair("scope", scope);
                }
            }
        }
        Secret::new(form.0)
    }

    /// Takes the refresh token a response handed back, if any and if this
    /// is a refresh token grant; returns whether it changed.
    pub fn rotate(&mut self, response: &TokenResponse) -> bool {
        match (self, &response.refresh_token) {
            (Grant::RefreshToken { refresh_token, .. }, Some(new)) if new != refresh_token => {
                *refresh_token = new.clone();
                true
            }
            _ => false,
        }
    }
}

/// An `application/x-www-form-urlencoded` body being built.
#[derive(Default)]
struct Form(String);

impl Form {
    fn pair(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        encode(&mut self.0, name);
        self.0.push('=');
        encode(&mut self.0, value);
    }
}

fn encode(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// A successful token response.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token, for XOAUTH2 or OAUTHBEARER.
    pub access_token: Secret,
    /// How long it is valid, when the server said.
    pub expires_in: Option<Duration>,
    /// A new refresh token, when the server handed one back.
    pub refresh_token: Option<Secret>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// The most of a response body read (a token response is a few KiB).
pub const MAX_RESPONSE: u64 = 1 << 20;

impl TokenResponse {
    /// Parses the endpoint's answer: HTTP `status` and `body` (JSON).
    ///
    /// A 2xx answer needs a non-empty `access_token`; any other answer is
    /// [`OAuth2Error::Rejected`] with the endpoint's `error` and
    /// `error_description` when the body has them.
    pub fn parse(status: u16, body: &[u8]) -> Result<TokenResponse, OAuth2Error> {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(|v| v.as_str())
                .map(printable)
        };
        if !(200..300).contains(&status) || field("error").is_some() {
            return Err(OAuth2Error::Rejected {
                status,
                error: field("error"),
                description: field("error_description"),
            });
        }
        let Some(json) = json.as_ref().filter(|j| j.is_object()) else {
            return Err(OAuth2Error::Malformed {
                why: format!("HTTP {status}: the body is not a JSON object"),
            });
        };
        let access_token = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuth2Error::Malformed {
                why: format!("HTTP {status}: the response has no access_token"),
            })?;
        // A number, or (some servers) a string of digits.
        let expires_in = json.get("expires_in").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        });
        Ok(TokenResponse {
            access_token: Secret::new(access_token),
            expires_in: expires_in.map(Duration::from_secs),
            refresh_token: json
                .get("refresh_token")
                .and_then(|v| v.as_str())
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        })
    }
}

/// Why no token could be had. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuth2Error {
    /// The token endpoint is plain HTTP to a host that is not a loopback
    /// address: the client secret or refresh token would cross the network
    /// in clear.
    #[error("refusing the OAuth2 token endpoint {url}: it must be https (or http to a loopback address)")]
    InsecureEndpoint {
        /// The URL.
        url: String,
    },
    /// The endpoint is not a usable URL.
    #[error("invalid OAuth2 token endpoint {url:?}: {why}")]
    InvalidEndpoint {
        /// What was given.
        url: String,
        /// Why.
        why: String,
    },
    /// The endpoint could not be reached, or the HTTP exchange failed.
    #[error("OAuth2 token endpoint {url}: {why}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        why: String,
    },
    /// The endpoint refused: an OAuth2 error response (RFC 6749 §5.2).
    #[error("{}", rejected(*status, error.as_deref(), description.as_deref()))]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// `error`, e.g. `invalid_client`.
        error: Option<String>,
        /// `error_description`.
        description: Option<String>,
    },
    /// A 2xx answer without a usable `access_token`.
    #[error("the OAuth2 token endpoint's answer is unusable: {why}")]
    Malformed {
        /// Why.
        why: String,
    },
}

fn rejected(status: u16, error: Option<&str>, description: Option<&str>) -> String {
    let mut text = format!("the OAuth2 token endpoint refused (HTTP {status})");
    if let Some(error) = error {
        text.push_str(": ");
        text.push_str(error);
    }
    if let Some(description) = description {
        text.push_str(": ");
        text.push_str(description);
    }
    text
}

/// How long before it expires a cached token is renewed: a minute, or
/// half its lifetime when that is shorter.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The token in hand and when it must be renewed; the adapters keep it
/// under their lock, so that one request at a time is made.
#[derive(Clone, Default)]
pub struct TokenCache {
    token: Option<(Secret, Instant)>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("renew_at", &self.token.as_ref().map(|(_, at)| at))
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// The cached token, if it is not due for renewal at `now`.
    pub fn get(&self, now: Instant) -> Option<&Secret> {
        match &self.token {
            Some((token, renew_at)) if now < *renew_at => Some(token),
            _ => None,
        }
    }

    /// Keeps the token of `response`, received at `now`: until
    /// [`RENEW_BEFORE`] (at most half its lifetime) before it expires. A
    /// token without `expires_in` is not kept.
    pub fn store(&mut self, response: &TokenResponse, now: Instant) {
        self.token = response.expires_in.and_then(|lifetime| {
            let margin = RENEW_BEFORE.min(lifetime / 2);
            let renew_at = now.checked_add(lifetime - margin)?;
            Some((response.access_token.clone(), renew_at))
        });
    }

    /// Forgets the token (e.g. after the server refused it).
    pub fn clear(&mut self) {
        self.token = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret_or_a_token() {
        let endpoint = TokenEndpoint::new("https://id.example.com/token").unwrap();
        assert_eq!(
            format!("{endpoint:?}"),
            "TokenEndpoint(\"https://id.example.com/token\")"
        );
        let client = Grant::client_credentials("app-id", "client-secret-1", "scope-a");
        let refresh = Grant::refresh_token("app-id", "refresh-token-1", "scope-b");
        assert_eq!(client.name(), "client_credentials");
        assert_eq!(refresh.name(), "refresh_token");
        for (grant, secret) in [(&client, "client-secret-1"), (&refresh, "refresh-token-1")] {
            let shown = format!("{grant:?}");
            assert!(
                shown.contains("app-id") && !shown.contains(secret),
                "{shown}"
            );
        }
        let body = br#"{"access_token":"token-1","expires_in":3600,"refresh_token":"rt-2"}"#;
        let response = TokenResponse::parse(200, body).unwrap();
        let shown = format!("{response:?}");
        assert!(
            shown.starts_with("TokenResponse") && shown.contains("3600s"),
            "{shown}"
        );
        assert!(
            !shown.contains("token-1") && !shown.contains("rt-2"),
            "{shown}"
        );
        let mut cache = TokenCache::new();
        let now = Instant::now();
        cache.store(&response, now);
        let shown = format!("{cache:?}");
        assert!(
            shown.starts_with("TokenCache") && shown.contains("renew_at: Some"),
            "{shown}"
        );
        assert!(!shown.contains("token-1"), "{shown}");
    }

    #[test]
    fn a_fractional_lifetime_is_cut_and_a_negative_one_ignored() {
        let lifetime = |body: &[u8]| TokenResponse::parse(200, body).unwrap().expires_in;
        assert_eq!(
            lifetime(br#"{"access_token":"t","expires_in":3599.9}"#),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(lifetime(br#"{"access_token":"t","expires_in":-5.0}"#), None);
        assert_eq!(
            lifetime(br#"{"access_token":"t","expires_in":0.0}"#),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn the_endpoint_guard() {
        for ok in [
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
            "HTTPS://example.com",
            "http://127.0.0.1:8080/token",
            "http://127.5.6.7/token",
            "http://[::1]:9/token",
            "http://localhost:1/token",
            "http://LOCALHOST./t",
        ] {
            assert!(TokenEndpoint::new(ok).is_ok(), "{ok}");
        }
        for insecure in [
            "http://example.com/token",
            "http://192.0.2.1/token",
            "http://localhost.example.com/token",
            "http://127.0.0.1@example.com/token",
        ] {
            assert!(
                matches!(
                    TokenEndpoint::new(insecure),
                    Err(OAuth2Error::InsecureEndpoint { .. })
                ),
                "{insecure}"
            );
        }
        for invalid in [
            "",
            "example.com/token",
            "ftp://x/",
            "https://",
            "https:// x",
            "http:///t",
        ] {
            assert!(
                matches!(
                    TokenEndpoint::new(invalid),
                    Err(OAuth2Error::InvalidEndpoint { .. })
                ),
                "{invalid}"
            );
        }
        assert_eq!(
            TokenEndpoint::microsoft("contoso.onmicrosoft.com")
                .unwrap()
                .url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(TokenEndpoint::microsoft("a/b").is_err());
        assert!(TokenEndpoint::microsoft("").is_err());
    }

    #[test]
    fn forms_are_encoded_and_secrets_hidden() {
        let grant = Grant::client_credentials("id", "s&=+ é", TokenEndpoint::MICROSOFT_SCOPE);
        assert_eq!(
            grant.form().expose(),
            "grant_type=client_credentials&client_id=id&client_secret=s%26%3D%2B+%C3%A9\
             &scope=https%3A%2F%2Foutlook.office365.com%2F.default"
        );
        let mut grant = Grant::refresh_token("id", "rt1", "a b").with_client_secret("cs");
        assert_eq!(
            grant.form().expose(),
            "grant_type=refresh_token&client_id=id&client_secret=cs&refresh_token=rt1&scope=a+b"
        );
        let debug = format!("{grant:?}");
        assert!(!debug.contains("rt1") && !debug.contains("cs\""), "{debug}");
        let response = TokenResponse::parse(
            200,
            br#"{"access_token":"at","refresh_token":"rt2","expires_in":"60"}"#,
        )
        .unwrap();
        assert!(!format!("{response:?}").contains("at\""));
        assert!(grant.rotate(&response));
        assert!(grant.form().expose().contains("refresh_token=rt2"));
        assert!(!grant.rotate(&response));
    }

    #[test]
    fn responses() {
        let ok = TokenResponse::parse(200, br#"{"access_token":"a","expires_in":3599}"#).unwrap();
        assert_eq!(ok.expires_in, Some(Duration::from_secs(3599)));
        assert_eq!(ok.refresh_token, None);
        let err = TokenResponse::parse(
            400,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the OAuth2 token endpoint refused (HTTP 400): invalid_client: \
             AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            TokenResponse::parse(502, b"<html>")
                .unwrap_err()
                .to_string(),
            "the OAuth2 token endpoint refused (HTTP 502)"
        );
        for body in [&b"{}"[..], br#"{"access_token":""}"#, b"[1]", b"nope"] {
            assert!(
                matches!(
                    TokenResponse::parse(200, body),
                    Err(OAuth2Error::Malformed { .. })
                ),
                "{body:?}"
            );
        }
        // An error field in a 200 is an error too.
        assert!(matches!(
            TokenResponse::parse(200, br#"{"error":"x"}"#),
            Err(OAuth2Error::Rejected { status: 200, .. })
        ));
    }

    #[test]
    fn the_cache_renews_before_expiry() {
        let now = Instant::now();
        let mut cache = TokenCache::new();
        assert!(cache.get(now).is_none());
        let response = |secs| TokenResponse {
            access_token: Secret::new("t"),
            expires_in: Some(Duration::from_secs(secs)),
            refresh_token: None,
        };
        cache.store(&response(3600), now);
        assert!(cache.get(now + Duration::from_secs(3539)).is_some());
        assert!(cache.get(now + Duration::from_secs(3540)).is_none());
        cache.store(&response(10), now);
        assert!(cache.get(now + Duration::from_secs(4)).is_some());
        assert!(cache.get(now + Duration::from_secs(5)).is_none());
        cache.store(&response(0), now);
        assert!(cache.get(now).is_none());
        cache.store(
            &TokenResponse {
                expires_in: None,
                ..response(1)
            },
            now,
        );
        assert!(cache.get(now).is_none());
        cache.store(&response(100), now);
        cache.clear();
        assert!(cache.get(now).is_none());
    }
}
