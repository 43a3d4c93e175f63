// TlsSettings: how a client secures a tls:HOST:PORT connection to rnotifyd,
// from the [[server]] entry of config.toml (docs/PROTOCOL.md section 2,
// man/rnotify.conf). The server is verified by a CA, a pinned certificate
// fingerprint, or both; the client proves who it is by a certificate or a
// token.
#pragma once

#include <string>

namespace rnotify {

struct TlsSettings {
  std::string ca;           // tls_ca: PEM file of the CA(s) that signed the server's certificate
  std::string fingerprint;  // tls_fingerprint: SHA-256 of the server's certificate, 64 lowercase hex digits
  std::string cert;         // tls_cert: this client's certificate (PEM)
  std::string key;          // tls_key: its private key (PEM)
  std::string tokenFile;    // token_file: a file holding this user's token (mode 600)
  std::string tokenUser;    // token_user: the user name on the server; default: the local user's name
};

}  // namespace rnotify
