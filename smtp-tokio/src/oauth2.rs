//! OAuth 2.0 access tokens for XOAUTH2 and OAUTHBEARER (feature `oauth2`):
//! a [`TokenProvider`] gets them from a token endpoint over HTTPS (ureq and
//! rustls, on tokio's blocking threads), caches them and renews them
//! shortly before they expire; one request at a time however many
//! connections need a token at once. [`TokenProvider::for_user`] is the
//! [`Pool`](crate::pool::Pool)'s [`CredentialProvider`]. The request and
//! response logic is the core's ([`smtp_proto::oauth2`]).
//!
//! ```no_run
//! use smtp_tokio::oauth2::{Grant, TokenEndpoint, TokenProvider};
//! use smtp_tokio::pool::{Connector, Pool, PoolOptions};
//! use smtp_tokio::{Config, Options};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Microsoft 365, application permission SMTP.SendAsApp.
//! let tokens = TokenProvider::new(
//!     TokenEndpoint::microsoft("contoso.onmicrosoft.com")?,
//!     Grant::client_credentials(
//!         "00000000-0000-0000-0000-000000000000",
//!         std::env::var("CLIENT_SECRET")?,
//!         TokenEndpoint::MICROSOFT_SCOPE,
//!     ),
//! )?;
//! let connector = Connector::new("smtp.office365.com", 587, Config::new("smtp.office365.com"), Options::new())
//!     .credential_provider(tokens.for_user("sender@contoso.com"));
//! let pool = Pool::new(connector, PoolOptions::new());
//! # Ok(()) }
//! ```

use crate::pool::{CredentialProvider, CredentialsFuture};
pub use smtp_proto::oauth2::{Grant, OAuth2Error, TokenCache, TokenEndpoint, TokenResponse};
use smtp_proto::{Credentials, Secret};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one token request may take in all, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Called with each new refresh token the endpoint hands back (rotation),
/// for the application to store.
pub type RotationHook = Arc<dyn Fn(&Secret) + Send + Sync>;

/// Gets access tokens from one endpoint with one grant; clones share the
/// cache. One request at a time: a task that needs a token while another
/// fetches one waits for it and takes it from the cache.
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: TokenEndpoint,
    agent: ureq::Agent,
    state: ::tokio::sync::Mutex<State>,
    requests: AtomicU64,
    on_rotate: Option<RotationHook>,
}

struct State {
    grant: Grant,
    cache: TokenCache,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("endpoint", &self.inner.endpoint)
            .field("requests", &self.requests())
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
    /// bundled Mozilla roots.
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
        self.on_rotate = Some(Arc::new(hook));
        self
    }

    /// The provider; fails on a PEM without certificates.
    pub fn build(self) -> Result<TokenProvider, OAuth2Error> {
        let agent = http::agent(&self.endpoint, self.roots_pem.as_deref(), self.timeout)?;
        Ok(TokenProvider {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                agent,
                state: ::tokio::sync::Mutex::new(State {
                    grant: self.grant,
                    cache: TokenCache::new(),
                }),
                requests: AtomicU64::new(0),
                on_rotate: self.on_rotate,
            }),
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
        &self.inner.endpoint
    }

    /// An access token: the cached one while it is not due for renewal,
    /// else a new one from the endpoint (one request at a time; the HTTP
    /// exchange runs on tokio's blocking threads).
    pub async fn token(&self) -> Result<Secret, OAuth2Error> {
        let mut state = self.inner.state.lock().await;
        if let Some(token) = state.cache.get(Instant::now()) {
            return Ok(token.clone());
        }
        self.inner.requests.fetch_add(1, Ordering::SeqCst);
        let inner = Arc::clone(&self.inner);
        let form = state.grant.form();
        let response = ::tokio::task::spawn_blocking(move || {
            http::request(&inner.agent, &inner.endpoint, &form)
        })
        .await
        .map_err(|err| OAuth2Error::Transport {
            url: self.inner.endpoint.url().to_owned(),
            why: format!("the request task failed: {err}"),
        })??;
        state.cache.store(&response, Instant::now());
        if state.grant.rotate(&response) {
            if let (Some(hook), Some(new)) = (&self.inner.on_rotate, &response.refresh_token) {
                hook(new);
            }
        }
        Ok(response.access_token)
    }

    /// [`Credentials::token`] for `user` with [`TokenProvider::token`].
    pub async fn credentials(&self, user: impl Into<String>) -> Result<Credentials, OAuth2Error> {
        Ok(Credentials::token(user, self.token().await?))
    }

    /// The pool's [`CredentialProvider`]: XOAUTH2/OAUTHBEARER credentials
    /// for `user` with this provider's tokens. A failure to get a token is
    /// the pool's `Error::Credentials` with an [`OAuth2Error`] as its
    /// source; no connection is opened then.
    pub fn for_user(&self, user: impl Into<String>) -> OAuth2Credentials {
        OAuth2Credentials {
            provider: self.clone(),
            user: user.into(),
        }
    }

    /// Forgets the cached token, e.g. after the server refused it.
    pub async fn invalidate(&self) {
        self.inner.state.lock().await.cache.clear();
    }

    /// The current refresh token of a refresh token grant (the newest the
    /// endpoint handed back).
    pub async fn refresh_token(&self) -> Option<Secret> {
        match &self.inner.state.lock().await.grant {
            Grant::RefreshToken { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        }
    }

    /// How many requests were made to the endpoint.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::SeqCst)
    }
}

/// A [`TokenProvider`] for one user: the pool's [`CredentialProvider`]
/// ([`TokenProvider::for_user`]).
#[derive(Clone, Debug)]
pub struct OAuth2Credentials {
    provider: TokenProvider,
    user: String,
}

impl CredentialProvider for OAuth2Credentials {
    fn credentials(&self) -> CredentialsFuture {
        let this = self.clone();
        Box::pin(async move {
            let credentials = this.provider.credentials(this.user.clone()).await?;
            Ok(Some(credentials))
        })
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
