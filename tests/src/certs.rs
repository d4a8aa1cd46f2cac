//! A throwaway PKI for TLS tests: one CA, leaf certificates it signs (valid
//! or expired), and self-signed certificates it does not.
//!
//! A bare self-signed certificate (what `openssl req -x509` makes) is a CA
//! certificate, which rustls refuses as a server certificate; hence a CA and
//! a leaf.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The ring crypto provider, explicitly: `ServerConfig::builder()` panics
/// when more than one provider is compiled into the process.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rcgen_err(e: rcgen::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("rcgen: {e}"))
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rustls: {e}"))
}

/// A throwaway certificate authority.
pub struct TestPki {
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl TestPki {
    /// Makes a new CA with a fresh P-256 key.
    pub fn new() -> io::Result<Self> {
        let key = KeyPair::generate().map_err(rcgen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "smtp-tests throwaway CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(rcgen_err)?;
        Ok(Self {
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate in PEM.
    pub fn ca_pem(&self) -> String {
        pem_block("CERTIFICATE", self.ca_der.as_ref())
    }

    /// The CA certificate in DER, for a client's root store.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// A rustls client configuration trusting only this CA.
    pub fn client_config(&self) -> io::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der()).map_err(tls_err)?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// A server certificate signed by this CA, valid now, for `names` (DNS
    /// names, or IP addresses such as `127.0.0.1`).
    pub fn leaf(&self, names: &[&str]) -> io::Result<ServerCert> {
        self.sign(names, false)
    }

    /// A server certificate signed by this CA whose validity ended in the past.
    pub fn expired_leaf(&self, names: &[&str]) -> io::Result<ServerCert> {
        self.sign(names, true)
    }

    fn sign(&self, names: &[&str], expired: bool) -> io::Result<ServerCert> {
        let key = KeyPair::generate().map_err(rcgen_err)?;
        let mut params = leaf_params(names)?;
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_err)?;
        Ok(ServerCert {
            chain: vec![cert.der().clone(), self.ca_der.clone()],
            key: key_der(&key),
        })
    }
}

/// A self-signed server certificate for `names`, signed by no CA (a client
/// trusting a [`TestPki`] must refuse it).
pub fn self_signed(names: &[&str]) -> io::Result<ServerCert> {
    let key = KeyPair::generate().map_err(rcgen_err)?;
    let params = leaf_params(names)?;
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok(ServerCert {
        chain: vec![cert.der().clone()],
        key: key_der(&key),
    })
}

fn leaf_params(names: &[&str]) -> io::Result<CertificateParams> {
    let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(sans).map_err(rcgen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("smtp-tests"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A server certificate chain (leaf first) and its private key.
pub struct ServerCert {
    /// The leaf, then the CA for CA-signed certificates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ServerCert {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ServerCert {
    /// A rustls server configuration presenting this certificate (ring
    /// provider, safe default protocol versions, no client auth).
    pub fn server_config(&self) -> io::Result<Arc<ServerConfig>> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_err)?;
        Ok(Arc::new(config))
    }

    /// The chain in PEM (leaf first).
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem_block("CERTIFICATE", c.as_ref()))
            .collect()
    }

    /// The private key in PEM (`PRIVATE KEY`, PKCS#8).
    pub fn key_pem(&self) -> String {
        pem_block("PRIVATE KEY", self.key.secret_der())
    }

    /// Writes `cert.pem` (the chain) and `key.pem` into `dir`, for external
    /// servers; returns their paths.
    pub fn write_pem(&self, dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        fs::write(&cert_path, self.chain_pem())?;
        fs::write(&key_path, self.key_pem())?;
        Ok((cert_path, key_path))
    }

    /// Parses a chain and key from PEM text (for certificates made elsewhere).
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> io::Result<Self> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("PEM: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("PEM: {e}")))?;
        Ok(Self { chain, key })
    }
}
