//! OAuth 2.0 access tokens for XOAUTH2 and OAUTHBEARER (feature `oauth2`):
//! a [`TokenProvider`] gets them from a token endpoint over HTTPS (ureq and
//! rustls), caches them and renews them shortly before they expire. The
//! request and response logic is the core's ([`smtp_proto::oauth2`]).
//!
//! ```no_run
//! use smtp_blocking::oauth2::{Grant, TokenEndpoint, TokenProvider};
//! use smtp_blocking::{Client, Config, Options};
//!
//! // Microsoft 365, application permission SMTP.SendAsApp.
//! let provider = TokenProvider::new(
//!     TokenEndpoint::microsoft("contoso.onmicrosoft.com")?,
//!     Grant::client_credentials(
//!         "00000000-0000-0000-0000-000000000000",
//!         std::env::var("CLIENT_SECRET")?,
//!         TokenEndpoint::MICROSOFT_SCOPE,
//!     ),
//! )?;
//! // Before each connection: a cached token, or a fresh one.
//! let credentials = provider.credentials("sender@contoso.com")?;
//! let config = Config::new("smtp.office365.com").credentials(credentials);
//! let client = Client::connect("smtp.office365.com", 587, config, Options::new())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use smtp_proto::oauth2::{Grant, OAuth2Error, TokenCache, TokenEndpoint, TokenResponse};
use smtp_proto::{Credentials, Secret};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long one token request may take in all, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Called with each new refresh token the endpoint hands back (rotation),
/// for the application to store.
pub type RotationHook = Box<dyn Fn(&Secret) + Send + Sync>;

/// Gets access tokens from one endpoint with one grant; shared by threads
/// (`Sync`). One request at a time: a thread that needs a token while
/// another fetches one waits for it and takes it from the cache.
pub struct TokenProvider {
    endpoint: TokenEndpoint,
    agent: ureq::Agent,
    state: Mutex<State>,
    on_rotate: Option<RotationHook>,
}

struct State {
    grant: Grant,
    cache: TokenCache,
    requests: u64,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("TokenProvider")
            .field("endpoint", &self.endpoint)
            .field("grant", &state.grant)
            .field("requests", &state.requests)
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenProvider`]: roots, timeout, rotation hook.
pub struct TokenProviderBuilder {
    endpoint: TokenEndpoint,
    grant: Grant,
    roots_pem: Option<Vec<u8>>,
    timeout: Duration,
    on_rotate: Option<RotationHook>,
}

impl fmt::Debug for TokenProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProviderBuilder")
            .field("endpoint", &self.endpoint)
            .field("grant", &self.grant)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TokenProviderBuilder {
    /// Trusts the certificates of this PEM file's contents instead of the
    /// bundled Mozilla roots (like `--ca-file`).
    pub fn roots_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots_pem = Some(pem.into());
        self
    }

    /// How long one token request may take in all ([`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Called with each new refresh token the endpoint hands back, so that
    /// the application can store it (the old one may stop working).
    pub fn on_refresh_token(mut self, hook: impl Fn(&Secret) + Send + Sync + 'static) -> Self {
        self.on_rotate = Some(Box::new(hook));
        self
    }

    /// The provider; fails on a PEM without certificates.
    pub fn build(self) -> Result<TokenProvider, OAuth2Error> {
        let agent = http::agent(&self.endpoint, self.roots_pem.as_deref(), self.timeout)?;
        Ok(TokenProvider {
            endpoint: self.endpoint,
            agent,
            state: Mutex::new(State {
                grant: self.grant,
                cache: TokenCache::new(),
                requests: 0,
            }),
            on_rotate: self.on_rotate,
        })
    }
}

impl TokenProvider {
    /// A provider with the bundled Mozilla roots and [`DEFAULT_TIMEOUT`].
    pub fn new(endpoint: TokenEndpoint, grant: Grant) -> Result<TokenProvider, OAuth2Error> {
        TokenProvider::builder(endpoint, grant).build()
    }

