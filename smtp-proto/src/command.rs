//! Command arguments that can only be built valid, and the command lines
//! written from them (RFC 5321 §4.1).
//!
//! Every value that reaches a command line passes one check here, before
//! anything is written: no C0 control character or DEL, so no caller input
//! can end a line early and smuggle in a second command.

use crate::address::{is_control, Address};
use crate::error::{Error, InputField};
use bytes::{BufMut, BytesMut};
use core::fmt;

/// The name sent with `EHLO`/`HELO`: a domain or an address literal such as
/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.1.1).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EhloName(Box<str>);

impl EhloName {
    /// Checks and wraps an EHLO name.
    pub fn new(name: impl Into<String>) -> Result<EhloName, Error> {
        let name: String = name.into();
        let bad = |reason: &str| Err(Error::invalid(InputField::EhloName, reason));
        if name.is_empty() || name.len() > 255 {
            return bad("must be 1 to 255 octets");
        }
        if name.bytes().any(is_control) {
            return bad("contains a control character");
        }
        let ok = if let Some(literal) = name.strip_prefix('[') {
            literal.strip_suffix(']').is_some_and(|inner| {
                !inner.is_empty()
                    && inner
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-'))
            })
        } else {
            name.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        };
        if !ok {
            return bad("not a domain or address literal");
        }
        Ok(EhloName(name.into_boxed_str()))
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for EhloName {
    /// `localhost`, as most clients send when they have no better name.
    fn default() -> EhloName {
        EhloName("localhost".into())
    }
}

impl fmt::Debug for EhloName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EhloName({:?})", &*self.0)
    }
}

impl fmt::Display for EhloName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An extra `MAIL` or `RCPT` parameter, `KEYWORD[=value]` (RFC 5321 §4.1.2
/// esmtp-param): keyword of letters, digits and `-`; value of printable
/// ASCII other than `=` and space.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Parameter {
    keyword: Box<str>,
    value: Option<Box<str>>,
}

impl Parameter {
    /// Checks and builds a parameter.
    pub fn new(keyword: &str, value: Option<&str>) -> Result<Parameter, Error> {
        let bad = |reason: &str| Err(Error::invalid(InputField::Parameter, reason));
        if keyword.is_empty()
            || !keyword.as_bytes()[0].is_ascii_alphanumeric()
            || !keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("keyword must be letters, digits and '-'");
        }
        if let Some(value) = value {
            if value.is_empty() || !value.bytes().all(|b| (33..=126).contains(&b) && b != b'=') {
                return bad("value must be printable ASCII without '=' or space");
            }
        }
        Ok(Parameter {
            keyword: keyword.into(),
            value: value.map(Into::into),
        })
    }

    /// The keyword.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The value, if any.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    pub(crate) fn write(&self, out: &mut BytesMut) {
        out.put_u8(b' ');
        out.put_slice(self.keyword.as_bytes());
        if let Some(value) = &self.value {
            out.put_u8(b'=');
            out.put_slice(value.as_bytes());
        }
    }
}

impl fmt::Debug for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "Parameter({}={})", self.keyword, v),
            None => write!(f, "Parameter({})", self.keyword),
        }
    }
}

/// Encodes `text` as xtext (RFC 3461 §4): `+`, `=` and anything outside
/// `!`..`~` become `+XX`. Callers have already refused control characters.
pub(crate) fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Checks free text that will be xtext-encoded into a parameter (DSN `ENVID`,
/// `ORCPT`): no control characters, at most 100 octets (RFC 3461 §4.4).
pub(crate) fn check_xtext_source(text: &str, what: &str) -> Result<(), Error> {
    if text.bytes().any(is_control) {
        return Err(Error::invalid(
            InputField::Parameter,
            format!("{what} contains a control character"),
        ));
    }
    if text.is_empty() || text.len() > 100 {
        return Err(Error::invalid(
            InputField::Parameter,
            format!("{what} must be 1 to 100 octets"),
        ));
    }
    Ok(())
}

/// Appends `MAIL FROM:<addr>` (or `<>`) without the parameters or CRLF.
pub(crate) fn mail_from(out: &mut BytesMut, from: Option<&Address>) {
    out.put_slice(b"MAIL FROM:<");
    if let Some(from) = from {
        out.put_slice(from.as_str().as_bytes());
    }
    out.put_u8(b'>');
}

/// Appends `RCPT TO:<addr>` without the parameters or CRLF.
pub(crate) fn rcpt_to(out: &mut BytesMut, to: &Address) {
    out.put_slice(b"RCPT TO:<");
    out.put_slice(to.as_str().as_bytes());
    out.put_u8(b'>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_names() {
        for ok in [
            "localhost",
            "mail.example.com",
            "a-b.c",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
        ] {
            assert!(EhloName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "host\r\nMAIL FROM:<x>",
            "host\0",
            "host\x7f",
            "-a.b",
            "a..b",
            "[]",
            "[1.2.3.4",
            "ex_ample.com",
        ] {
            assert!(
                matches!(
                    EhloName::new(bad),
                    Err(Error::InvalidInput {
                        field: InputField::EhloName,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parameters() {
        assert!(Parameter::new("MT-PRIORITY", Some("3")).is_ok());
        assert!(Parameter::new("SMTPUTF8", None).is_ok());
        for (k, v) in [
            ("", None),
            ("A B", None),
            ("X", Some("a b")),
            ("X", Some("a\r\nRCPT TO:<x>")),
            ("X", Some("a=b")),
            ("X", Some("")),
            ("X\0", None),
        ] {
            assert!(Parameter::new(k, v).is_err(), "{k:?} {v:?}");
        }
    }

    #[test]
    fn parameters_keep_their_parts_and_write_them() {
        let with_value = Parameter::new("MT-PRIORITY", Some("3")).unwrap();
        assert_eq!(with_value.keyword(), "MT-PRIORITY");
        assert_eq!(with_value.value(), Some("3"));
        let bare = Parameter::new("SMTPUTF8", None).unwrap();
        assert_eq!(bare.value(), None);
        let mut out = BytesMut::new();
        with_value.write(&mut out);
        bare.write(&mut out);
        assert_eq!(&out[..], b" MT-PRIORITY=3 SMTPUTF8");
        assert_eq!(format!("{with_value:?}"), "Parameter(MT-PRIORITY=3)");
        assert_eq!(format!("{bare:?}"), "Parameter(SMTPUTF8)");
    }

    #[test]
    fn ehlo_names_show_as_given() {
        let name = EhloName::new("mail.example.com").unwrap();
        assert_eq!(name.to_string(), "mail.example.com");
        assert_eq!(format!("{name:?}"), r#"EhloName("mail.example.com")"#);
    }

    #[test]
    fn xtext_sources_are_1_to_100_octets() {
        assert!(check_xtext_source("", "ENVID").is_err());
        assert!(check_xtext_source("x", "ENVID").is_ok());
        assert!(check_xtext_source(&"x".repeat(100), "ENVID").is_ok());
        let err = check_xtext_source(&"x".repeat(101), "ENVID").unwrap_err();
        assert!(err.to_string().contains("ENVID must be 1 to 100"), "{err}");
        let err = check_xtext_source("a\x7fb", "ORCPT").unwrap_err();
        assert!(
            err.to_string().contains("ORCPT contains a control"),
            "{err}"
        );
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("rfc822;x@y"), "rfc822;x@y");
        assert!(check_xtext_source("id\r\n", "ENVID").is_err());
        assert!(check_xtext_source("id-1", "ENVID").is_ok());
    }
}
