//! What a server offers, read from its EHLO reply (RFC 5321 §4.1.1.1).
//!
//! Every line after the first is `keyword [param ...]`. Keywords are matched
//! case-insensitively and as whole tokens, so `XPLAIN` never counts as `PLAIN`
//! and `8BITMIMEX` never as `8BITMIME`. Tokens are separated by ASCII white
//! space; repeated spaces, tabs and leading or trailing white space are
//! tolerated because real servers send them.
//!
//! Merging rules, for servers that repeat themselves:
//!
//! - Each keyword appears once in [`Capabilities::extensions`], at the position
//!   of its first line.
//! - A repeated keyword line replaces the parameters of the earlier one (the
//!   last line wins), so `SIZE 100` then `SIZE 200` means a limit of 200.
//! - `AUTH` is the exception: every `AUTH` line and every legacy `AUTH=`
//!   line adds its mechanisms, duplicates dropped, in advertised order.
//!
//! Hostile or broken input: a token that is not UTF-8 or holds a control
//! character is skipped (a line whose keyword is such a token is skipped
//! whole); only the first [`MAX_LINES`] lines and the first [`MAX_PARAMS`]
//! parameters of a line are read. Nothing here panics.

use crate::mechanism::Mechanism;
use crate::reply::Reply;

/// Keyword lines read; later ones are ignored. The longest real EHLO replies
/// have about 20 lines, and the reply parser already stops at 128.
pub const MAX_LINES: usize = 256;

/// Parameter tokens read per line; later ones are ignored. Real lines have a
/// handful (AUTH lists rarely pass ten mechanisms).
pub const MAX_PARAMS: usize = 64;

/// The extensions a server advertised in its EHLO reply.
///
/// The default value advertises nothing, which is also what a server that
/// answered `HELO` (or a bare `250` to EHLO) offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// One entry per keyword, in order of first appearance.
    extensions: Vec<Extension>,
    /// Kept apart from the `AUTH` entry's strings so callers get parsed
    /// mechanisms without re-parsing on every look-up.
    mechanisms: Vec<Mechanism>,
}

/// One advertised extension: its keyword and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    keyword: String,
    params: Vec<String>,
}

impl Extension {
    /// The keyword, ASCII upper-cased (`size` is reported as `SIZE`).
    ///
    /// Legacy `AUTH=MECH` lines are reported under `AUTH`.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The parameters as sent, case preserved, in order.
    ///
    /// For `AUTH` these are the merged mechanism names in their canonical
    /// upper-case spelling, the same list as [`Capabilities::auth_mechanisms`].
    pub fn params(&self) -> &[String] {
        &self.params
    }
}