    /// A builder, to set the roots, the timeout or the rotation hook.
    pub fn builder(endpoint: TokenEndpoint, grant: Grant) -> TokenProviderBuilder {
        TokenProviderBuilder {
            endpoint,
            grant,
            roots_pem: None,
            timeout: DEFAULT_TIMEOUT,
            on_rotate: None,
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.endpoint
    }

    /// An access token: the cached one while it is not due for renewal,
    /// else a new one from the endpoint (one request at a time).
    pub fn token(&self) -> Result<Secret, OAuth2Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = state.cache.get(Instant::now()) {
            return Ok(token.clone());
        }
        state.requests += 1;
        let response = http::request(&self.agent, &self.endpoint, &state.grant.form())?;
        state.cache.store(&response, Instant::now());
        if state.grant.rotate(&response) {
            if let (Some(hook), Some(new)) = (&self.on_rotate, &response.refresh_token) {
                hook(new);
            }
        }
        Ok(response.access_token)
    }

    /// [`Credentials::token`] for `user` with [`TokenProvider::token`].
    pub fn credentials(&self, user: impl Into<String>) -> Result<Credentials, OAuth2Error> {
        Ok(Credentials::token(user, self.token()?))
    }

    /// The [`Pool`](crate::pool::Pool)'s
    /// [`CredentialProvider`](crate::pool::CredentialProvider): XOAUTH2 or
    /// OAUTHBEARER credentials for `user` with this provider's tokens,
    /// asked for before each new connection. A failure to get a token is
    /// the pool's `Error::Credentials` with the [`OAuth2Error`] as its
    /// source; no connection is opened then.
    pub fn for_user(self: &Arc<Self>, user: impl Into<String>) -> OAuth2Credentials {
        OAuth2Credentials {
            provider: Arc::clone(self),
            user: user.into(),
        }
    }

    /// Forgets the cached token, e.g. after the server refused it: the next
    /// [`TokenProvider::token`] asks the endpoint.
    pub fn invalidate(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.cache.clear();
    }

    /// The current refresh token of a refresh token grant (the newest the
    /// endpoint handed back).
    pub fn refresh_token(&self) -> Option<Secret> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &state.grant {
            Grant::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        }
    }

    /// How many requests were made to the endpoint.
    pub fn requests(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests
    }
}

/// A [`TokenProvider`] for one user: the blocking pool's
/// [`CredentialProvider`](crate::pool::CredentialProvider)
/// ([`TokenProvider::for_user`]).
#[derive(Clone, Debug)]
pub struct OAuth2Credentials {
    provider: Arc<TokenProvider>,
    user: String,
}

impl crate::pool::CredentialProvider for OAuth2Credentials {
    fn credentials(&self) -> Result<Option<Credentials>, crate::pool::BoxError> {
        Ok(Some(self.provider.credentials(self.user.clone())?))
    }
}

mod http {
    use super::{OAuth2Error, TokenEndpoint, TokenResponse};
    use smtp_proto::oauth2::MAX_RESPONSE;
    use smtp_proto::Secret;
    use std::time::Duration;
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

    pub(super) fn agent(
        endpoint: &TokenEndpoint,
        roots_pem: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ureq::Agent, OAuth2Error> {
        let mut tls = TlsConfig::builder().provider(TlsProvider::Rustls);
        if let Some(pem) = roots_pem {
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(OAuth2Error::Transport {
                    url: endpoint.url().to_owned(),
                    why: "the root certificates (PEM) hold no certificate".to_owned(),
                });
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        Ok(ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls.build())
            .build()
            .new_agent())
    }

    /// POSTs `form` and parses the answer.
    pub(super) fn request(
        agent: &ureq::Agent,
        endpoint: &TokenEndpoint,
        form: &Secret,
    ) -> Result<TokenResponse, OAuth2Error> {
        let transport = |err: ureq::Error| OAuth2Error::Transport {
            url: endpoint.url().to_owned(),
            why: err.to_string(),
        };
        let mut response = agent
            .post(endpoint.url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .send(form.expose())
            .map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(transport)?;
        TokenResponse::parse(status, &body)
    }
}
