// Who a TLS client is: the two ways rnotifyd maps a network client to a
// local user. A client certificate (verified against --tls-client-ca) names
// the user by a rule (--tls-user-from): its subject CN, or the local part of
// its one e-mail SAN. A bearer token is checked against the file
// <token-dir>/<user>, read at each attempt so that replacing or removing the
// file takes effect for the next connection. Neither maps to root: a network
// identity never gets uid 0.
#pragma once

#include <openssl/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "server/transport.h"

namespace rnotify {

// --tls-user-from: which part of a client certificate is the user name.
enum class CertificateUserRule {
  kCommonName,  // "cn": the subject's commonName (exactly one)
  kEmailLocal,  // "email": the part before '@' of the subjectAltName rfc822Name (exactly one)
};
Result<CertificateUserRule> parseCertificateUserRule(std::string_view text);

// The local user a verified client certificate names. Errors (EACCES) say
// why, for the log: no such field, a name that is not a plausible user name,
// no such local user, root.
Result<Peer> userOfCertificate(X509* certificate, CertificateUserRule rule);

// The directory of per-user token files (--token-dir).
class TokenDirectory {
 public:
  // Checks that dir exists and that other users cannot write to it.
  static Result<TokenDirectory> open(const std::string& dir);
  // The user if `token` equals the one in <dir>/<user>. A file that others
  // may read or that is not owned by rnotifyd's user or root, or a token
  // shorter than 16 bytes, is refused (and logged): such a secret is not one.
  // The comparison takes the same time wherever the tokens differ.
  Result<Peer> check(std::string_view user, std::string_view token) const;
  const std::string& path() const { return dir_; }

 private:
  explicit TokenDirectory(std::string dir) : dir_(std::move(dir)) {}
  // The token in the user's file, or an error saying what is wrong with it.
  Result<std::string> tokenOf(const std::string& user) const;
  std::string dir_;
};

inline constexpr size_t kMinTokenBytes = 16;

}  // namespace rnotify
