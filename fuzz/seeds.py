#!/usr/bin/env python3
"""Writes the checked-in seed corpora under fuzz/corpus/<target>/.

Real EHLO replies (Exchange Online, Gmail, Postfix, Exim, Sendmail, aiosmtpd,
nodemailer smtp-server), replies with enhanced codes, whole sessions and
garbage. Run from the fuzz/ directory; the files are committed, so this only
needs running when a seed is added.

The api corpus is not written here: its seeds are encoded calls, defined once
in Rust (smtp_proto::testing::api_seeds) and written by
`SMTP_PROTO_WRITE_SEEDS=1 cargo test -p smtp-proto --test fuzz_corpus`.
"""
import base64
import os
import struct

EHLO = {
    "exchange-online-plain": [
        "BN8PR15CA0047.outlook.office365.com Hello [203.0.113.5]", "SIZE 157286400", "PIPELINING",
        "DSN", "ENHANCEDSTATUSCODES", "STARTTLS", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"],
    "exchange-online-tls": [
        "BN8PR15CA0047.outlook.office365.com Hello [203.0.113.5]", "SIZE 157286400", "PIPELINING",
        "DSN", "ENHANCEDSTATUSCODES", "AUTH LOGIN XOAUTH2", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"],
    "gmail-plain": [
        "smtp.gmail.com at your service, [203.0.113.5]", "SIZE 35882577", "8BITMIME", "STARTTLS",
        "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"],
    "gmail-tls": [
        "smtp.gmail.com at your service, [203.0.113.5]", "SIZE 35882577", "8BITMIME",
        "AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH", "ENHANCEDSTATUSCODES",
        "PIPELINING", "CHUNKING", "SMTPUTF8"],
    "postfix": [
        "mail.example.com", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS", "AUTH PLAIN LOGIN",
        "AUTH=PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"],
    "exim": [
        "mx.example.com Hello client [203.0.113.5]", "SIZE 52428800", "8BITMIME", "PIPELINING",
        "PIPE_CONNECT", "AUTH PLAIN LOGIN CRAM-MD5", "CHUNKING", "STARTTLS", "PRDR", "HELP"],
    "sendmail": [
        "mail.example.com Hello client [203.0.113.5], pleased to meet you", "ENHANCEDSTATUSCODES",
        "PIPELINING", "EXPN", "VERB", "8BITMIME", "SIZE", "DSN", "ETRN",
        "AUTH DIGEST-MD5 CRAM-MD5 LOGIN PLAIN", "STARTTLS", "DELIVERBY", "HELP"],
    "aiosmtpd": ["host.example", "SIZE 33554432", "8BITMIME", "SMTPUTF8", "AUTH LOGIN", "HELP"],
    "smtp-server": [
        "host.example Nice to meet you, [127.0.0.1]", "PIPELINING", "8BITMIME", "SMTPUTF8",
        "AUTH LOGIN XOAUTH2", "SIZE 10485760", "STARTTLS"],
    "legacy-auth": ["old.example", "AUTH=LOGIN", "AUTH XPLAIN LOGIN-MD5", "size 0", "starttls"],
}

REPLIES = [
    "220 smtp.example.com ESMTP ready",
    "250 2.1.0 Sender OK",
    "250 2.0.0 OK <1234@host> [Hostname=BN8PR15MB]",
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    "504 5.7.4 Unrecognized authentication type",
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
    "421 4.7.0 Temporary server error. Please try again later. PRX4",
    "451-4.7.1 Greylisted\n451 4.7.1 try again later",
    "250",
    "354 Start mail input; end with <CRLF>.<CRLF>",
]


def reply(lines, code="250"):
    out = b""
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out += f"{code}{sep}{line}\r\n".encode()
    return out


def crlf(text):
    return "".join(line + "\r\n" for line in text.split("\n")).encode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def write(target, name, data):
    path = os.path.join("corpus", target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "seed-" + name), "wb") as f:
        f.write(data)


def session_input(selector, server, cuts=()):
    data = bytes(selector) + bytes([len(cuts)])
    for cut in cuts:
        data += struct.pack("<H", cut)
    return data + server


for name, lines in EHLO.items():
    write("reply", "ehlo-" + name, reply(lines))
    write("capabilities", name, "\n".join(lines[1:]).encode())
for i, text in enumerate(REPLIES):
    write("reply", f"reply-{i}", crlf(text))
write("reply", "garbage-mixed", b"250-a\r\n550 b\r\n")
write("reply", "garbage-bare-lf", b"250-a\n250 b\n")
write("reply", "garbage-nul", b"250 a\x00b\r\n")
write("reply", "garbage-long", b"250 " + b"x" * 200 + b"\r\n")
write("capabilities", "garbage", b"AUTH\tPLAIN  LOGIN\n\x00\xff\nSIZE x\nAUTH=\n")

# Whole sessions. Selector bytes: policy (0 required, 1 opportunistic,
# 2 disabled, 3 implicit), name (0 remote, 1 localhost), credentials and
# mechanism, flags (insecure auth, recipients, messages).
greet = b"220 host ESMTP\r\n"
local_plain = greet + reply(EHLO["postfix"]) + crlf(
    "235 2.7.0 ok\n250 2.1.0 ok\n250 2.1.5 ok\n354 go\n250 2.0.0 queued\n221 bye")
write("session", "local-plain", session_input([2, 1, 1, 0], local_plain))
local_login = greet + reply(EHLO["aiosmtpd"]) + crlf(
    f"334 {b64('User Name' + chr(0))}\n334 {b64('Password' + chr(0))}\n235 ok\n"
    "250 ok\n250 ok\n354 go\n250 ok\n221 bye")
write("session", "local-login-aiosmtpd", session_input([2, 1, 2 | (2 << 2), 0], local_login))
starttls = greet + reply(EHLO["exchange-online-plain"]) + crlf("220 2.0.0 SMTP server ready")
after_tls = reply(EHLO["exchange-online-tls"]) + crlf(
    "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 2.7.0 Authentication successful\n"
    "250 2.1.0 Sender OK\n250 2.1.5 Recipient OK\n250 2.0.0 OK\n221 2.0.0 bye")
write("session", "exchange-online", session_input([0, 0, 1, 0], starttls + after_tls, [len(starttls)]))
write("session", "exchange-online-injection", session_input([0, 0, 1, 0], starttls + after_tls))
XOAUTH2_ERROR = b64('{"status":"401"}')
write("session", "xoauth2-error", session_input([2, 1, 3, 0], greet + reply(EHLO["smtp-server"]) + crlf(
    f"334 {XOAUTH2_ERROR}\n535 5.7.8 no")))
write("session", "pipelined-refusals", session_input([2, 1, 0, 6], greet + reply(EHLO["postfix"]) + crlf(
    "250 ok\n550 no\n450 later\n250 ok\n550 no\n354 go\n250 ok\n221 bye")))
write("session", "bdat-pipelined", session_input([2, 1, 1, 0], greet + reply(EHLO["exchange-online-tls"]) + crlf(
    "334 VXNlcm5hbWU6\n334 UGFzc3dvcmQ6\n235 ok\n250 2.1.0 ok\n250 2.1.5 ok\n250 2.0.0 queued\n221 bye")))
write("session", "helo-fallback", session_input([2, 1, 0, 0], greet + crlf("502 no\n250 old\n250 ok\n250 ok\n354 go\n250 ok\n221 bye")))
write("session", "starttls-stripped", session_input([0, 0, 1, 0], greet + reply(EHLO["aiosmtpd"])))
write("session", "421", session_input([2, 1, 0, 0], greet + crlf("421 4.3.2 closing")))
write("session", "garbage", session_input([1, 0, 1, 1], b"\x00\xff220\r\n250-\n\n\r\r\n"))

for name, body in {
    "smuggle-lf": b"a\n.\nMAIL FROM:<x>\n",
    "smuggle-lf-crlf": b"a\n.\r\nRCPT TO:<x>\r\n",
    "smuggle-crlf-lf": b"a\r\n.\nDATA\r\n",
    "smuggle-cr": b"a\r.\r\nQUIT\r\n",
    "dots": b".\r\n..\r\n.a\r\nb.\r\n",
    "mime": b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xc3\xa9t\xc3\xa9\r\n",
}.items():
    for chunk in (1, 3, 255):
        write("data", f"{name}-{chunk}", bytes([chunk]) + body)
