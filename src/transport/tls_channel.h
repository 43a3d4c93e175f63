// TlsChannel: the client's end of a TLS 1.3 connection to rnotifyd (OpenSSL
// directly, on the Connection's non-blocking socket). It verifies the server
// (tls_ca, tls_fingerprint or both) during open(), presents the client
// certificate if configured, and then reads and writes like a socket: read()
// returns EAGAIN once OpenSSL needs more bytes from the network, so a caller
// that reads until EAGAIN has also drained what OpenSSL buffered.
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "mounts/tls_settings.h"

namespace rnotify {

class TlsChannel {
 public:
  // fd: a connected, non-blocking TCP socket (not owned). host: the name or
  // address the endpoint gave, checked against the certificate with tls_ca.
  // what: the server in messages ("rnotifyd at tls:nas:7311").
  static Result<std::unique_ptr<TlsChannel>> open(int fd, const std::string& host, const TlsSettings& settings,
                                                  int timeoutMs, const std::string& what);
  // The same without waiting: begin() prepares the handshake, and each
  // step() does what can be done now: true once the handshake is done and
  // the server verified; false while *wanted (POLLIN or POLLOUT) must be
  // awaited on fd; an error when the handshake or the verification failed.
  static Result<std::unique_ptr<TlsChannel>> begin(int fd, const std::string& host, const TlsSettings& settings,
                                                   const std::string& what);
  Result<bool> step(short* wanted);
  ~TlsChannel();
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  // Decrypted bytes (> 0), 0 at the end of the stream, or an error: EAGAIN
  // when nothing more is there now, else what broke (a TLS alert, ...).
  Result<size_t> read(char* buffer, size_t size);
  // Writes what the socket takes now, without waiting: how many bytes
  // (> 0), or EAGAIN when OpenSSL must wait for the socket. A retry after
  // EAGAIN passes at least the same bytes again (they may have moved).
  Result<size_t> writeSome(std::string_view data);
  // Bytes handed to the socket so far, records in part included: progress
  // that writeSome() does not count until its record is whole.
  uint64_t bytesSent() const;
  // Whether OpenSSL holds bytes that a poll() on the socket would not show.
  bool pending() const;

 private:
  TlsChannel(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  Status prepare(const std::string& host, const TlsSettings& settings);
  Status checkFingerprint(const std::string& expected);
  // What went wrong in the last OpenSSL call, with a hint where one helps.
  Error failure(int result, const std::string& doing);

  int fd_;
  std::string what_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string fingerprint_;  // tls_fingerprint, normalized; "" when not set
};

}  // namespace rnotify
