// Mapping TLS clients to local users; see tls_identity.h.
#include "server/tls_identity.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>

#include "common/log.h"
#include "common/unique_fd.h"
#include "proto/messages.h"

namespace rnotify {
namespace {

// A name that can only be a user name: the portable characters of POSIX user
// names, not starting with '-' or '.'. This keeps a certificate's text (which
// the CA's applicant chose) from being anything odd: a path, a NUL, a space.
bool plausibleUserName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '-' || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string asText(const ASN1_STRING* value) {
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) return {};
  std::string text(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return text;
}

Result<std::string> commonNameOf(X509* certificate) {
  X509_NAME* subject = X509_get_subject_name(certificate);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return Error{EACCES, "the certificate's subject has no CN"};
  if (X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) {
    return Error{EACCES, "the certificate's subject has more than one CN"};
  }
  return asText(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
}

Result<std::string> emailLocalPartOf(X509* certificate) {
  using Names = std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)>;
  Names names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)),
              GENERAL_NAMES_free);
  std::optional<std::string> email;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_EMAIL) continue;
    if (email) return Error{EACCES, "the certificate has more than one e-mail subjectAltName"};
    email = asText(name->d.rfc822Name);
  }
  if (!email) return Error{EACCES, "the certificate has no e-mail subjectAltName"};
  size_t at = email->find('@');
  if (at == std::string::npos) return Error{EACCES, "the certificate's e-mail subjectAltName has no '@'"};
  return email->substr(0, at);
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> digestOf(std::string_view text) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

}  // namespace

Result<CertificateUserRule> parseCertificateUserRule(std::string_view text) {
  if (text == "cn") return CertificateUserRule::kCommonName;
  if (text == "email") return CertificateUserRule::kEmailLocal;
  return Error{EINVAL, "--tls-user-from '" + std::string(text) + "': use cn or email"};
}

Result<Peer> userOfCertificate(X509* certificate, CertificateUserRule rule) {
  Result<std::string> name =
      rule == CertificateUserRule::kCommonName ? commonNameOf(certificate) : emailLocalPartOf(certificate);
  if (!name) return name.error();
  if (!plausibleUserName(*name)) {
    return Error{EACCES, "the certificate names '" + *name + "', which is not a user name"};
  }
  auto peer = localUser(*name, Peer::Method::kTlsCertificate);
  if (!peer) return Error{EACCES, "the certificate names user '" + *name + "', who has no account here"};
  if (peer->uid == 0) return Error{EACCES, "the certificate names root; root cannot log in over the network"};
  return *peer;
}

Result<TokenDirectory> TokenDirectory::open(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Error::fromErrno(errno, "--token-dir " + dir);
  if (!S_ISDIR(st.st_mode)) return Error{ENOTDIR, "--token-dir " + dir + " is not a directory"};
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return Error{EACCES,
                 "--token-dir " + dir + " is writable by other users, who could plant tokens; chmod go-w " + dir};
  }
  return TokenDirectory(dir);
}

Result<std::string> TokenDirectory::tokenOf(const std::string& user) const {
  const std::string path = dir_ + "/" + user;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Error::fromErrno(errno, "token file " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Error::fromErrno(errno, "token file " + path);
  if (!S_ISREG(st.st_mode)) return Error{EACCES, "token file " + path + " is not a regular file"};
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    return Error{EACCES, "token file " + path + " is accessible to other users; chmod 600 " + path};
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return Error{EACCES, "token file " + path + " is owned by uid " + std::to_string(st.st_uid) +
                             ", not by rnotifyd's user or root"};
  }
  // Room for the longest token, a CRLF, and one byte to notice a longer file.
  std::string token(proto::kMaxToken + 3, '\0');
  ssize_t n = ::read(fd.get(), token.data(), token.size());
  if (n < 0) return Error::fromErrno(errno, "token file " + path);
  if (static_cast<size_t>(n) == token.size()) {
    return Error{EACCES, "token file " + path + " holds more than " + std::to_string(proto::kMaxToken) + " bytes"};
  }
  token.resize(static_cast<size_t>(n));
  // A final newline (echo, an editor) is not part of the token.
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < kMinTokenBytes) {
    return Error{EACCES, "token file " + path + " holds fewer than " + std::to_string(kMinTokenBytes) +
                             " bytes: too easy to guess"};
  }
  return token;
}

Result<Peer> TokenDirectory::check(std::string_view user, std::string_view token) const {
  static const Error kRefused{EACCES, "wrong user or token"};
  const std::string name(user);
  if (!plausibleUserName(name)) return kRefused;
  Result<std::string> expected = tokenOf(name);
  if (!expected) {
    if (expected.error().code != ENOENT) log::warn("{}", expected.error().message);
    // Compare anyway, so that a missing file takes as long as a wrong token.
    (void)CRYPTO_memcmp(digestOf(token).data(), digestOf(name).data(), SHA256_DIGEST_LENGTH);
    return kRefused;
  }
  // Digests have one length whatever the tokens': the time taken tells
  // nothing about how long the token is or where it differs.
  if (CRYPTO_memcmp(digestOf(token).data(), digestOf(*expected).data(), SHA256_DIGEST_LENGTH) != 0) return kRefused;
  auto peer = localUser(name, Peer::Method::kToken);
  if (!peer) {
    log::warn("token file {}/{} is for a user who has no account here", dir_, name);
    return kRefused;
  }
  if (peer->uid == 0) {
    log::warn("token file {}/root is ignored: root cannot log in over the network", dir_);
    return kRefused;
  }
  return *peer;
}

}  // namespace rnotify
