//! Refused input: which caller-supplied value, and why.
//!
//! A leaf module: it imports nothing from the crate, so every module that
//! checks input (an [`Address`](crate::Address) as it is built, say) can
//! report it without depending on [`Error`](crate::Error), which carries
//! addresses in its per-recipient results. `Error::InvalidInput` holds the
//! same two fields, and [`InvalidInput`] converts into it with `?`.

use core::fmt;

/// Which caller-supplied value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InputField {
    /// An envelope address (`MAIL FROM` or `RCPT TO`).
    Address,
    /// The name sent with `EHLO`/`HELO`.
    EhloName,
    /// The server name used for TLS checks and the credential guard.
    ServerName,
    /// The SASL user name.
    Username,
    /// The password or token (never echoed).
    Secret,
    /// A `MAIL` or `RCPT` parameter, DSN `ENVID` or `ORCPT` included.
    Parameter,
    /// The envelope as a whole (no recipients, say).
    Envelope,
    /// An `smtp://` or `smtps://` URL ([`SmtpUrl`](crate::SmtpUrl)).
    Url,
}

impl fmt::Display for InputField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputField::Address => "address",
            InputField::EhloName => "EHLO name",
            InputField::ServerName => "server name",
            InputField::Username => "user name",
            InputField::Secret => "password or token",
            InputField::Parameter => "parameter",
            InputField::Envelope => "envelope",
            InputField::Url => "URL",
        })
    }
}

/// A value the caller passed in is not valid; nothing was written.
///
/// What [`Address::new`](crate::Address::new) returns; everywhere else it
/// arrives as `Error::InvalidInput`, with the same fields and the same text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
#[non_exhaustive]
pub struct InvalidInput {
    /// Which value.
    pub field: InputField,
    /// Why, without echoing a secret.
    pub reason: String,
}

impl InvalidInput {
    pub(crate) fn new(field: InputField, reason: impl Into<String>) -> InvalidInput {
        InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_fields_name_themselves() {
        let names: Vec<String> = [
            InputField::Address,
            InputField::EhloName,
            InputField::ServerName,
            InputField::Username,
            InputField::Secret,
            InputField::Parameter,
            InputField::Envelope,
            InputField::Url,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "address",
                "EHLO name",
                "server name",
                "user name",
                "password or token",
                "parameter",
                "envelope",
                "URL"
            ]
        );
    }

    #[test]
    fn says_which_value_and_why() {
        let err = InvalidInput::new(InputField::EhloName, "has a space");
        assert_eq!(err.to_string(), "invalid EHLO name: has a space");
    }
}
