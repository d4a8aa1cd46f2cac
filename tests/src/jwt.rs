//! Checks an OAuth2 bearer token the way Exchange Online does before it
//! lets XOAUTH2 through: an RS256 JWT whose signature verifies against a
//! JSON Web Key Set (the issuer's `/jwks`, e.g.
//! [`OAuth2Mock::jwks`](crate::peers::OAuth2Mock::jwks)) and whose `exp` has
//! not passed. Used by [`ExchangeOptions::verify_jwt`](crate::ExchangeOptions::verify_jwt).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// The RSA public keys of a JSON Web Key Set.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    /// `(kid, n, e)`, big-endian.
    keys: Vec<(Option<String>, Vec<u8>, Vec<u8>)>,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts with JSON header and payload.
    Malformed,
    /// Not RS256, or no key of the set has its `kid`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is missing or has passed.
    Expired,
}

impl Jwks {
    /// Parses a key set (`{"keys":[{"kty":"RSA","kid":..,"n":..,"e":..}]}`);
    /// `None` when it is not one.
    pub fn parse(json: &str) -> Option<Jwks> {
        let value: Value = serde_json::from_str(json).ok()?;
        let mut keys = Vec::new();
        for key in value.get("keys")?.as_array()? {
            if key.get("kty").and_then(Value::as_str) != Some("RSA") {
                continue;
            }
            let field = |name: &str| {
                key.get(name)
                    .and_then(Value::as_str)
                    .and_then(|s| B64URL.decode(s).ok())
            };
            let (Some(n), Some(e)) = (field("n"), field("e")) else {
                continue;
            };
            let kid = key.get("kid").and_then(Value::as_str).map(str::to_owned);
            keys.push((kid, n, e));
        }
        Some(Jwks { keys })
    }

    /// Verifies `token`'s RS256 signature and its `exp` against now; the
    /// payload when both hold.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let json = |part: &str| -> Result<Value, JwtError> {
            let bytes = B64URL.decode(part).map_err(|_| JwtError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
        };
        let head = json(header)?;
        let body = json(payload)?;
        let signature = B64URL.decode(signature).map_err(|_| JwtError::Malformed)?;
        if head.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(JwtError::UnknownKey);
        }
        let kid = head.get("kid").and_then(Value::as_str);
        let candidates: Vec<_> = self
            .keys
            .iter()
            .filter(|(k, _, _)| kid.is_none() || k.as_deref() == kid)
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        let signed = &token[..header.len() + 1 + payload.len()];
        let verified = candidates.iter().any(|(_, n, e)| {
            RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                .is_ok()
        });
        if !verified {
            return Err(JwtError::BadSignature);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match body.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now => Ok(body),
            _ => Err(JwtError::Expired),
        }
    }
}
