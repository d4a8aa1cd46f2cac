//! What a person can do about a refusal whose meaning the big providers
//! document: Microsoft 365 (Exchange Online) and Gmail. One line, added to
//! the error's `Display`.

use crate::reply::Reply;

/// Microsoft's and Google's documented refusals: the reply code, the
/// enhanced status code, and what to do.
const HINTS: &[(u16, (u8, u16, u16), &str)] = &[
    (
        550,
        (5, 7, 30),
        "Basic authentication (a password) is off for this Microsoft 365 tenant: \
         authenticate with OAuth2 instead (XOAUTH2 with an access token for the \
         SMTP.Send or SMTP.SendAsApp permission)",
    ),
    (
        535,
        (5, 7, 139),
        "SMTP AUTH is disabled for this Microsoft 365 tenant or mailbox: an admin \
         enables it (Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false, \
         or the tenant-wide SmtpClientAuthenticationDisabled setting)",
    ),
    (
        535,
        (5, 7, 3),
        "Microsoft 365 refused the credentials: check the user name (the mailbox the \
         token was issued for), that the token carries the SMTP.Send or \
         SMTP.SendAsApp permission with admin consent, and that it has not expired",
    ),
    (
        530,
        (5, 7, 57),
        "the server accepts mail only from authenticated clients: give credentials \
         (and authenticate over TLS on port 587)",
    ),
    (
        534,
        (5, 7, 9),
        "Gmail needs an app password (with 2-Step Verification on) or OAuth2 \
         (XOAUTH2) for this account",
    ),
    (
        535,
        (5, 7, 8),
        "Gmail refused the user name and password: use an app password or OAuth2 \
         (XOAUTH2) rather than the account password",
    ),
];

/// The advice for `reply`, if it is one of the documented refusals. The
/// enhanced code is matched whether or not the server advertised
/// ENHANCEDSTATUSCODES (then it is read from the start of the text).
pub(crate) fn for_reply(reply: &Reply) -> Option<&'static str> {
    let code = reply.code().get();
    let enhanced = match reply.enhanced_code() {
        Some(e) => Some((e.class, e.subject, e.detail)),
        None => leading_enhanced_code(reply.message()),
    }?;
    HINTS
        .iter()
        .find(|(c, e, _)| *c == code && *e == enhanced)
        .map(|(_, _, hint)| *hint)
}

/// `\n` and the advice for `reply`, or nothing: for `Display`.
pub(crate) fn line(reply: &Reply) -> String {
    for_reply(reply).map_or_else(String::new, |hint| format!("\nhint: {hint}"))
}

/// `x.y.z` at the start of `text`, followed by a space or the end.
fn leading_enhanced_code(text: &[u8]) -> Option<(u8, u16, u16)> {
    let word = text.split(|&b| b == b' ').next()?;
    let word = core::str::from_utf8(word).ok()?;
    let mut parts = word.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((class, subject, detail))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::reply::{ReplyLimits, ReplyParser};

    fn reply(text: &str, enhanced: bool) -> Reply {
        let mut parser = ReplyParser::new(ReplyLimits::default());
        parser.extend(text.as_bytes());
        parser.next_reply(enhanced).unwrap().unwrap()
    }

    #[test]
    fn each_documented_refusal_gets_its_advice() {
        let cases = [
            ("550 5.7.30 Basic authentication is not supported for Client Submission.\r\n", "OAuth2"),
            ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.\r\n", "Set-CASMailbox"),
            ("535 5.7.3 Authentication unsuccessful [BN8PR15CA0047.namprd15.prod.outlook.com]\r\n", "SMTP.Send"),
            ("530 5.7.57 Client not authenticated to send mail.\r\n", "authenticated clients"),
            ("534-5.7.9 Application-specific password required.\r\n534 5.7.9 Learn more\r\n", "app password"),
            ("535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 Learn more\r\n", "app password"),
        ];
        for (text, needle) in cases {
            for enhanced in [true, false] {
                let hint = for_reply(&reply(text, enhanced));
                assert!(
                    hint.is_some_and(|h| h.contains(needle)),
                    "{text} {enhanced}: {hint:?}"
                );
            }
        }
    }

    #[test]
    fn other_refusals_get_none() {
        for text in [
            "535 5.7.0 Authentication failed\r\n",
            "550 5.7.30\r\n",
            "535 Authentication failed\r\n",
            "554 5.7.30 not the documented code\r\n",
            "535 5.7.139.1 odd\r\n",
        ] {
            let r = reply(text, true);
            let expected = text.starts_with("550 5.7.30");
            assert_eq!(for_reply(&r).is_some(), expected, "{text}");
        }
        assert_eq!(line(&reply("250 ok\r\n", false)), "");
    }
}
