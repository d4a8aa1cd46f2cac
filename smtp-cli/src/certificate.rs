//! What `smtp-send probe` says of a server's end-entity certificate:
//! subject and issuer as RFC 4514 strings, the DNS names of the subject
//! alternative name extension, the end of the validity period in RFC 3339
//! (UTC) and the days left. The DER is parsed by `x509-parser`; this
//! module only formats what it found.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};
use x509_parser::asn1_rs::{Tag, ToDer};
use x509_parser::prelude::{ASN1Time, FromDer, GeneralName, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

/// One certificate, as the probe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateReport {
    /// The subject, RFC 4514 (`CN=mail.example.test,O=Example`).
    pub subject: String,
    /// The issuer, RFC 4514.
    pub issuer: String,
    /// The `dNSName` entries of the subject alternative name extension, in
    /// order (none without the extension).
    pub dns_names: Vec<String>,
    /// The end of the validity period, RFC 3339 in UTC
    /// (`2027-03-01T00:00:00Z`).
    pub not_after: String,
    /// Whole days from now to `not_after`, rounded down: negative once
    /// expired.
    pub days_left: i64,
    /// Whether it verified against the trust roots for the server name.
    pub verified: bool,
}

/// Describes the DER certificate `der` as of `now`; an error message when
/// it cannot be parsed.
pub fn describe(der: &[u8], verified: bool, now: SystemTime) -> Result<CertificateReport, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|err| format!("the certificate could not be parsed: {err}"))?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(err) => return Err(format!("the subject alternative name: {err}")),
    };
    let not_after = cert.validity().not_after;
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    Ok(CertificateReport {
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        dns_names,
        not_after: rfc3339(not_after),
        days_left: not_after.timestamp().saturating_sub(now).div_euclid(86_400),
        verified,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ`: certificate times are whole seconds; the
/// date is rebuilt from the Unix time so that it is UTC whatever offset
/// the encoding carried.
fn rfc3339(time: ASN1Time) -> String {
    let utc = ASN1Time::from_timestamp(time.timestamp())
        .unwrap_or(time)
        .to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// The attribute types RFC 4514 §3 names; any other is written as its
/// dotted OID.
const SHORT_NAMES: [(&str, &str); 9] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// A distinguished name as RFC 4514 writes it: the RDNs last first,
/// separated by `,`; the attributes of a multi-valued RDN joined with `+`;
/// each `TYPE=value`, TYPE a §3 short name or the dotted OID. A value is
/// escaped as §2.4 says (control characters too, as `\XX`); one whose type
/// is written as an OID, or that is not a string, is `#` and the hex of
/// its DER encoding (§2.4).
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attribute) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_attribute(&mut out, attribute);
        }
    }
    out
}

fn write_attribute(out: &mut String, attribute: &AttributeTypeAndValue<'_>) {
    let oid = attribute.attr_type().to_id_string();
    let short = SHORT_NAMES
        .iter()
        .find(|(id, _)| *id == oid)
        .map(|(_, short)| *short);
    match (short, string_value(attribute)) {
        (Some(short), Some(value)) => {
            out.push_str(short);
            out.push('=');
            escape(out, &value);
        }
        (short, _) => {
            out.push_str(short.unwrap_or(&oid));
            out.push_str("=#");
            let value = attribute.attr_value();
            let der = value
                .to_der_vec()
                .unwrap_or_else(|_| value.as_bytes().to_vec());
            for byte in der {
                let _ = write!(out, "{byte:02x}");
            }
        }
    }
}

/// The value as text, for the string types a directory string may be.
fn string_value(attribute: &AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(text) = attribute.as_str() {
        return Some(text.to_owned());
    }
    let value = attribute.attr_value();
    match value.tag() {
        Tag::BmpString => value.as_bmpstring().ok().map(|s| s.string()),
        Tag::UniversalString => value.as_universalstring().ok().map(|s| s.string()),
        Tag::TeletexString | Tag::VisibleString => std::str::from_utf8(value.as_bytes())
            .ok()
            .map(str::to_owned),
        _ => None,
    }
}

/// RFC 4514 §2.4: `"`, `+`, `,`, `;`, `<`, `>` and `\` escaped with a
/// backslash, a leading space or `#` and a trailing space too; NUL and
/// every other control character as `\XX` per UTF-8 octet.
fn escape(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '#' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{byte:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::string::{BmpString, Ia5String, PrintableString};
    use rcgen::{date_time_ymd, CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};
    use std::time::Duration;

    fn der(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    /// 2027-03-01T00:00:00Z.
    const MARCH_2027: u64 = 1_803_859_200;

    #[test]
    fn names_are_rfc_4514_strings() {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString(PrintableString::try_from("DE").unwrap()),
        );
        dn.push(DnType::OrganizationName, "Example, Inc.");
        dn.push(
            DnType::LocalityName,
            DnValue::BmpString(BmpString::try_from("Zürich").unwrap()),
        );
        dn.push(DnType::OrganizationalUnitName, "+a;b<c>\"d\\");
        dn.push(DnType::CommonName, " #lead trail \u{1b}x ");
        dn.push(
            DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
            DnValue::Ia5String(Ia5String::try_from("a@b.c").unwrap()),
        );
        params.distinguished_name = dn;
        let report = describe(&der(params), false, at(0)).unwrap();
        // Last RDN first; the email address is an OID, so its value is the
        // hex of its DER encoding (IA5String, 5 octets).
        assert_eq!(
            report.subject,
            "1.2.840.113549.1.9.1=#16056140622e63,\
             CN=\\ #lead trail \\1Bx\\ ,\
             OU=\\+a\\;b\\<c\\>\\\"d\\\\,\
             L=Zürich,\
             O=Example\\, Inc.,\
             C=DE"
        );
        // Self-signed: the issuer is the subject.
        assert_eq!(report.issuer, report.subject);
        assert!(report.dns_names.is_empty());
        assert!(!report.verified);
    }

    #[test]
    fn dns_names_validity_and_days_left() {
        let mut params = CertificateParams::new(vec![
            "mail.example.test".to_owned(),
            "192.0.2.1".to_owned(),
            "alt.example.test".to_owned(),
        ])
        .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "mail.example.test");
        params.distinguished_name = dn;
        params.not_after = date_time_ymd(2027, 3, 1);
        let der = der(params);
        let report = describe(&der, true, at(MARCH_2027 - 28 * 86_400)).unwrap();
        assert_eq!(
            report,
            CertificateReport {
                subject: "CN=mail.example.test".into(),
                issuer: "CN=mail.example.test".into(),
                // The IP address is not a DNS name.
                dns_names: vec!["mail.example.test".into(), "alt.example.test".into()],
                not_after: "2027-03-01T00:00:00Z".into(),
                days_left: 28,
                verified: true,
            }
        );
        // Whole days, rounded down; negative once past.
        let days = |unix| describe(&der, true, at(unix)).unwrap().days_left;
        assert_eq!(days(MARCH_2027 - 86_400 - 1), 1);
        assert_eq!(days(MARCH_2027 - 1), 0);
        assert_eq!(days(MARCH_2027), 0);
        assert_eq!(days(MARCH_2027 + 1), -1);
        assert_eq!(days(MARCH_2027 + 86_400 + 1), -2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(describe(b"", true, at(0)).is_err());
        assert!(describe(b"\x30\x03\x02\x01\x01", true, at(0)).is_err());
        let mut der = der(CertificateParams::new(vec!["x.test".to_owned()]).unwrap());
        der.truncate(der.len() / 2);
        assert!(describe(&der, true, at(0)).is_err());
    }
}
