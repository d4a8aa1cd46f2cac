//! A mail transaction: the envelope going in, per-recipient results coming out.

use crate::address::Address;
use crate::capabilities::Capabilities;
use crate::command::{self, check_xtext_source, xtext, Parameter};
use crate::data::Framing;
use crate::error::{Error, InputField};
use bytes::{BufMut, BytesMut};

// The results live with `Outcome` so that `Error`, which carries them, does
// not depend on this module, whose envelope checks report `Error`s.
pub(crate) use crate::outcome::{Delivery, RecipientResult};

/// What the body contains, which decides the `BODY=` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BodyType {
    /// Only 7-bit ASCII: no `BODY=` parameter.
    #[default]
    SevenBit,
    /// Bytes above 127 in CRLF-delimited lines: `BODY=8BITMIME` (RFC 6152),
    /// which the server must advertise.
    EightBitMime,
    /// Arbitrary bytes, sent as they are: `BODY=BINARYMIME` (RFC 3030 §3),
    /// which needs CHUNKING and BINARYMIME advertised and the exact size
    /// declared ([`Envelope::exact_size`]).
    BinaryMime,
}

impl BodyType {
    /// `EightBitMime` when any byte is above 127, else `SevenBit`.
    pub fn detect(body: &[u8]) -> BodyType {
        if body.is_ascii() {
            BodyType::SevenBit
        } else {
            BodyType::EightBitMime
        }
    }
}

/// DSN `RET=` (RFC 3461 §4.3): how much of the message a failure report returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DsnReturn {
    /// `RET=FULL`.
    Full,
    /// `RET=HDRS`.
    Headers,
}

/// DSN `NOTIFY=` (RFC 3461 §4.1) for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE`.
    pub failure: bool,
    /// `DELAY`.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };
}

/// One recipient of the envelope, with its DSN options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    address: Address,
    notify: Option<Notify>,
    orcpt: Option<String>,
}

impl Recipient {
    /// A recipient with no DSN options.
    pub fn new(address: Address) -> Recipient {
        Recipient {
            address,
            notify: None,
            orcpt: None,
        }
    }

    /// Sets `NOTIFY=` (needs DSN).
    pub fn notify(mut self, notify: Notify) -> Recipient {
        self.notify = Some(notify);
        self
    }

    /// Sets `ORCPT=rfc822;<original>` (needs DSN); refuses control characters.
    pub fn original_recipient(mut self, original: &str) -> Result<Recipient, Error> {
        check_xtext_source(original, "ORCPT")?;
        self.orcpt = Some(original.to_owned());
        Ok(self)
    }

    /// The address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    fn uses_dsn(&self) -> bool {
        self.notify.is_some() || self.orcpt.is_some()
    }
}

impl From<Address> for Recipient {
    fn from(address: Address) -> Recipient {
        Recipient::new(address)
    }
}

/// The envelope of one message: reverse-path, recipients and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    from: Option<Address>,
    to: Vec<Recipient>,
    size: Option<u64>,
    body: BodyType,
    ret: Option<DsnReturn>,
    envid: Option<String>,
    mail_params: Vec<Parameter>,
    exact: Option<u64>,
}

impl Envelope {
    /// An envelope from `from` (`None` is the null reverse-path `<>`, for
    /// bounces) to at least one recipient.
    pub fn new<R: Into<Recipient>>(
        from: Option<Address>,
        to: impl IntoIterator<Item = R>,
    ) -> Result<Envelope, Error> {
        let to: Vec<Recipient> = to.into_iter().map(Into::into).collect();
        if to.is_empty() {
            return Err(Error::invalid(InputField::Envelope, "no recipients"));
        }
        Ok(Envelope {
            from,
            to,
            size: None,
            body: BodyType::default(),
            ret: None,
            envid: None,
            mail_params: Vec::new(),
            exact: None,
        })
    }

    /// Declares the message size in octets as it will be sent (RFC 1870): sent
    /// as `SIZE=` and checked against the server's limit before `MAIL`.
    pub fn size(mut self, octets: u64) -> Envelope {
        self.size = Some(octets);
        self
    }

    /// Declares the body type (`BODY=8BITMIME`).
    pub fn body(mut self, body: BodyType) -> Envelope {
        self.body = body;
        self
    }

    /// Sets DSN `RET=` (needs DSN).
    pub fn dsn_return(mut self, ret: DsnReturn) -> Envelope {
        self.ret = Some(ret);
        self
    }

    /// Sets DSN `ENVID=` (needs DSN); refuses control characters.
    pub fn envelope_id(mut self, id: &str) -> Result<Envelope, Error> {
        check_xtext_source(id, "ENVID")?;
        self.envid = Some(id.to_owned());
        Ok(self)
    }

    /// Adds another `MAIL` parameter.
    pub fn mail_parameter(mut self, parameter: Parameter) -> Envelope {
        self.mail_params.push(parameter);
        self
    }

    /// Declares how many octets the body takes on the wire: after
    /// line-ending normalization ([`data::normalized_len`](crate::data::normalized_len))
    /// for 7-bit and 8-bit bodies, as it is for `BINARYMIME`. With it the
    /// session can send the body in one `BDAT n LAST` (RFC 3030) when the
    /// server offers CHUNKING: no dot-stuffing, and no round trip for `354`.
    /// The body written must then be exactly that long, or the session fails.
    pub fn exact_size(mut self, octets: u64) -> Envelope {
        self.exact = Some(octets);
        self
    }

