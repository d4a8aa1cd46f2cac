#!/usr/bin/env python3
"""aiosmtpd 1.4.6 as a peer for the smtp-tests crate (run with tests/.venv/bin/python).

STARTTLS required (or implicit TLS with --mode implicit), AUTH required,
AUTH LOGIN only (PLAIN excluded), one user. Each accepted message is written
to OUTDIR as <n>.eml (the content bytes exactly as received, dot-unstuffed:
decode_data=False) and then <n>.json ({"mail_from": ..., "rcpt_tos": [...]}),
the .json atomically, so its presence marks a complete message.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--mode", choices=["starttls", "implicit"], default="starttls")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--outdir", required=True)
    args = ap.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    class Handler:
        def __init__(self):
            self.count = 0

        async def handle_DATA(self, server, session, envelope):
            self.count += 1
            base = os.path.join(args.outdir, str(self.count))
            with open(base + ".eml", "wb") as f:
                f.write(envelope.original_content)
            meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
            with open(base + ".json.tmp", "w", encoding="utf-8") as f:
                json.dump(meta, f)
            os.replace(base + ".json.tmp", base + ".json")
            return "250 OK message %d accepted" % self.count

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            mechanism == "LOGIN"
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        # handled=False: aiosmtpd answers a refusal itself (535); with its
        # default (handled=True) it would wait for the handler to reply, and
        # a client with wrong credentials would hear nothing.
        return AuthResult(success=ok, handled=False)

    handler = Handler()
    implicit = args.mode == "implicit"

    def factory():
        return SMTP(
            handler,
            hostname="aiosmtpd.test",
            decode_data=False,
            enable_SMTPUTF8=True,
            tls_context=None if implicit else ctx,
            require_starttls=not implicit,
            authenticator=authenticator,
            auth_required=True,
            # aiosmtpd only knows about TLS it negotiated itself (STARTTLS).
            auth_require_tls=not implicit,
            auth_exclude_mechanism=["PLAIN"],
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", args.port, ssl=ctx if implicit else None)
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print("aiosmtpd listening on 127.0.0.1:%d (%s)" % (args.port, args.mode), flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
