//! Building the rustls client configuration, and the server name TLS is
//! verified for (feature `rustls`). rustls is itself sans-I/O: the
//! configuration is shared by every adapter, which re-exports this module
//! (`smtp_blocking::tls`, `smtp_tokio::tls`) and runs the handshake over
//! its own sockets.
//!
//! [`client_config`] picks the crypto provider and the trust roots, and never
//! calls `ClientConfig::builder()`, which panics when both provider features
//! are enabled: the configuration is built with
//! `ClientConfig::builder_with_provider`.
//!
//! The provider is, in this order:
//!
//! 1. the process-wide default, when the application installed one with
//!    [`CryptoProvider::install_default`] (its explicit choice wins, a FIPS
//!    provider say);
//! 2. else `ring`, with the `ring` feature (preferred when both features are
//!    on);
//! 3. else `aws-lc-rs`, with the `aws-lc-rs` feature;
//! 4. else [`Error::TlsConfig`].

use crate::error::{Error, InputField};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Which certificate authorities a server certificate must chain to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The Mozilla root program, bundled at build time (`webpki-roots`).
    #[default]
    WebPki,
    /// The operating system's trust store (`rustls-native-certs`). Needs the
    /// `native-roots` feature; without it [`client_config`] fails with
    /// [`Error::TlsConfig`].
    Native,
    /// The certificates in this PEM text (`-----BEGIN CERTIFICATE-----`
    /// blocks), instead of any built-in roots (a private CA, say). Other PEM
    /// sections, such as keys, are ignored.
    Pem(Vec<u8>),
    /// These DER certificates, instead of any built-in roots.
    Certificates(Vec<CertificateDer<'static>>),
}