    /// Fills in what a whole body tells — call after [`Envelope::body`]: its
    /// size (RFC 1870 allows the unstuffed size as the estimate),
    /// `BODY=8BITMIME` when it holds a byte above 127, and its exact size on
    /// the wire. What the caller already declared is kept.
    pub fn for_body(mut self, body: &[u8]) -> Envelope {
        if self.size.is_none() {
            self.size = Some(body.len() as u64);
        }
        if self.body == BodyType::SevenBit {
            self.body = BodyType::detect(body);
        }
        if self.exact.is_none() {
            self.exact = Some(if self.body == BodyType::BinaryMime {
                body.len() as u64
            } else {
                crate::data::normalized_len(body)
            });
        }
        self
    }

    /// How the body goes on the wire to a server with these capabilities:
    /// `BDAT` when CHUNKING is offered and the exact size is known (always
    /// for `BINARYMIME`, which [`Envelope::check`] ensured), else `DATA`.
    pub(crate) fn framing(&self, caps: &Capabilities) -> (Framing, Option<u64>) {
        match (self.body, self.exact) {
            (BodyType::BinaryMime, exact) => (Framing::Binary, exact),
            (_, Some(exact)) if caps.chunking() => (Framing::Chunked, Some(exact)),
            _ => (Framing::Data, None),
        }
    }

    /// The declared size, if any.
    pub fn declared_size(&self) -> Option<u64> {
        self.size
    }

    /// The reverse-path.
    pub fn from(&self) -> Option<&Address> {
        self.from.as_ref()
    }

    /// The recipients.
    pub fn recipients(&self) -> &[Recipient] {
        &self.to
    }

    fn needs_smtputf8(&self) -> bool {
        self.from.as_ref().is_some_and(|a| !a.is_ascii())
            || self.to.iter().any(|r| !r.address.is_ascii())
    }

    fn uses_dsn(&self) -> bool {
        self.ret.is_some() || self.envid.is_some() || self.to.iter().any(Recipient::uses_dsn)
    }

    /// Refuses, before anything is written, what this server cannot take.
    pub(crate) fn check(&self, caps: &Capabilities) -> Result<(), Error> {
        if self.needs_smtputf8() && !caps.smtputf8() {
            return Err(Error::ExtensionRequired {
                extension: "SMTPUTF8",
                needed_for: "a non-ASCII address",
            });
        }
        if self.body == BodyType::EightBitMime && !caps.eight_bit_mime() {
            return Err(Error::ExtensionRequired {
                extension: "8BITMIME",
                needed_for: "an 8-bit body",
            });
        }
        if self.body == BodyType::BinaryMime {
            for (offered, extension) in [
                (caps.chunking(), "CHUNKING"),
                (caps.binary_mime(), "BINARYMIME"),
            ] {
                if !offered {
                    return Err(Error::ExtensionRequired {
                        extension,
                        needed_for: "a binary body",
                    });
                }
            }
            if self.exact.is_none() {
                return Err(Error::invalid(
                    InputField::Envelope,
                    "a binary body needs its exact size declared",
                ));
            }
        }
        if self.uses_dsn() && !caps.dsn() {
            return Err(Error::ExtensionRequired {
                extension: "DSN",
                needed_for: "delivery status notification options",
            });
        }
        if let (Some(size), Some(limit)) = (self.size, caps.size_limit()) {
            if size > limit {
                return Err(Error::MessageTooLarge { size, limit });
            }
        }
        Ok(())
    }

    /// Appends the `MAIL FROM` line, CRLF included.
    pub(crate) fn write_mail(&self, caps: &Capabilities, out: &mut BytesMut) {
        command::mail_from(out, self.from.as_ref());
        if let (Some(size), Some(_)) = (self.size, caps.size()) {
            out.put_slice(format!(" SIZE={size}").as_bytes());
        }
        match self.body {
            BodyType::EightBitMime => out.put_slice(b" BODY=8BITMIME"),
            BodyType::BinaryMime => out.put_slice(b" BODY=BINARYMIME"),
            BodyType::SevenBit => {}
        }
        if self.needs_smtputf8() {
            out.put_slice(b" SMTPUTF8");
        }
        match self.ret {
            Some(DsnReturn::Full) => out.put_slice(b" RET=FULL"),
            Some(DsnReturn::Headers) => out.put_slice(b" RET=HDRS"),
            None => {}
        }
        if let Some(id) = &self.envid {
            out.put_slice(b" ENVID=");
            out.put_slice(xtext(id).as_bytes());
        }
        for param in &self.mail_params {
            param.write(out);
        }
        out.put_slice(b"\r\n");
    }

    /// Appends the `RCPT TO` line for recipient `index`, CRLF included.
    pub(crate) fn write_rcpt(&self, index: usize, out: &mut BytesMut) {
        let Some(rcpt) = self.to.get(index) else {
            return;
        };
        command::rcpt_to(out, &rcpt.address);
        if let Some(n) = rcpt.notify {
            out.put_slice(b" NOTIFY=");
            if n == Notify::NEVER {
                out.put_slice(b"NEVER");
            } else {
                let names = [
                    (n.success, "SUCCESS"),
                    (n.failure, "FAILURE"),
                    (n.delay, "DELAY"),
                ];
                let list: Vec<&str> = names
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, s)| *s)
                    .collect();
                out.put_slice(list.join(",").as_bytes());
            }
        }
        if let Some(orcpt) = &rcpt.orcpt {
            out.put_slice(b" ORCPT=rfc822;");
            out.put_slice(xtext(orcpt).as_bytes());
        }
        out.put_slice(b"\r\n");
    }
}
