// The client's TLS connection; see tls_channel.h.
#include "transport/tls_channel.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "common/deadline.h"
#include "mounts/config.h"

namespace rnotify {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until fd is ready for what OpenSSL asked (read or write); false on timeout.
bool waitFor(int fd, int sslError, int timeoutMs) {
  struct pollfd p = {fd, static_cast<short>(sslError == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
  int n;
  do {
    n = ::poll(&p, 1, timeoutMs);
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

bool isIpAddress(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buffer) == 1 || ::inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

std::string hex(const unsigned char* bytes, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

// OpenSSL writes to the socket with write(2), which raises SIGPIPE when the
// server has gone; an application using librnotify must not die of that.
// While alive, SIGPIPE is blocked for this thread, and one it raised is
// consumed on the way out.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    wasPending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlock() {
    const int saved = errno;
    if (!wasPending_) {
      const struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved;
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_, old_;
  bool wasPending_ = false;
};

// The server refused what this client presented (or failed to present).
bool isCertificateRefusal(int reason) {
  switch (reason) {
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      return true;
    default:
      return false;
  }
}

}  // namespace

Result<std::unique_ptr<TlsChannel>> TlsChannel::open(int fd, const std::string& host, const TlsSettings& settings,
                                                     int timeoutMs, const std::string& what) {
  auto channel = begin(fd, host, settings, what);
  if (!channel) return channel.error();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    short wanted = 0;
    auto done = (*channel)->step(&wanted);
    if (!done) return done.error();
    if (*done) return channel;
    if (!waitFor(fd, wanted == POLLOUT ? SSL_ERROR_WANT_WRITE : SSL_ERROR_WANT_READ, remainingMs(deadline))) {
      return Error{ETIMEDOUT, "TLS handshake with " + what + " did not finish within " +
                                  std::to_string(timeoutMs / 1000) + " s; is it a tls: listener?"};
    }
  }
}

Result<std::unique_ptr<TlsChannel>> TlsChannel::begin(int fd, const std::string& host, const TlsSettings& settings,
                                                      const std::string& what) {
  std::unique_ptr<TlsChannel> channel(new TlsChannel(fd, what));
  if (Status s = channel->prepare(host, settings); !s) return s.error();
  return channel;
}

TlsChannel::~TlsChannel() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

Status TlsChannel::prepare(const std::string& host, const TlsSettings& settings) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) return failure(0, "creating a TLS context");
  SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
  // rnotifyd ends connections with a Fatal frame and no close_notify; a
  // truncated frame is caught by the frame reader.
  SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (!settings.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, settings.ca.c_str(), nullptr) != 1) {
      return failure(0, "loading tls_ca " + settings.ca);
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // the fingerprint is checked after the handshake
  }
  if (!settings.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, settings.cert.c_str()) != 1) {
      return failure(0, "loading tls_cert " + settings.cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx_, settings.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      return failure(0, "loading tls_key " + settings.key);
    }
    if (SSL_CTX_check_private_key(ctx_) != 1) {
      return Error{EINVAL, "tls_key " + settings.key + " is not the key of tls_cert " + settings.cert};
    }
  }
  ssl_ = SSL_new(ctx_);
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) return failure(0, "creating a TLS connection");
  if (!settings.ca.empty()) {
    // The certificate must name the host the endpoint names.
    if (isIpAddress(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
    } else {
      SSL_set1_host(ssl_, host.c_str());
    }
  }
  if (!isIpAddress(host)) SSL_set_tlsext_host_name(ssl_, host.c_str());

  if (!settings.fingerprint.empty()) {
    auto expected = normalizeFingerprint(settings.fingerprint);
    if (!expected) return expected.error();
    fingerprint_ = std::move(*expected);
  }
  return {};
}

Result<bool> TlsChannel::step(short* wanted) {
  SigpipeBlock noSigpipe;
  ERR_clear_error();
  int result = SSL_connect(ssl_);
  if (result != 1) {
    int error = SSL_get_error(ssl_, result);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) return failure(result, "TLS handshake");
    *wanted = error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
    return false;
  }
  if (!fingerprint_.empty()) {
    if (Status s = checkFingerprint(fingerprint_); !s) return s.error();
  }
  return true;
}

Status TlsChannel::checkFingerprint(const std::string& expected) {
  std::unique_ptr<X509, void (*)(X509*)> certificate(SSL_get1_peer_certificate(ssl_), X509_free);
  if (!certificate) return Error{EACCES, what_ + " sent no certificate"};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(certificate.get(), EVP_sha256(), digest, &size) != 1) return failure(0, "hashing the certificate");
  std::string actual = hex(digest, size);
  if (actual != expected) {
    return Error{EACCES, "the certificate of " + what_ + " has SHA-256 fingerprint " + actual + ", not " + expected +
                             " (tls_fingerprint): this may not be your server. If its certificate was replaced on "
                             "purpose, update tls_fingerprint"};
  }
  return {};
}

Result<size_t> TlsChannel::read(char* buffer, size_t size) {
  SigpipeBlock noSigpipe;  // a read may write too (an alert, a key update)
  ERR_clear_error();
  int result = SSL_read(ssl_, buffer, static_cast<int>(std::min<size_t>(size, INT32_MAX)));
  if (result > 0) return static_cast<size_t>(result);
  int error = SSL_get_error(ssl_, result);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return Error{EAGAIN, "no data yet"};
  if (error == SSL_ERROR_ZERO_RETURN) return size_t{0};
  return failure(result, "reading");
}

Result<size_t> TlsChannel::writeSome(std::string_view data) {
  SigpipeBlock noSigpipe;
  ERR_clear_error();
  int result = SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), INT32_MAX)));
  if (result > 0) return static_cast<size_t>(result);
  int error = SSL_get_error(ssl_, result);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return Error{EAGAIN, "no room yet"};
  return failure(result, "writing");
}

uint64_t TlsChannel::bytesSent() const { return BIO_number_written(SSL_get_wbio(ssl_)); }

bool TlsChannel::pending() const { return SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1; }

Error TlsChannel::failure(int result, const std::string& doing) {
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) {
    // SSL_ERROR_SYSCALL without a queue entry: errno says it, or the peer just left.
    if (ssl_ != nullptr && SSL_get_error(ssl_, result) == SSL_ERROR_SYSCALL && errno != 0) {
      return Error::fromErrno(errno, doing + " with " + what_);
    }
    return Error{ECONNRESET, what_ + " closed the connection during " + doing};
  }
  const char* reason = ERR_reason_error_string(code);
  std::string text = reason != nullptr ? reason : "unknown TLS error";
  int why = ERR_GET_REASON(code);
  if (why == SSL_R_CERTIFICATE_VERIFY_FAILED && ssl_ != nullptr) {
    return Error{EACCES, "cannot verify the certificate of " + what_ + ": " +
                             X509_verify_cert_error_string(SSL_get_verify_result(ssl_)) +
                             "; check tls_ca (the CA that signed it, and the host name it is for) or pin it with "
                             "tls_fingerprint"};
  }
  if (isCertificateRefusal(why)) {
    return Error{EACCES, what_ + " refused this client (" + text +
                             "): check tls_cert and tls_key, and that the server's --tls-client-ca signed them"};
  }
  if (why == SSL_R_WRONG_VERSION_NUMBER || why == SSL_R_UNSUPPORTED_PROTOCOL) {
    return Error{EPROTO,
                 doing + " with " + what_ + " failed (" + text + "): is it a tls: listener of rnotifyd with TLS 1.3?"};
  }
  return Error{EPROTO, doing + " with " + what_ + " failed: " + text};
}

}  // namespace rnotify
