// A real OpenID provider for gatehouse's sso tests: npm's oidc-provider (pinned in
// package-lock.json), on 127.0.0.1, configured from one JSON file the test writes:
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG: { "port": N, "issuer": "http://127.0.0.1:N", "jwks": {"keys": [private JWKs]},
//           "clients": [oidc-provider client metadata], "ttl": {"AccessToken": s, "IdToken": s},
//           "accounts": {"alice": {"email": ..., "groups": [...]}} }
//
// Authorization code flow with PKCE S256 required, refresh tokens, RP-initiated and back-channel
// logout, the RFC 9207 `iss` parameter, and the library's development login and consent forms
// (any login name; the tests fill them in). Prints "listening on PORT" once it accepts requests.
// Stops on SIGTERM.
import fs from "node:fs";
import Provider from "oidc-provider";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts || {};

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  pkce: { methods: ["S256"], required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    revocation: { enabled: true },
  },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  // Scope claims go into the ID token too (what most providers do).
  conformIdTokenClaims: false,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  ttl: {
    AccessToken: (config.ttl && config.ttl.AccessToken) || 3600,
    IdToken: (config.ttl && config.ttl.IdToken) || 3600,
    RefreshToken: (config.ttl && config.ttl.RefreshToken) || 86400,
    Session: 86400,
    Grant: 86400,
    Interaction: 3600,
    AuthorizationCode: 60,
  },
  cookies: { keys: ["gatehouse-tests-provider-cookie-key"] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: (accounts[id] && accounts[id].email) || `${id}@example.com`,
      email_verified: true,
      name: id,
      groups: (accounts[id] && accounts[id].groups) || [],
    }),
  }),
});
provider.proxy = false;
// Over plain http on loopback: oidc-provider refuses insecure cookies only in production.

const server = provider.listen(config.port, "127.0.0.1", () => {
  console.log(`listening on ${config.port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
