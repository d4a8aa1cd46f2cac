//! rustls client configurations and the server name TLS is verified for.

use crate::Error;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::sync::{Arc, OnceLock};

/// Where the trust anchors for server certificates come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// Mozilla's roots, bundled at build time (`webpki-roots`).
    #[default]
    WebPki,
    /// The operating system's trust store (needs the `native-roots` feature).
    Native,
    /// The certificates in a PEM document (`-----BEGIN CERTIFICATE-----` blocks).
    Pem(Vec<u8>),
    /// These DER certificates.
    Certificates(Vec<CertificateDer<'static>>),
}

/// Builds a rustls client configuration trusting `roots`, with the safe
/// default protocol versions (TLS 1.2 and 1.3) and no client certificate.
///
/// The crypto provider is ring with the `ring` feature, else aws-lc-rs with
/// `aws-lc-rs`, else the process default installed with
/// [`CryptoProvider::install_default`].
///
/// ```
/// use smtp_tokio::tls::{client_config, TlsRoots};
///
/// let config = client_config(&TlsRoots::WebPki)?;
/// let options = smtp_tokio::Options::default().tls(config);
/// # let _ = options;
/// # Ok::<(), smtp_tokio::Error>(())
/// ```
pub fn client_config(roots: &TlsRoots) -> Result<Arc<ClientConfig>, Error> {
    let store = root_store(roots)?;
    if store.is_empty() {
        return Err(Error::tls_config("no trust anchors".to_owned()));
    }
    let config = ClientConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::tls_config(err.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The configuration used when [`Options::tls`](crate::Options::tls) is
/// `None`: the webpki roots, built once per process.
pub(crate) fn default_config() -> Result<Arc<ClientConfig>, Error> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(Arc::clone(config));
    }
    let config = client_config(&TlsRoots::WebPki)?;
    Ok(Arc::clone(DEFAULT.get_or_init(|| config)))
}

/// The name to verify the certificate for: the configured server name without
/// IPv6 brackets (an IP address verifies against the certificate's IP SANs).
pub(crate) fn server_name(configured: &str) -> Result<(String, ServerName<'static>), Error> {
    let name = configured
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(configured);
    match ServerName::try_from(name.to_owned()) {
        Ok(server_name) => Ok((name.to_owned(), server_name)),
        Err(err) => Err(Error::Smtp(smtp_proto::Error::InvalidInput {
            field: smtp_proto::InputField::ServerName,
            reason: format!("not a valid TLS server name: {err}"),
        })),
    }
}

fn provider() -> Result<Arc<CryptoProvider>, Error> {
    #[cfg(feature = "ring")]
    {
        Ok(Arc::new(rustls::crypto::ring::default_provider()))
    }
    #[cfg(all(not(feature = "ring"), feature = "aws-lc-rs"))]
    {
        Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    {
        CryptoProvider::get_default().cloned().ok_or_else(|| {
            Error::tls_config(
                "no crypto provider: enable the `ring` or `aws-lc-rs` feature, or install a process default"
                    .to_owned(),
            )
        })
    }
}

fn root_store(roots: &TlsRoots) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    match roots {
        TlsRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::Native => add_native(&mut store)?,
        TlsRoots::Pem(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|err| Error::tls_config(format!("PEM: {err}")))?;
                store
                    .add(cert)
                    .map_err(|err| Error::tls_config(err.to_string()))?;
            }
        }
        TlsRoots::Certificates(certs) => {
            for cert in certs {
                store
                    .add(cert.clone())
                    .map_err(|err| Error::tls_config(err.to_string()))?;
            }
        }
    }
    Ok(store)
}

#[cfg(feature = "native-roots")]
fn add_native(store: &mut RootCertStore) -> Result<(), Error> {
    let loaded = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = loaded
            .errors
            .first()
            .map(|err| format!(": {err}"))
            .unwrap_or_default();
        return Err(Error::tls_config(format!(
            "no usable certificate in the system trust store{detail}"
        )));
    }
    Ok(())
}

#[cfg(not(feature = "native-roots"))]
fn add_native(_store: &mut RootCertStore) -> Result<(), Error> {
    Err(Error::tls_config(
        "TlsRoots::Native needs the `native-roots` feature".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
