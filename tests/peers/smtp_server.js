#!/usr/bin/env node
// nodemailer smtp-server as a peer for the smtp-tests crate, configured like
// Exchange Online: STARTTLS, AUTH LOGIN and XOAUTH2 only and only over TLS,
// AUTH required, SIZE, PIPELINING. Each accepted message is streamed to
// OUTDIR/<n>.eml (dot-unstuffed, as the data stream delivers it), then
// <n>.json ({"mail_from": ..., "rcpt_tos": [...]}) is written atomically.
'use strict';

const fs = require('fs');
const path = require('path');
const { SMTPServer } = require('smtp-server');

function parseArgs(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i];
        if (!key.startsWith('--') || i + 1 >= argv.length) {
            throw new Error('usage: --port P --cert C --key K --user U --password W [--token T] [--size N] --outdir D');
        }
        out[key.slice(2)] = argv[i + 1];
    }
    for (const required of ['port', 'cert', 'key', 'user', 'password', 'outdir']) {
        if (!(required in out)) {
            throw new Error('missing --' + required);
        }
    }
    return out;
}

const args = parseArgs(process.argv.slice(2));
const size = Number(args.size || 157286400);
let count = 0;

const server = new SMTPServer({
    name: 'smtp-server.test',
    banner: 'smtp-server ESMTP ready',
    secure: false,
    key: fs.readFileSync(args.key),
    cert: fs.readFileSync(args.cert),
    authMethods: ['LOGIN', 'XOAUTH2'],
    allowInsecureAuth: false,
    authOptional: false,
    size: size,
    logger: false,
    onAuth(auth, session, callback) {
        if (auth.method === 'XOAUTH2') {
            if (args.token && auth.username === args.user && auth.accessToken === args.token) {
                return callback(null, { user: auth.username });
            }
            return callback(null, {
                data: { status: '401', schemes: 'bearer', scope: 'https://outlook.office365.com/.default' }
            });
        }
        if (auth.username === args.user && auth.password === args.password) {
            return callback(null, { user: auth.username });
        }
        const err = new Error('Authentication unsuccessful');
        err.responseCode = 535;
        return callback(err);
    },
    onData(stream, session, callback) {
        const n = ++count;
        const base = path.join(args.outdir, String(n));
        const file = fs.createWriteStream(base + '.eml');
        stream.pipe(file);
        file.on('error', err => callback(err));
        file.on('finish', () => {
            if (stream.sizeExceeded) {
                fs.unlinkSync(base + '.eml');
                const err = new Error('Message size exceeds fixed maximum message size');
                err.responseCode = 552;
                return callback(err);
            }
            const meta = {
                mail_from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                rcpt_tos: session.envelope.rcptTo.map(r => r.address)
            };
            fs.writeFileSync(base + '.json.tmp', JSON.stringify(meta));
            fs.renameSync(base + '.json.tmp', base + '.json');
            callback(null, 'OK message ' + n + ' accepted');
        });
    }
});

server.on('error', err => console.error('smtp-server error:', err && err.message));
server.listen(Number(args.port), '127.0.0.1', () => {
    console.log('smtp-server listening on 127.0.0.1:' + args.port);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => server.close(() => process.exit(0)));
}