impl Capabilities {
    /// Reads the lines of an EHLO reply *after* the first (greeting) line:
    /// each is `keyword [params...]`, as yielded by [`Reply::lines`].
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in lines.into_iter().take(MAX_LINES) {
            caps.add_line(line);
        }
        caps
    }

    /// Reads a whole EHLO reply, skipping its first line (the server's name
    /// and greeting text).
    ///
    /// A reply that is not `2yz` advertises nothing: its lines are error
    /// text, not keywords.
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        if !reply.is_positive() {
            return Capabilities::default();
        }
        Capabilities::parse(reply.lines().skip(1))
    }

    /// `STARTTLS` (RFC 3207).
    pub fn starttls(&self) -> bool {
        self.has("STARTTLS")
    }

    /// `PIPELINING` (RFC 2920).
    pub fn pipelining(&self) -> bool {
        self.has("PIPELINING")
    }

    /// `SIZE` (RFC 1870): `None` when not advertised, otherwise the limit in
    /// octets, where `0` means no fixed limit.
    ///
    /// `SIZE` alone and `SIZE 0` give `Some(0)` (RFC 1870 §4). So does a
    /// parameter that is not a plain decimal number or does not fit in a
    /// `u64`: the server offers the extension but no limit the client can
    /// enforce, and the server still refuses what is too large. When `SIZE`
    /// is repeated, the last line wins.
    pub fn size(&self) -> Option<u64> {
        let ext = self.extension("SIZE")?;
        Some(
            ext.params
                .first()
                .and_then(|p| parse_decimal(p))
                .unwrap_or(0),
        )
    }

    /// The limit worth checking a message against before sending: `None` when
    /// `SIZE` is not advertised or gives no fixed limit.
    pub fn size_limit(&self) -> Option<u64> {
        self.size().filter(|&limit| limit != 0)
    }

    /// `8BITMIME` (RFC 6152).
    pub fn eight_bit_mime(&self) -> bool {
        self.has("8BITMIME")
    }

    /// `SMTPUTF8` (RFC 6531).
    pub fn smtputf8(&self) -> bool {
        self.has("SMTPUTF8")
    }

    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub fn enhanced_status_codes(&self) -> bool {
        self.has("ENHANCEDSTATUSCODES")
    }

    /// `CHUNKING`, the `BDAT` command (RFC 3030).
    pub fn chunking(&self) -> bool {
        self.has("CHUNKING")
    }

    /// `BINARYMIME` (RFC 3030).
    pub fn binary_mime(&self) -> bool {
        self.has("BINARYMIME")
    }

    /// `DSN`, delivery status notifications (RFC 3461).
    pub fn dsn(&self) -> bool {
        self.has("DSN")
    }

    /// Whether any `AUTH` or legacy `AUTH=` line was seen (RFC 4954), even
    /// one that lists no mechanism.
    pub fn auth_advertised(&self) -> bool {
        self.has("AUTH")
    }

    /// The SASL mechanisms offered, in advertised order, each once, `AUTH`
    /// and legacy `AUTH=` lines merged.
    pub fn auth_mechanisms(&self) -> &[Mechanism] {
        &self.mechanisms
    }

    /// Whether `mechanism` was offered, matched as a whole name.
    pub fn supports_auth(&self, mechanism: &Mechanism) -> bool {
        self.mechanisms.contains(mechanism)
    }

    /// The extension advertised under `keyword`, matched case-insensitively;
    /// works for keywords this crate does not know.
    pub fn extension(&self, keyword: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|ext| ext.keyword.eq_ignore_ascii_case(keyword))
    }

    /// Every advertised extension, in order of first appearance.
    pub fn extensions(&self) -> impl Iterator<Item = &Extension> {
        self.extensions.iter()
    }

    fn has(&self, keyword: &str) -> bool {
        self.extension(keyword).is_some()
    }

    fn add_line(&mut self, line: &[u8]) {
        let mut tokens = line
            .split(u8::is_ascii_whitespace)
            .filter(|token| !token.is_empty());
        let Some(keyword) = tokens.next() else {
            return;
        };
        // Without a trustworthy keyword the parameters mean nothing.
        let Some(keyword) = text_token(keyword) else {
            return;
        };
        let params = tokens.take(MAX_PARAMS).filter_map(text_token);

        // Legacy form from before RFC 2554 was final: `AUTH=LOGIN PLAIN`
        // offers LOGIN and PLAIN; old Outlook clients only read this form.
        let legacy_first = keyword
            .get(..5)
            .filter(|prefix| prefix.eq_ignore_ascii_case("AUTH="))
            .and_then(|_| keyword.get(5..));
        if let Some(first) = legacy_first {
            let first = Some(first).filter(|m| !m.is_empty());
            self.add_mechanisms(first.into_iter().chain(params));
        } else if keyword.eq_ignore_ascii_case("AUTH") {
            self.add_mechanisms(params);
        } else {
            let keyword = keyword.to_ascii_uppercase();
            let params = params.map(str::to_owned).collect();
            match self.extensions.iter_mut().find(|e| e.keyword == keyword) {
                Some(ext) => ext.params = params,
                None => self.extensions.push(Extension { keyword, params }),
            }
        }
    }

    fn add_mechanisms<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        let index = match self.extensions.iter().position(|e| e.keyword == "AUTH") {
            Some(index) => index,
            None => {
                self.extensions.push(Extension {
                    keyword: "AUTH".to_owned(),
                    params: Vec::new(),
                });
                self.extensions.len() - 1
            }
        };
        for name in names {
            let mechanism = Mechanism::parse(name);
            if self.mechanisms.contains(&mechanism) {
                continue;
            }
            if let Some(ext) = self.extensions.get_mut(index) {
                ext.params.push(mechanism.as_str().to_owned());
            }
            self.mechanisms.push(mechanism);
        }
    }
}