/// A rustls client configuration trusting `roots`, with the safe default
/// protocol versions (TLS 1.2 and 1.3) and no client certificate. The crypto
/// provider is chosen as the [module](self) documentation says.
///
/// Fails with [`Error::TlsConfig`] when no root certificate could be used
/// (empty or invalid PEM, an empty list, an empty system store) or no crypto
/// provider is available.
///
/// ```
/// use smtp_proto::tls::{client_config, TlsRoots};
///
/// let config = client_config(&TlsRoots::WebPki)?;
/// let options = smtp_proto::Options::default().tls(config);
/// # let _ = options;
/// # Ok::<(), smtp_proto::Error>(())
/// ```
pub fn client_config(roots: &TlsRoots) -> Result<Arc<ClientConfig>, Error> {
    let provider = crypto_provider()?;
    let store = root_store(roots)?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| tls_config(format!("the crypto provider: {err}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// [`client_config`] whose certificate verifier also records what each
/// server presented, for a caller that reports the certificate even when
/// it fails verification (a diagnostic tool): the same provider, roots and
/// protocol versions, and the same verdicts, reached by the same rustls
/// webpki verifier, which the recorder only wraps. What the server
/// presented, and that verdict, are then in the returned
/// [`PresentedCertificates`].
///
/// The record is shared by every connection made with this configuration
/// and holds the latest handshake's chain: use one configuration per
/// connection whose certificate you want to see.
pub fn recording_client_config(
    roots: &TlsRoots,
) -> Result<(Arc<ClientConfig>, PresentedCertificates), Error> {
    let provider = crypto_provider()?;
    let store = Arc::new(root_store(roots)?);
    let inner = WebPkiServerVerifier::builder_with_provider(store, Arc::clone(&provider))
        .build()
        .map_err(|err| tls_config(format!("the certificate verifier: {err}")))?;
    let presented = PresentedCertificates::default();
    let verifier = Arc::new(RecordingVerifier {
        inner,
        presented: presented.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| tls_config(format!("the crypto provider: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), presented))
}

/// What the servers a [`recording_client_config`] configuration talked to
/// presented: the latest certificate chain, recorded before it was
/// verified, and whether it verified. Cheap to clone; the clones share the
/// record.
#[derive(Debug, Clone, Default)]
pub struct PresentedCertificates {
    latest: Arc<Mutex<Option<Presented>>>,
}

#[derive(Debug, Clone)]
struct Presented {
    chain: Vec<CertificateDer<'static>>,
    verified: bool,
}

impl PresentedCertificates {
    /// The latest chain presented, end-entity certificate first, whether
    /// or not it verified; `None` before any server presented one.
    pub fn chain(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.lock().as_ref().map(|p| p.chain.clone())
    }

    /// Whether the latest chain verified against the trust roots for the
    /// server name (chain, validity period, name); `None` before any
    /// server presented one. The handshake may still fail after a
    /// verified chain (a bad signature, a broken connection).
    pub fn verified(&self) -> Option<bool> {
        self.lock().as_ref().map(|p| p.verified)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Presented>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records the chain, then lets the webpki verifier decide.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    presented: PresentedCertificates,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|cert| cert.clone().into_owned())
            .collect();
        *self.presented.lock() = Some(Presented {
            chain,
            verified: verdict.is_ok(),
        });
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// The configuration used when [`Options::tls`](crate::Options::tls) is
/// `None`: [`client_config`]`(&TlsRoots::WebPki)`, built once per process
/// (with the provider chosen the first time).
pub fn default_config() -> Result<Arc<ClientConfig>, Error> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(Arc::clone(config));
    }
    let config = client_config(&TlsRoots::WebPki)?;
    Ok(Arc::clone(DEFAULT.get_or_init(|| config)))
}

/// The name to verify the certificate for: the configured server name
/// without IPv6 brackets (an IP address verifies against the certificate's
/// IP SANs), as text (what is reported to
/// [`ClientSession::tls_established`](crate::ClientSession::tls_established))
/// and as rustls' [`ServerName`]: what an adapter verifies at
/// [`Io::Handshake`](crate::Io::Handshake).
///
/// A name that is neither a DNS name nor an IP address is an
/// [`Error::InvalidInput`] for the server name.
pub fn server_name(configured: &str) -> Result<(String, ServerName<'static>), Error> {
    let name = configured
        .strip_prefix('[')
        .and_then(|name| name.strip_suffix(']'))
        .unwrap_or(configured)
        .to_owned();
    match ServerName::try_from(name.clone()) {
        Ok(server_name) => Ok((name, server_name)),
        Err(err) => Err(Error::InvalidInput {
            field: InputField::ServerName,
            reason: format!(
                "not a DNS name or IP address a TLS certificate can be checked for: {err}"
            ),
        }),
    }
}

fn tls_config(reason: impl Into<String>) -> Error {
    Error::TlsConfig {
        reason: reason.into(),
    }
}

/// The provider, in the order the [module](self) documentation gives.
fn crypto_provider() -> Result<Arc<CryptoProvider>, Error> {
    if let Some(provider) = CryptoProvider::get_default() {
        return Ok(Arc::clone(provider));
    }
    #[cfg(feature = "ring")]
    {
        Ok(Arc::new(rustls::crypto::ring::default_provider()))
    }
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    {
        Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    {
        Err(tls_config(
            "no crypto provider: enable the `ring` or `aws-lc-rs` feature, \
             or install a process-wide rustls CryptoProvider",
        ))
    }
}

fn root_store(roots: &TlsRoots) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    match roots {
        TlsRoots::WebPki => {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        TlsRoots::Native => add_native(&mut store)?,
        TlsRoots::Pem(pem) => {
            for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
                let cert = cert.map_err(|err| {
                    tls_config(format!("PEM roots, certificate {}: {err}", i + 1))
                })?;
                add(&mut store, cert, i)?;
            }
        }
        TlsRoots::Certificates(certs) => {
            for (i, cert) in certs.iter().enumerate() {
                add(&mut store, cert.clone(), i)?;
            }
        }
    }
    if store.is_empty() {
        return Err(tls_config(
            "no usable root certificate (empty PEM, list or trust store)",
        ));
    }
    Ok(store)
}

fn add(store: &mut RootCertStore, cert: CertificateDer<'static>, i: usize) -> Result<(), Error> {
    store
        .add(cert)
        .map_err(|err| tls_config(format!("root certificate {}: {err}", i + 1)))
}

/// The system trust store; parts that cannot be read or parsed are skipped
/// (and logged), and a store with nothing usable is refused with the first
/// error as the reason.
#[cfg(feature = "native-roots")]
fn add_native(store: &mut RootCertStore) -> Result<(), Error> {
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = found
            .errors
            .first()
            .map(|err| format!(": {err}"))
            .unwrap_or_default();
        return Err(tls_config(format!(
            "no usable certificate in the system trust store{detail}"
        )));
    }
    Ok(())
}

#[cfg(not(feature = "native-roots"))]
fn add_native(_store: &mut RootCertStore) -> Result<(), Error> {
    Err(tls_config(
        "TlsRoots::Native needs the `native-roots` feature",
    ))
}

// Building a configuration needs a crypto provider.
#[cfg(all(test, any(feature = "ring", feature = "aws-lc-rs")))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TEST_CA: &[u8] = include_bytes!("testdata/test-ca.pem");

    #[test]
    fn webpki_roots_build() {
        let config = client_config(&TlsRoots::WebPki);
        assert!(config.is_ok(), "{config:?}");
        assert_eq!(TlsRoots::default(), TlsRoots::WebPki);
    }

    #[test]
    fn pem_roots_replace_the_built_in_ones() {
        assert_eq!(
            root_store(&TlsRoots::Pem(TEST_CA.to_vec()))
                .map(|s| s.len())
                .ok(),
            Some(1)
        );
        // Keys and other sections are skipped; two certificates count twice.
        let mut two = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec();
        two.extend_from_slice(TEST_CA);
        two.extend_from_slice(TEST_CA);
        assert_eq!(
            root_store(&TlsRoots::Pem(two)).map(|s| s.len()).ok(),
            Some(2)
        );
        assert!(client_config(&TlsRoots::Pem(TEST_CA.to_vec())).is_ok());
    }

    #[test]
    fn certificate_list_roots() {
        let certs: Vec<_> = CertificateDer::pem_slice_iter(TEST_CA)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(client_config(&TlsRoots::Certificates(certs)).is_ok());
    }

    #[test]
    fn unusable_roots_are_refused() {
        for roots in [
            TlsRoots::Pem(Vec::new()),
            TlsRoots::Pem(b"not pem at all".to_vec()),
            TlsRoots::Certificates(Vec::new()),
            TlsRoots::Certificates(vec![CertificateDer::from(vec![1, 2, 3])]),
            TlsRoots::Pem(
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
            ),
        ] {
            let err = client_config(&roots).unwrap_err();
            assert!(matches!(err, Error::TlsConfig { .. }), "{roots:?}: {err:?}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn brackets_are_stripped_from_ipv6_names() {
        let (name, server) = server_name("[::1]").unwrap();
        assert_eq!(name, "::1");
        assert!(matches!(server, ServerName::IpAddress(_)));
        let (name, _) = server_name("smtp.example.com").unwrap();
        assert_eq!(name, "smtp.example.com");
    }

    #[test]
    fn empty_root_sets_are_refused() {
        assert!(matches!(
            client_config(&TlsRoots::Pem(Vec::new())),
            Err(Error::TlsConfig { .. })
        ));
        assert!(client_config(&TlsRoots::WebPki).is_ok());
    }
}
