#!/usr/bin/env node
// oauth2-mock-server (a real OAuth2/OIDC server that signs RS256 JWTs) as a
// peer for the smtp-tests crate, on loopback. Token endpoint: POST /token;
// keys: GET /jwks. Each token request is recorded, once answered, as
// OUTDIR/<n>.req (written atomically): `key=value` lines with the request's
// form fields and what was answered (status, access_token, refresh_token).
//
// --expires-in N       the tokens' lifetime in seconds (default 3600)
// --error E            answer every token request with HTTP 400 and this
//                      OAuth2 error...
// --error-description D  ...and this error_description
// --omit-access-token 1  answer 200 without access_token (a broken server)
// --cert C --key K     serve HTTPS with this certificate
'use strict';

const fs = require('fs');
const path = require('path');
const { OAuth2Server } = require('oauth2-mock-server');

function parseArgs(argv) {
    const out = {};
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i];
        if (!key.startsWith('--') || i + 1 >= argv.length) {
            throw new Error('usage: --port P --outdir D [--expires-in N] [--error E [--error-description D]] [--cert C --key K]');
        }
        out[key.slice(2)] = argv[i + 1];
    }
    for (const required of ['port', 'outdir']) {
        if (!(required in out)) {
            throw new Error('missing --' + required);
        }
    }
    return out;
}

const args = parseArgs(process.argv.slice(2));
const expiresIn = args['expires-in'] === undefined ? 3600 : Number(args['expires-in']);
let count = 0;

function record(fields) {
    count += 1;
    const lines = Object.entries(fields)
        .filter(([, v]) => v !== undefined && v !== null)
        .map(([k, v]) => `${k}=${String(v).replace(/[\r\n]/g, ' ')}`)
        .join('\n');
    const file = path.join(args.outdir, `${count}.req`);
    fs.writeFileSync(file + '.tmp', lines + '\n');
    fs.renameSync(file + '.tmp', file);
}

async function main() {
    const server = args.cert
        ? new OAuth2Server(args.key, args.cert)
        : new OAuth2Server();
    await server.issuer.keys.generate('RS256');
    server.service.on('beforeTokenSigning', (token) => {
        const now = Math.floor(Date.now() / 1000);
        token.payload.exp = now + expiresIn;
    });
    server.service.on('beforeResponse', (response, req) => {
        if (args.error) {
            response.statusCode = 400;
            response.body = { error: args.error };
            if (args['error-description']) {
                response.body.error_description = args['error-description'];
            }
        } else {
            response.body.expires_in = expiresIn;
            if (args['omit-access-token']) {
                delete response.body.access_token;
            }
        }
        const body = req.body || {};
        record({
            grant_type: body.grant_type,
            client_id: body.client_id,
            client_secret: body.client_secret,
            refresh_token: body.refresh_token,
            scope: body.scope,
            status: response.statusCode,
            issued_access_token: response.body.access_token,
            issued_refresh_token: response.body.refresh_token,
        });
    });
    await server.start(Number(args.port), '127.0.0.1');
    console.log(`oauth2-mock-server on ${server.issuer.url}`);
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
