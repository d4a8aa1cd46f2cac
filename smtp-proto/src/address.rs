//! Envelope addresses that can only be built valid.

use crate::input::{InputField, InvalidInput};
use core::fmt;
use std::sync::Arc;

/// The longest path RFC 5321 §4.5.3.1.3 allows is 256 octets, angle brackets
/// included.
pub const MAX_ADDRESS_LEN: usize = 254;

/// A mailbox for `MAIL FROM` or `RCPT TO`, checked when it is built.
///
/// Refused: the empty string (use `None` for the null reverse-path `<>`), any
/// C0 control character or DEL, angle brackets, white space outside a quoted
/// local part, a missing local part or domain, and more than
/// [`MAX_ADDRESS_LEN`] octets. `Postmaster` without a domain is allowed
/// (RFC 5321 §4.1.1.3). Non-ASCII addresses are valid here; the session sends
/// them only to servers that advertise SMTPUTF8 (RFC 6531).
///
/// Cloning shares the text: a recipient's result carries its address
/// without an allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address(Arc<str>);

impl Address {
    /// Checks and wraps an address such as `user@example.com`.
    ///
    /// The error is the input leaf type, not [`Error`](crate::Error) (which
    /// carries addresses in its per-recipient results); `?` converts it into
    /// `Error::InvalidInput`, with the same field and text.
    pub fn new(address: impl Into<String>) -> Result<Address, InvalidInput> {
        let address: String = address.into();
        validate(&address)?;
        Ok(Address(Arc::from(address)))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the address is all ASCII (otherwise it needs SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

fn validate(address: &str) -> Result<(), InvalidInput> {
    let bad = |reason: &str| Err(InvalidInput::new(InputField::Address, reason));
    if address.is_empty() {
        return bad("empty address (use no address for the null reverse-path <>)");
    }
    if address.len() > MAX_ADDRESS_LEN {
        return bad("longer than 254 octets");
    }
    if address.bytes().any(is_control) {
        return bad("contains a control character");
    }
    if address.contains(['<', '>']) {
        return bad("contains an angle bracket");
    }
    if address.eq_ignore_ascii_case("postmaster") {
        return Ok(());
    }
    let (local, domain) = split_mailbox(address).ok_or_else(|| {
        InvalidInput::new(InputField::Address, "not of the form local-part@domain")
    })?;
    if local.is_empty() || domain.is_empty() {
        return bad("not of the form local-part@domain");
    }
    if !local.starts_with('"') && local.contains(char::is_whitespace) {
        return bad("contains white space");
    }
    if domain.contains(char::is_whitespace) || domain.contains('@') {
        return bad("invalid domain");
    }
    Ok(())
}

/// Splits at the `@` that ends the local part, honouring a quoted local part.
fn split_mailbox(address: &str) -> Option<(&str, &str)> {
    if let Some(rest) = address.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    let end = 1 + i + 1;
                    let after = &address[end..];
                    return after
                        .strip_prefix('@')
                        .map(|domain| (&address[..end], domain));
                }
                _ => {}
            }
        }
        return None;
    }
    let at = address.rfind('@')?;
    let local = &address[..at];
    if local.contains('@') {
        return None;
    }
    Some((local, &address[at + 1..]))
}

/// C0 controls and DEL: what may never reach a command line (RFC 5321 §4.1.2).
pub(crate) fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({:?})", &*self.0)
    }
}

impl core::str::FromStr for Address {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Address, InvalidInput> {
        Address::new(s)
    }
}

impl TryFrom<&str> for Address {
    type Error = InvalidInput;

    fn try_from(s: &str) -> Result<Address, InvalidInput> {
        Address::new(s)
    }
}

impl TryFrom<String> for Address {
    type Error = InvalidInput;

    fn try_from(s: String) -> Result<Address, InvalidInput> {
        Address::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "a@b",
            "user@example.com",
            "first.last+tag@sub.example.org",
            "\"john doe\"@example.com",
            "\"a@b\"@example.com",
            "user@[192.0.2.1]",
            "Postmaster",
            "jörg@bücher.example",
        ] {
            assert!(Address::new(ok).is_ok(), "{ok}");
        }
        assert!(!Address::new("jörg@x").unwrap().is_ascii());
    }

    #[test]
    fn refuses_injection_and_junk() {
        for bad in [
            "",
            "a@b>\r\nRCPT TO:<c@d",
            "a@b\r\n",
            "a@b\n",
            "a\0@b",
            "a@b\x7f",
            "a@b\t",
            "<a@b>",
            "a b@c",
            "a@b c",
            "nodomain",
            "@b",
            "a@",
            "a@b@c",
            "\"unterminated@b",
        ] {
            let err = Address::new(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    InvalidInput {
                        field: InputField::Address,
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
        assert!(Address::new(format!("{}@b", "a".repeat(300))).is_err());
    }

    #[test]
    fn length_limit_is_inclusive() {
        // 252 + "@b" = 254 octets: the longest path RFC 5321 §4.5.3.1.3 allows.
        let longest = format!("{}@b", "a".repeat(MAX_ADDRESS_LEN - 2));
        assert_eq!(longest.len(), MAX_ADDRESS_LEN);
        assert!(Address::new(&longest).is_ok());
        assert!(Address::new(format!("a{longest}")).is_err());
    }

    #[test]
    fn escaped_quotes_stay_inside_a_quoted_local_part() {
        // The `\"` does not close the quoted string; the `@` inside it does
        // not split the address.
        let quoted = r#""a\"@b"@example.org"#;
        assert!(Address::new(quoted).is_ok(), "{quoted}");
        assert_eq!(split_mailbox(quoted), Some((r#""a\"@b""#, "example.org")));
        // An escaped backslash does not escape the closing quote.
        assert_eq!(
            split_mailbox(r#""a\\"@example.org"#),
            Some((r#""a\\""#, "example.org"))
        );
    }

    #[test]
    fn display_and_debug_show_the_address() {
        let address = Address::new("user@example.com").unwrap();
        assert_eq!(address.to_string(), "user@example.com");
        assert_eq!(format!("{address:?}"), r#"Address("user@example.com")"#);
    }
}
