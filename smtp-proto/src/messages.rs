//! Messages built with the libraries Rust applications already use, turned
//! into what a session sends: an [`Envelope`] and the message's bytes.
//! Then `send(envelope, &bytes)` on any adapter, which declares the size
//! and 8BITMIME from the bytes (and SMTPUTF8 from the addresses) as for
//! any message.
//!
//! - `lettre` feature: [`from_lettre`], a `lettre::Message` (its envelope
//!   and `formatted()` bytes; lettre has already dropped `Bcc`).
//! - `mail-builder` feature: [`from_mail_builder`], Stalwart's
//!   `MessageBuilder`; the envelope comes from its `Sender` (else `From`)
//!   and its `To`, `Cc` and `Bcc` headers, and `Bcc` is taken out of the
//!   bytes sent.
//!
//! ```
//! # #[cfg(feature = "lettre")] {
//! let message = lettre::Message::builder()
//!     .from("Me <me@example.com>".parse().unwrap())
//!     .to("you@example.org".parse().unwrap())
//!     .bcc("hidden@example.net".parse().unwrap())
//!     .subject("Hello")
//!     .body(String::from("Hi!"))
//!     .unwrap();
//! let (envelope, bytes) = smtp_proto::messages::from_lettre(&message)?;
//! assert_eq!(envelope.recipients().len(), 2);
//! assert!(!String::from_utf8_lossy(&bytes).contains("hidden@"));
//! // client.send(envelope, &bytes)?;
//! # }
//! # Ok::<(), smtp_proto::Error>(())
//! ```

#[cfg(any(feature = "lettre", feature = "mail-builder"))]
use crate::address::Address;
#[cfg(any(feature = "lettre", feature = "mail-builder"))]
use crate::error::Error;
#[cfg(feature = "mail-builder")]
use crate::error::InputField;
#[cfg(any(feature = "lettre", feature = "mail-builder"))]
use crate::transaction::Envelope;

/// The envelope and the bytes of a `lettre::Message`: its envelope's
/// sender (none for `<>`) and recipients, and `formatted()`. An address
/// the core refuses (a control character, say) is
/// [`Error::InvalidInput`].
#[cfg(feature = "lettre")]
pub fn from_lettre(message: &lettre::Message) -> Result<(Envelope, Vec<u8>), Error> {
    let envelope = message.envelope();
    let from = envelope
        .from()
        .map(|from| Address::new(AsRef::<str>::as_ref(from)))
        .transpose()?;
    let to = envelope
        .to()
        .iter()
        .map(|to| Address::new(AsRef::<str>::as_ref(to)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Envelope::new(from, to)?, message.formatted()))
}

/// The envelope and the bytes of a `mail_builder::MessageBuilder`: the
/// sender is its `Sender` header's address, else its `From`'s (the first
/// one); the recipients are every address of its `To`, `Cc` and `Bcc`
/// headers, in that order, each once. `Bcc` is removed before the message
/// is written, so no recipient learns of the others. A message without a
/// sender or without a recipient, or with an address the core refuses, is
/// [`Error::InvalidInput`].
#[cfg(feature = "mail-builder")]
pub fn from_mail_builder(
    mut builder: mail_builder::MessageBuilder<'_>,
) -> Result<(Envelope, Vec<u8>), Error> {
    use mail_builder::headers::HeaderType;

    let field = |builder: &mail_builder::MessageBuilder<'_>, name: &str| -> Vec<String> {
        let mut found = Vec::new();
        for (header, value) in &builder.headers {
            if header.eq_ignore_ascii_case(name) {
                if let HeaderType::Address(address) = value {
                    collect(address, &mut found);
                }
            }
        }
        found
    };
    let sender = field(&builder, "Sender")
        .into_iter()
        .chain(field(&builder, "From"))
        .next()
        .ok_or_else(|| Error::invalid(InputField::Envelope, "the message has no From or Sender"))?;
    let mut recipients: Vec<String> = Vec::new();
    for name in ["To", "Cc", "Bcc"] {
        for address in field(&builder, name) {
            if !recipients
                .iter()
                .any(|seen| seen.eq_ignore_ascii_case(&address))
            {
                recipients.push(address);
            }
        }
    }
    builder
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("Bcc"));
    let from = Address::new(sender)?;
    let to = recipients
        .into_iter()
        .map(Address::new)
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(Some(from), to)?;
    let bytes = builder.write_to_vec().map_err(|err| {
        Error::invalid(InputField::Envelope, format!("writing the message: {err}"))
    })?;
    Ok((envelope, bytes))
}

/// Every e-mail address in `address` (a list or a group flattened).
#[cfg(feature = "mail-builder")]
fn collect(address: &mail_builder::headers::address::Address<'_>, into: &mut Vec<String>) {
    use mail_builder::headers::address::Address as A;
    match address {
        A::Address(one) => into.push(one.email.to_string()),
        A::Group(group) => group.addresses.iter().for_each(|a| collect(a, into)),
        A::List(list) => list.iter().for_each(|a| collect(a, into)),
    }
}

#[cfg(all(test, feature = "mail-builder"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use mail_builder::MessageBuilder;

    #[test]
    fn mail_builder_envelope_from_headers_and_bcc_stripped() {
        let builder = MessageBuilder::new()
            .from(("Me", "me@example.com"))
            .to(vec![
                ("You", "you@example.org"),
                ("Again", "YOU@example.org"),
            ])
            .cc("cc@example.net")
            .bcc("hidden@example.net")
            .subject("Hello")
            .text_body("Hi!");
        let (envelope, bytes) = from_mail_builder(builder).unwrap();
        assert_eq!(envelope.from().map(Address::as_str), Some("me@example.com"));
        let to: Vec<&str> = envelope
            .recipients()
            .iter()
            .map(|r| r.address().as_str())
            .collect();
        assert_eq!(
            to,
            ["you@example.org", "cc@example.net", "hidden@example.net"]
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Subject: Hello"), "{text}");
        assert!(
            !text.contains("hidden@") && !text.to_ascii_lowercase().contains("bcc:"),
            "{text}"
        );
    }

    #[test]
    fn the_sender_header_wins_and_a_message_without_one_is_refused() {
        let builder = MessageBuilder::new()
            .from("author@example.com")
            .sender("agent@example.com")
            .to("you@example.org")
            .text_body("x");
        let (envelope, _) = from_mail_builder(builder).unwrap();
        assert_eq!(
            envelope.from().map(Address::as_str),
            Some("agent@example.com")
        );

        let err = from_mail_builder(MessageBuilder::new().to("you@example.org").text_body("x"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        let err = from_mail_builder(MessageBuilder::new().from("me@example.com").text_body("x"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        let err = from_mail_builder(
            MessageBuilder::new()
                .from("me@example.com")
                .to("bad\r\naddress@example.org")
                .text_body("x"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
}