/// A token usable as text: UTF-8 without control characters, so nothing
/// reported or logged from it can forge terminal output or log lines.
fn text_token(token: &[u8]) -> Option<&str> {
    let text = core::str::from_utf8(token).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

/// Digits only: `str::parse` would also take a leading `+`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
// The workspace denies unwrap for library code; a failed unwrap is how a test fails.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ehlo(bytes: &[u8]) -> Capabilities {
        Capabilities::from_ehlo(&Reply::parse(bytes).unwrap())
    }

    fn keywords(caps: &Capabilities) -> Vec<&str> {
        caps.extensions().map(Extension::keyword).collect()
    }

    fn mechanisms(names: &[&str]) -> Vec<Mechanism> {
        names.iter().map(|n| Mechanism::parse(n)).collect()
    }

    #[test]
    fn microsoft_365_after_starttls() {
        let caps = ehlo(
            b"250-AM0PR01CA0001.outlook.office365.com Hello [203.0.113.5]\r\n\
              250-SIZE 157286400\r\n\
              250-PIPELINING\r\n\
              250-DSN\r\n\
              250-ENHANCEDSTATUSCODES\r\n\
              250-AUTH LOGIN XOAUTH2\r\n\
              250-8BITMIME\r\n\
              250-BINARYMIME\r\n\
              250-CHUNKING\r\n\
              250 SMTPUTF8\r\n",
        );
        assert_eq!(caps.size(), Some(157_286_400));
        assert_eq!(caps.size_limit(), Some(157_286_400));
        assert!(caps.pipelining());
        assert!(caps.dsn());
        assert!(caps.enhanced_status_codes());
        assert!(caps.eight_bit_mime());
        assert!(caps.binary_mime());
        assert!(caps.chunking());
        assert!(caps.smtputf8());
        assert!(!caps.starttls(), "not offered again inside TLS");
        assert!(caps.auth_advertised());
        assert_eq!(
            caps.auth_mechanisms(),
            [Mechanism::Login, Mechanism::XOAuth2]
        );
        assert!(!caps.supports_auth(&Mechanism::Plain));
        assert_eq!(
            keywords(&caps),
            [
                "SIZE",
                "PIPELINING",
                "DSN",
                "ENHANCEDSTATUSCODES",
                "AUTH",
                "8BITMIME",
                "BINARYMIME",
                "CHUNKING",
                "SMTPUTF8"
            ]
        );
    }

    #[test]
    fn microsoft_365_before_starttls() {
        let caps = ehlo(
            b"250-AM0PR01CA0001.outlook.office365.com Hello [203.0.113.5]\r\n\
              250-SIZE 157286400\r\n\
              250-PIPELINING\r\n\
              250-DSN\r\n\
              250-ENHANCEDSTATUSCODES\r\n\
              250-STARTTLS\r\n\
              250-8BITMIME\r\n\
              250-BINARYMIME\r\n\
              250-CHUNKING\r\n\
              250 SMTPUTF8\r\n",
        );
        assert!(caps.starttls());
        assert!(!caps.auth_advertised());
        assert!(caps.auth_mechanisms().is_empty());
        assert_eq!(caps.extension("AUTH"), None);
        assert_eq!(caps.size(), Some(157_286_400));
    }

    #[test]
    fn gmail() {
        let caps = ehlo(
            b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n\
              250-SIZE 35882577\r\n\
              250-8BITMIME\r\n\
              250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n\
              250-ENHANCEDSTATUSCODES\r\n\
              250-PIPELINING\r\n\
              250-CHUNKING\r\n\
              250 SMTPUTF8\r\n",
        );
        assert_eq!(
            caps.auth_mechanisms(),
            mechanisms(&[
                "LOGIN",
                "PLAIN",
                "XOAUTH2",
                "PLAIN-CLIENTTOKEN",
                "OAUTHBEARER",
                "XOAUTH"
            ])
        );
        assert!(caps.supports_auth(&Mechanism::OAuthBearer));
        assert!(caps.supports_auth(&Mechanism::parse("xoauth")));
        assert_eq!(caps.size_limit(), Some(35_882_577));
        assert!(!caps.starttls() && !caps.dsn() && !caps.binary_mime());
        assert!(caps.smtputf8() && caps.chunking() && caps.pipelining());
    }

    #[test]
    fn postfix_with_both_auth_forms() {
        let caps = ehlo(
            b"250-mail.example.com\r\n\
              250-PIPELINING\r\n\
              250-SIZE 10240000\r\n\
              250-VRFY\r\n\
              250-ETRN\r\n\
              250-STARTTLS\r\n\
              250-AUTH PLAIN LOGIN\r\n\
              250-AUTH=PLAIN LOGIN\r\n\
              250-ENHANCEDSTATUSCODES\r\n\
              250-8BITMIME\r\n\
              250-DSN\r\n\
              250-SMTPUTF8\r\n\
              250 CHUNKING\r\n",
        );
        assert_eq!(caps.auth_mechanisms(), [Mechanism::Plain, Mechanism::Login]);
        assert_eq!(
            caps.extension("auth").map(Extension::params),
            Some(&["PLAIN".to_owned(), "LOGIN".to_owned()][..])
        );
        assert!(caps.extension("VRFY").is_some());
        assert!(caps.extension("etrn").is_some());
        assert_eq!(
            caps.extensions().filter(|e| e.keyword() == "AUTH").count(),
            1
        );
        assert!(caps.starttls() && caps.dsn() && caps.smtputf8() && caps.chunking());
        assert_eq!(caps.size(), Some(10_240_000));
    }

    #[test]
    fn exim() {
        let caps = ehlo(
            b"250-mx.example.org Hello client.example.com [192.0.2.1]\r\n\
              250-SIZE 52428800\r\n\
              250-LIMITS MAILMAX=1000 RCPTMAX=50000\r\n\
              250-8BITMIME\r\n\
              250-PIPELINING\r\n\
              250-PIPECONNECT\r\n\
              250-AUTH PLAIN LOGIN CRAM-MD5\r\n\
              250-CHUNKING\r\n\
              250-STARTTLS\r\n\
              250-PRDR\r\n\
              250 HELP\r\n",
        );
        assert_eq!(
            caps.auth_mechanisms(),
            mechanisms(&["PLAIN", "LOGIN", "CRAM-MD5"])
        );
        assert_eq!(
            caps.extension("Limits").map(Extension::params),
            Some(&["MAILMAX=1000".to_owned(), "RCPTMAX=50000".to_owned()][..])
        );
        assert!(caps.extension("PIPECONNECT").is_some());
        assert!(caps.extension("PIPE").is_none());
        assert!(caps.extension("PRDR").is_some() && caps.extension("HELP").is_some());
        assert!(caps.pipelining() && caps.starttls() && caps.chunking());
        assert!(!caps.smtputf8() && !caps.dsn());
    }

    #[test]
    fn aiosmtpd() {
        let caps = ehlo(
            b"250-localhost.localdomain\r\n\
              250-SIZE 33554432\r\n\
              250-8BITMIME\r\n\
              250-SMTPUTF8\r\n\
              250-AUTH LOGIN PLAIN\r\n\
              250 HELP\r\n",
        );
        assert_eq!(caps.size(), Some(33_554_432));
        assert_eq!(caps.auth_mechanisms(), [Mechanism::Login, Mechanism::Plain]);
        assert!(caps.eight_bit_mime() && caps.smtputf8());
        assert!(!caps.pipelining() && !caps.starttls());
        assert_eq!(
            keywords(&caps),
            ["SIZE", "8BITMIME", "SMTPUTF8", "AUTH", "HELP"]
        );
    }

    #[test]
    fn legacy_auth_merged_with_auth_in_advertised_order() {
        let caps = ehlo(
            b"250-mx\r\n250-AUTH=LOGIN CRAM-MD5\r\n250-AUTH PLAIN login\r\n250 auth=Plain XOAUTH2\r\n",
        );
        assert!(caps.auth_advertised());
        assert_eq!(
            caps.auth_mechanisms(),
            mechanisms(&["LOGIN", "CRAM-MD5", "PLAIN", "XOAUTH2"])
        );
        assert_eq!(keywords(&caps), ["AUTH"]);
        assert_eq!(caps.extension("AUTH=LOGIN"), None);
    }

    #[test]
    fn auth_without_mechanisms_is_still_advertised() {
        for reply in [&b"250-mx\r\n250 AUTH\r\n"[..], b"250-mx\r\n250 AUTH=\r\n"] {
            let caps = ehlo(reply);
            assert!(caps.auth_advertised(), "{reply:?}");
            assert!(caps.auth_mechanisms().is_empty());
        }
    }

    #[test]
    fn mechanisms_are_whole_tokens() {
        let caps = ehlo(b"250-mx\r\n250 AUTH XPLAIN LOGIN-MD5\r\n");
        assert!(!caps.supports_auth(&Mechanism::Plain));
        assert!(!caps.supports_auth(&Mechanism::Login));
        assert_eq!(caps.auth_mechanisms(), mechanisms(&["XPLAIN", "LOGIN-MD5"]));
    }

    #[test]
    fn keywords_are_whole_tokens() {
        let caps = ehlo(b"250-mx\r\n250-STARTTLSX\r\n250-XPIPELINING\r\n250 AUTHX PLAIN\r\n");
        assert!(!caps.starttls() && !caps.pipelining() && !caps.auth_advertised());
        assert_eq!(keywords(&caps), ["STARTTLSX", "XPIPELINING", "AUTHX"]);
    }

    #[test]
    fn mixed_case_keywords() {
        let caps = ehlo(
            b"250-mx\r\n250-StartTLS\r\n250-pipelining\r\n250-Size 1000\r\n250-auth plain Login\r\n250 8bitmime\r\n",
        );
        assert!(caps.starttls() && caps.pipelining() && caps.eight_bit_mime());
        assert_eq!(caps.size(), Some(1000));
        assert_eq!(caps.auth_mechanisms(), [Mechanism::Plain, Mechanism::Login]);
        assert_eq!(
            keywords(&caps),
            ["STARTTLS", "PIPELINING", "SIZE", "AUTH", "8BITMIME"]
        );
        assert!(caps.extension("sTaRtTlS").is_some());
    }

    #[test]
    fn size_variants() {
        let size = |line: &str| ehlo(format!("250-mx\r\n250 {line}\r\n").as_bytes());
        assert_eq!(size("SIZE").size(), Some(0));
        assert_eq!(size("SIZE").size_limit(), None);
        assert_eq!(size("SIZE 0").size(), Some(0));
        assert_eq!(size("SIZE 0").size_limit(), None);
        assert_eq!(size("SIZE unlimited").size(), Some(0));
        assert_eq!(size("SIZE +100").size(), Some(0));
        assert_eq!(size("SIZE -1").size(), Some(0));
        assert_eq!(size("SIZE 99999999999999999999999").size(), Some(0));
        assert_eq!(size("SIZE 18446744073709551615").size(), Some(u64::MAX));
        assert_eq!(size("SIZE 0100").size(), Some(100));
        assert_eq!(size("SIZE 52428800 extra").size_limit(), Some(52_428_800));
        assert_eq!(size("PIPELINING").size(), None);
        assert_eq!(size("PIPELINING").size_limit(), None);
    }

    #[test]
    fn repeated_keyword_last_line_wins() {
        let caps = ehlo(b"250-mx\r\n250-SIZE 100\r\n250-DSN\r\n250 size 200\r\n");
        assert_eq!(caps.size(), Some(200));
        assert_eq!(keywords(&caps), ["SIZE", "DSN"]);
        let caps = ehlo(b"250-mx\r\n250-SIZE 100\r\n250 SIZE\r\n");
        assert_eq!(caps.size(), Some(0));
        let caps = ehlo(b"250-mx\r\n250-X-FOO a b\r\n250 x-foo c\r\n");
        assert_eq!(
            caps.extension("X-FOO").map(Extension::params),
            Some(&["c".to_owned()][..])
        );
    }

    #[test]
    fn unknown_keywords_are_kept_with_params() {
        let caps = ehlo(b"250-mx\r\n250-X-EXPS GSSAPI NTLM\r\n250-XEXCH50\r\n250 x-link2state\r\n");
        let exps = caps.extension("x-exps").unwrap();
        assert_eq!(exps.keyword(), "X-EXPS");
        assert_eq!(exps.params(), ["GSSAPI", "NTLM"]);
        assert!(caps.extension("XEXCH50").unwrap().params().is_empty());
        assert_eq!(keywords(&caps), ["X-EXPS", "XEXCH50", "X-LINK2STATE"]);
        assert!(!caps.auth_advertised(), "X-EXPS is not AUTH");
    }

    #[test]
    fn empty_ehlo_advertises_nothing() {
        for reply in [&b"250 mx.example.com\r\n"[..], b"250\r\n"] {
            let caps = ehlo(reply);
            assert_eq!(caps, Capabilities::default());
            assert_eq!(caps.extensions().count(), 0);
            assert_eq!(caps.size(), None);
            assert!(!caps.auth_advertised());
        }
        assert_eq!(Capabilities::parse([]), Capabilities::default());
    }

    #[test]
    fn failed_ehlo_advertises_nothing() {
        let caps = ehlo(b"502-5.5.1 Unrecognized command\r\n502 STARTTLS\r\n");
        assert_eq!(caps, Capabilities::default());
    }

    #[test]
    fn odd_whitespace_is_tolerated() {
        let caps = ehlo(
            b"250-mx\r\n250-  SIZE \t 2048  \r\n250-\tAUTH\t\tPLAIN   LOGIN\t\r\n250-   \r\n250-\r\n250 DSN\n",
        );
        assert_eq!(caps.size(), Some(2048));
        assert_eq!(caps.auth_mechanisms(), [Mechanism::Plain, Mechanism::Login]);
        assert_eq!(keywords(&caps), ["SIZE", "AUTH", "DSN"]);
    }

    #[test]
    fn bad_tokens_are_skipped() {
        let caps = Capabilities::parse([
            &b"PIPE\xffLINING"[..],
            b"\x1b[31mSTARTTLS",
            b"AUTH PL\x00AIN LOGIN caf\xe9 XOAUTH2",
            b"X-UTF8 caf\xc3\xa9 \x7f",
            b"DSN",
        ]);
        assert!(!caps.pipelining() && !caps.starttls());
        assert_eq!(
            caps.auth_mechanisms(),
            [Mechanism::Login, Mechanism::XOAuth2]
        );
        assert_eq!(
            caps.extension("x-utf8").map(Extension::params),
            Some(&["café".to_owned()][..])
        );
        assert_eq!(keywords(&caps), ["AUTH", "X-UTF8", "DSN"]);
    }

    #[test]
    fn work_is_bounded() {
        let lines: Vec<String> = (0..MAX_LINES + 10).map(|i| format!("X-{i}")).collect();
        let caps = Capabilities::parse(lines.iter().map(|l| l.as_bytes()));
        assert_eq!(caps.extensions().count(), MAX_LINES);
        assert!(caps.extension(&format!("X-{}", MAX_LINES)).is_none());

        let params: Vec<String> = (0..MAX_PARAMS + 10).map(|i| format!("P{i}")).collect();
        let line = format!("X-MANY {}", params.join(" "));
        let caps = Capabilities::parse([line.as_bytes()]);
        assert_eq!(
            caps.extension("X-MANY").map(Extension::params),
            Some(&params[..MAX_PARAMS])
        );
        let line = format!("AUTH {}", params.join(" "));
        let caps = Capabilities::parse([line.as_bytes()]);
        assert_eq!(caps.auth_mechanisms().len(), MAX_PARAMS);
    }

    // ---- property test: render a generated capability set, parse it back ----

    const FLAGS: [&str; 8] = [
        "STARTTLS",
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "BINARYMIME",
        "DSN",
    ];

    /// How the SIZE keyword is advertised.
    #[derive(Debug, Clone)]
    enum Size {
        Absent,
        Bare,
        Value(u64),
    }

    /// Where each mechanism of the AUTH list is rendered.
    #[derive(Debug, Clone, Copy)]
    enum Form {
        Auth,
        Legacy,
        Both,
    }

    #[derive(Debug, Clone)]
    struct Model {
        flags: Vec<bool>,
        size: Size,
        /// `None`: no AUTH at all; may hold duplicates, in any case.
        auth: Option<Vec<(String, Form)>>,
        /// Whether an empty AUTH list is rendered as `AUTH=` rather than `AUTH`.
        empty_auth_legacy: bool,
        unknown: Vec<(String, Vec<String>)>,
    }

    fn mechanism_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "PLAIN",
                "LOGIN",
                "XOAUTH2",
                "OAUTHBEARER",
                "CRAM-MD5",
                "XPLAIN",
                "LOGIN-MD5",
                "PLAIN-CLIENTTOKEN",
            ])
            .prop_map(str::to_owned),
            "[A-Z][A-Z0-9_-]{0,12}",
        ]
    }

    fn unknown_keyword() -> impl Strategy<Value = String> {
        "[A-Z0-9][A-Z0-9-]{0,10}".prop_filter("known keyword", |k| {
            !FLAGS.contains(&k.as_str()) && k != "SIZE" && k != "AUTH"
        })
    }

    fn model() -> impl Strategy<Value = Model> {
        let size = prop_oneof![
            Just(Size::Absent),
            Just(Size::Bare),
            Just(Size::Value(0)),
            any::<u64>().prop_map(Size::Value),
            (1u64..200_000_000).prop_map(Size::Value),
        ];
        let form = prop_oneof![Just(Form::Auth), Just(Form::Legacy), Just(Form::Both)];
        let auth = prop::option::of(prop::collection::vec((mechanism_name(), form), 0..8));
        let unknown = prop::collection::btree_map(
            unknown_keyword(),
            prop::collection::vec("[!-~]{1,8}", 0..4),
            0..6,
        )
        .prop_map(|m| m.into_iter().collect::<Vec<_>>());
        (
            prop::collection::vec(any::<bool>(), FLAGS.len()),
            size,
            auth,
            any::<bool>(),
            unknown,
        )
            .prop_map(|(flags, size, auth, empty_auth_legacy, unknown)| Model {
                flags,
                size,
                auth,
                empty_auth_legacy,
                unknown,
            })
    }

    /// The logical lines of a model: keyword and parameters, before case and
    /// white space are scrambled. The first element of an AUTH= line is its
    /// whole `AUTH=MECH` keyword.
    fn logical_lines(model: &Model) -> Vec<Vec<String>> {
        let mut lines = Vec::new();
        for (flag, on) in FLAGS.iter().zip(&model.flags) {
            if *on {
                lines.push(vec![(*flag).to_owned()]);
            }
        }
        match model.size {
            Size::Absent => {}
            Size::Bare => lines.push(vec!["SIZE".to_owned()]),
            Size::Value(n) => lines.push(vec!["SIZE".to_owned(), n.to_string()]),
        }
        if let Some(auth) = &model.auth {
            let modern: Vec<&String> = auth
                .iter()
                .filter(|(_, f)| matches!(f, Form::Auth | Form::Both))
                .map(|(m, _)| m)
                .collect();
            let legacy: Vec<&String> = auth
                .iter()
                .filter(|(_, f)| matches!(f, Form::Legacy | Form::Both))
                .map(|(m, _)| m)
                .collect();
            if !modern.is_empty() {
                let mut line = vec!["AUTH".to_owned()];
                line.extend(modern.into_iter().cloned());
                lines.push(line);
            }
            if let Some((first, rest)) = legacy.split_first() {
                let mut line = vec![format!("AUTH={first}")];
                line.extend(rest.iter().map(|m| (*m).clone()));
                lines.push(line);
            }
            if auth.is_empty() {
                let keyword = if model.empty_auth_legacy {
                    "AUTH="
                } else {
                    "AUTH"
                };
                lines.push(vec![keyword.to_owned()]);
            }
        }
        for (keyword, params) in &model.unknown {
            let mut line = vec![keyword.clone()];
            line.extend(params.iter().cloned());
            lines.push(line);
        }
        lines
    }

    /// What parsing must give: extensions in order of first appearance in the
    /// rendered lines, with AUTH's mechanisms in the order their lines came.
    fn expected(lines: &[Vec<String>]) -> (Vec<(String, Vec<String>)>, Vec<Mechanism>) {
        let mut extensions: Vec<(String, Vec<String>)> = Vec::new();
        let mut mechs: Vec<Mechanism> = Vec::new();
        for line in lines {
            let keyword = line[0].to_ascii_uppercase();
            let (keyword, params) = if let Some(first) = keyword.strip_prefix("AUTH=") {
                let names = std::iter::once(first)
                    .filter(|m| !m.is_empty())
                    .chain(line[1..].iter().map(String::as_str));
                for name in names {
                    let m = Mechanism::parse(name);
                    if !mechs.contains(&m) {
                        mechs.push(m);
                    }
                }
                ("AUTH".to_owned(), Vec::new())
            } else if keyword == "AUTH" {
                for name in &line[1..] {
                    let m = Mechanism::parse(name);
                    if !mechs.contains(&m) {
                        mechs.push(m);
                    }
                }
                (keyword, Vec::new())
            } else {
                (keyword, line[1..].to_vec())
            };
            match extensions.iter_mut().find(|(k, _)| *k == keyword) {
                // Duplicates are identical here, so replacing changes nothing.
                Some(_) => {}
                None => extensions.push((keyword, params)),
            }
        }
        for (keyword, params) in &mut extensions {
            if keyword == "AUTH" {
                *params = mechs.iter().map(|m| m.as_str().to_owned()).collect();
            }
        }
        (extensions, mechs)
    }

    /// Scrambles the case of a keyword or mechanism: bit `i % 64` of `seed`
    /// decides whether character `i` is lower-cased.
    fn scramble_case(text: &str, seed: u64) -> String {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                if (seed >> (i % 64)) & 1 == 1 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect()
    }

    const SEPARATORS: [&str; 5] = [" ", "  ", "\t", " \t ", "\t\t"];
    const EDGES: [&str; 4] = ["", " ", "\t", "  \t"];

    fn render(line: &[String], seed: u64) -> String {
        let edge = |shift: u32| EDGES[(seed.rotate_right(shift) % EDGES.len() as u64) as usize];
        let head = line[0].to_ascii_uppercase();
        let is_auth_line = head == "AUTH" || head.starts_with("AUTH=");
        let mut out = String::from(edge(7));
        for (i, token) in line.iter().enumerate() {
            if i > 0 {
                let pick = seed.rotate_right(11 + 3 * i as u32) % SEPARATORS.len() as u64;
                out.push_str(SEPARATORS[pick as usize]);
            }
            if i == 0 || is_auth_line {
                // Keywords and mechanism names are case-insensitive; other
                // parameters are not, so they are left alone.
                out.push_str(&scramble_case(token, seed.rotate_left(5 * i as u32)));
            } else {
                out.push_str(token);
            }
        }
        out.push_str(edge(13));
        out
    }

    /// The model, its lines after duplication and shuffling, and a rendering
    /// seed per line.
    fn scenario() -> impl Strategy<Value = (Model, Vec<Vec<String>>, Vec<u64>)> {
        model().prop_flat_map(|model| {
            let lines = logical_lines(&model);
            let n = lines.len();
            (
                Just(model),
                Just(lines),
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(any::<u64>(), 2 * n),
            )
                .prop_flat_map(|(model, lines, dup, seeds)| {
                    let mut all = lines.clone();
                    for (line, d) in lines.iter().zip(&dup) {
                        if *d {
                            all.push(line.clone());
                        }
                    }
                    (Just(model), Just(all).prop_shuffle(), Just(seeds))
                })
        })
    }

    fn ehlo_bytes(lines: &[Vec<String>], seeds: &[u64]) -> Vec<u8> {
        let mut out = String::new();
        let last = lines.len();
        out.push_str(if last == 0 { "250 " } else { "250-" });
        out.push_str("mx.example.com Hello [192.0.2.1]\r\n");
        for (i, line) in lines.iter().enumerate() {
            out.push_str(if i + 1 == last { "250 " } else { "250-" });
            out.push_str(&render(line, seeds.get(i).copied().unwrap_or(0)));
            out.push_str("\r\n");
        }
        out.into_bytes()
    }

    proptest! {
        #[test]
        fn rendered_capabilities_parse_back((model, lines, seeds) in scenario()) {
            let bytes = ehlo_bytes(&lines, &seeds);
            let reply = Reply::parse(&bytes).unwrap();
            let caps = Capabilities::from_ehlo(&reply);

            let (extensions, mechs) = expected(&lines);
            let got: Vec<(String, Vec<String>)> = caps
                .extensions()
                .map(|e| (e.keyword().to_owned(), e.params().to_vec()))
                .collect();
            prop_assert_eq!(got, extensions);
            prop_assert_eq!(caps.auth_mechanisms(), &mechs[..]);

            // And the model itself, independently of the rendering order.
            let flag = |name: &str| model.flags[FLAGS.iter().position(|f| *f == name).unwrap()];
            prop_assert_eq!(caps.starttls(), flag("STARTTLS"));
            prop_assert_eq!(caps.pipelining(), flag("PIPELINING"));
            prop_assert_eq!(caps.eight_bit_mime(), flag("8BITMIME"));
            prop_assert_eq!(caps.smtputf8(), flag("SMTPUTF8"));
            prop_assert_eq!(caps.enhanced_status_codes(), flag("ENHANCEDSTATUSCODES"));
            prop_assert_eq!(caps.chunking(), flag("CHUNKING"));
            prop_assert_eq!(caps.binary_mime(), flag("BINARYMIME"));
            prop_assert_eq!(caps.dsn(), flag("DSN"));
            let (size, limit) = match model.size {
                Size::Absent => (None, None),
                Size::Bare | Size::Value(0) => (Some(0), None),
                Size::Value(n) => (Some(n), Some(n)),
            };
            prop_assert_eq!(caps.size(), size);
            prop_assert_eq!(caps.size_limit(), limit);
            prop_assert_eq!(caps.auth_advertised(), model.auth.is_some());
            let offered: Vec<Mechanism> = model
                .auth
                .iter()
                .flatten()
                .map(|(name, _)| Mechanism::parse(name))
                .collect();
            for m in &offered {
                prop_assert!(caps.supports_auth(m), "{} missing", m);
            }
            for m in caps.auth_mechanisms() {
                prop_assert!(offered.contains(m), "{} not offered", m);
            }
            for (keyword, params) in &model.unknown {
                let lower = keyword.to_ascii_lowercase();
                let ext = caps.extension(&lower);
                prop_assert_eq!(ext.map(Extension::params), Some(&params[..]));
            }
            let known = FLAGS.len() + 2 + model.unknown.len();
            prop_assert!(caps.extensions().count() <= known);
        }

        #[test]
        fn arbitrary_lines_never_panic(
            lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..40)
        ) {
            let caps = Capabilities::parse(lines.iter().map(Vec::as_slice));
            let mut seen = Vec::new();
            for ext in caps.extensions() {
                prop_assert!(!ext.keyword().is_empty());
                prop_assert_eq!(ext.keyword(), ext.keyword().to_ascii_uppercase());
                prop_assert!(!seen.contains(&ext.keyword()), "duplicate keyword");
                seen.push(ext.keyword());
                for token in std::iter::once(ext.keyword()).chain(ext.params().iter().map(String::as_str)) {
                    prop_assert!(!token.is_empty());
                    prop_assert!(!token.chars().any(|c| c.is_control() || c.is_ascii_whitespace()));
                }
            }
            for (i, m) in caps.auth_mechanisms().iter().enumerate() {
                prop_assert!(!caps.auth_mechanisms()[..i].contains(m), "duplicate mechanism");
            }
            let _ = (caps.size(), caps.size_limit());
        }
    }
}
