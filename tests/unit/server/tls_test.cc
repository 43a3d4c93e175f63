// rnotifyd's tls: listener against the real client (Connection over
// TlsChannel), with a throw-away CA, server and client certificates made by
// the openssl command: who gets in (a certificate of the right CA, the right
// token), who does not (another CA, no certificate, a wrong or missing token,
// plain bytes), what the client reports when the server is not the one it
// pinned, that plain tcp: stays on loopback unless --insecure-tcp, and that a
// well-behaved client keeps its events while bad ones hammer the port.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mounts/config.h"
#include "proto/codec.h"
#include "transport/agent_process.h"
#include "transport/connection.h"
#include "transport/tls_channel.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The local user the test's certificates and tokens name: rnotifyd never
// maps a network client to root, so a test run as root uses nobody.
std::string testUser() {
  if (::getuid() != 0) {
    if (const passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
  }
  return "nobody";
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/rnotifyd-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    ::chmod(base_.c_str(), 0755);  // the mapped user must be able to reach the export
    fs::create_directories(base_ + "/export/dir");
    fs::create_directories(base_ + "/tokens");
    ::chmod((base_ + "/tokens").c_str(), 0700);
    user_ = testUser();
    makeCertificates();
  }
  void TearDown() override {
    daemon_.reset();
    if (HasFailure()) std::cerr << "rnotifyd's log:\n" << readFile(base_ + "/rnotifyd.log");
    fs::remove_all(base_);
  }

  void sh(const std::string& command) {
    std::string full = "cd '" + base_ + "' && (" + command + ") >>openssl.log 2>&1";
    ASSERT_EQ(std::system(full.c_str()), 0) << command << "\n" << readFile(base_ + "/openssl.log");
  }

  // ca and otherca; server (for 127.0.0.1) and client (CN = the test user)
  // signed by ca; stranger (same CN) signed by otherca.
  void makeCertificates() {
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    for (const char* ca : {"ca", "otherca"}) {
      sh("openssl req -x509 " + key + " -keyout " + ca + ".key -out " + ca + ".pem -days 1 -subj '/CN=rnotify test " +
         ca + "'");
    }
    auto sign = [&](const std::string& name, const std::string& cn, const std::string& ca, const std::string& san) {
      sh("openssl req " + key + " -keyout " + name + ".key -out " + name + ".csr -subj '/CN=" + cn + "'");
      sh("printf 'subjectAltName=" + san + "\\n' > " + name + ".ext");
      sh("openssl x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca + ".key -CAcreateserial -out " +
         name + ".pem -days 1 -extfile " + name + ".ext");
    };
    sign("server", "rnotifyd test server", "ca", "IP:127.0.0.1");
    sign("client", user_, "ca", "email:" + user_ + "@example.org");
    sign("stranger", user_, "otherca", "email:" + user_ + "@example.org");
    sh("chmod 600 *.key");
  }

  std::string path(const std::string& name) const { return base_ + "/" + name; }
  // Whether rnotifyd's log says `text` within 5 s (it writes after the client has its answer).
  bool logSays(const std::string& text) const {
    for (int i = 0; i < 250; ++i) {
      if (readFile(path("rnotifyd.log")).find(text) != std::string::npos) return true;
      ::poll(nullptr, 0, 20);
    }
    return false;
  }

  // Starts rnotifyd with a tls: listener on a free port of 127.0.0.1.
  void startDaemon(std::vector<std::string> extra) {
    std::vector<std::string> argv{RNOTIFYD_PATH,
                                  "--listen",
                                  "tls:127.0.0.1:0",
                                  "--tls-cert",
                                  path("server.pem"),
                                  "--tls-key",
                                  path("server.key"),
                                  "--export",
                                  path("export"),
                                  "--log-file",
                                  path("rnotifyd.log"),
                                  "--log-level",
                                  "info"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto process = AgentProcess::spawn(argv);
    ASSERT_TRUE(process.ok()) << process.error().message;
    daemon_ = std::make_unique<AgentProcess>(std::move(*process));
    const std::string marker = "listening on tls:127.0.0.1:";
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      std::string log = readFile(path("rnotifyd.log"));
      if (size_t at = log.find(marker); at != std::string::npos) {
        endpoint_ = "tls:127.0.0.1:" + std::to_string(std::atoi(log.c_str() + at + marker.size()));
        return;
      }
      ASSERT_EQ(daemon_->reap(20), -1) << "rnotifyd exited: " << daemon_->stderrText() << log;
    }
    FAIL() << "rnotifyd did not start listening";
  }

  uint16_t port() const { return static_cast<uint16_t>(std::atoi(endpoint_.c_str() + endpoint_.rfind(':') + 1)); }

  TlsSettings withCertificate(const std::string& name = "client") const {
    TlsSettings tls;
    tls.ca = path("ca.pem");
    tls.cert = path(name + ".pem");
    tls.key = path(name + ".key");
    return tls;
  }

  TlsSettings withToken(const std::string& token) {
    std::string file = path("my-token");
    std::ofstream(file) << token << "\n";
    ::chmod(file.c_str(), 0600);
    TlsSettings tls;
    tls.ca = path("ca.pem");
    tls.tokenFile = file;
    tls.tokenUser = user_;
    return tls;
  }

  void serverToken(const std::string& token, mode_t mode = 0600) {
    std::string file = path("tokens/" + user_);
    std::ofstream(file) << token << "\n";
    ::chmod(file.c_str(), mode);
  }

  Result<std::unique_ptr<Connection>> connect(const TlsSettings& tls) {
    return Connection::overSocket(endpoint_, tls, 5000);
  }

  proto::Reply watch(Connection& c) {
    proto::Watch w;
    w.path = path("export/dir");
    w.mask = IN_CREATE;
    auto reply = c.request(w, 5000);
    EXPECT_TRUE(reply.ok()) << reply.error().message;
    return reply.ok() ? *reply : proto::Reply{0, -1, 0, "no reply"};
  }

  // Creates export/dir/name and waits until c reports it (at most 5 s).
  bool seesCreate(Connection& c, const std::string& name) {
    bool seen = false;
    c.setEventsHandler([&](Connection&, proto::Events& events) {
      for (const Event& e : events.events) seen = seen || e.name == name;
    });
    std::ofstream(path("export/dir/" + name)) << "x";
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!seen && Clock::now() < deadline) {
      struct pollfd p = {c.readFd(), POLLIN, 0};
      ::poll(&p, 1, 100);
      if (!c.pump()) {
        ADD_FAILURE() << c.failure().message;
        return false;
      }
    }
    return seen;
  }

  // A TCP connection to the tls: port that sends `bytes` and returns what
  // came back until the server closed it (at most 5 s).
  std::string rawExchange(const std::string& bytes) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    std::string all;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < deadline) {
      struct pollfd p = {fd.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buffer[4096];
      ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n <= 0) return all;
      all.append(buffer, static_cast<size_t>(n));
    }
    ADD_FAILURE() << "rnotifyd did not close a connection that sent plain bytes";
    return all;
  }

  void expectRefused(const Result<std::unique_ptr<Connection>>& c, int code, const std::string& fragment) {
    ASSERT_FALSE(c.ok()) << "the connection was accepted";
    EXPECT_EQ(c.error().code, code) << c.error().message;
    EXPECT_NE(c.error().message.find(fragment), std::string::npos)
        << "message: " << c.error().message << "\nexpected to contain: " << fragment;
  }

  std::string base_;
  std::string user_;
  std::string endpoint_;
  std::unique_ptr<AgentProcess> daemon_;
};

TEST_F(TlsTest, AClientCertificateOfTheCaMapsToItsUserAndReceivesEvents) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  auto c = connect(withCertificate());
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto reply = watch(**c);
  ASSERT_EQ(reply.status, 0) << reply.message;
  EXPECT_TRUE(seesCreate(**c, "hello"));
  EXPECT_TRUE(logSays("user " + user_)) << "the log should name the mapped user";
}

TEST_F(TlsTest, TheUserCanComeFromTheEmailSubjectAltName) {
  startDaemon({"--tls-client-ca", path("ca.pem"), "--tls-user-from", "email"});
  auto c = connect(withCertificate());
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(watch(**c).status, 0);
  EXPECT_TRUE(seesCreate(**c, "by-email"));
}

TEST_F(TlsTest, AClientCertificateOfAnotherCaIsRefused) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  expectRefused(connect(withCertificate("stranger")), EACCES, "refused this client (tlsv1 alert unknown ca)");
  EXPECT_TRUE(logSays("TLS handshake failed"));
}

TEST_F(TlsTest, AClientWithoutCertificateIsRefusedWhenNoTokenCanStandIn) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  TlsSettings tls;
  tls.ca = path("ca.pem");
  expectRefused(connect(tls), EACCES, "certificate required");
}

TEST_F(TlsTest, ACertificateNamingNoLocalUserIsRefused) {
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ghost.key -out ghost.csr "
     "-subj '/CN=no-such-user-rnotify'");
  sh("openssl x509 -req -in ghost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ghost.pem -days 1");
  sh("chmod 600 ghost.key");
  startDaemon({"--tls-client-ca", path("ca.pem")});
  expectRefused(connect(withCertificate("ghost")), EACCES, "refused this client (sslv3 alert bad certificate)");
  EXPECT_TRUE(logSays("names user 'no-such-user-rnotify', who has no account here"));
}

TEST_F(TlsTest, PlainBytesOnTheTlsPortGetNoProtocolAnswer) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  std::string hello;
  proto::encode(proto::Hello{}, hello);
  std::string answer = rawExchange(hello);
  // At most a TLS alert record (content type 21), never a Welcome.
  EXPECT_TRUE(answer.empty() || answer[0] == 21) << "answer of " << answer.size() << " bytes";
  EXPECT_EQ(answer.find("rnotifyd"), std::string::npos);
  EXPECT_TRUE(logSays("TLS handshake failed"));
}

TEST_F(TlsTest, TheClientRefusesAServerWithAnotherFingerprint) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  TlsSettings tls = withCertificate();
  tls.ca.clear();
  tls.fingerprint = std::string(64, '0');
  expectRefused(connect(tls), EACCES, "this may not be your server");

  // The right pin, as openssl prints it, is enough without a CA.
  sh("openssl x509 -in server.pem -noout -fingerprint -sha256 | cut -d= -f2 > server.fingerprint");
  tls.fingerprint = readFile(path("server.fingerprint"));
  tls.fingerprint.pop_back();  // the newline
  auto c = connect(tls);
  EXPECT_TRUE(c.ok()) << c.error().message;
}

TEST_F(TlsTest, TheClientRefusesAServerItsCaDidNotSign) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  TlsSettings tls = withCertificate();
  tls.ca = path("otherca.pem");
  expectRefused(connect(tls), EACCES, "cannot verify the certificate of rnotifyd at " + endpoint_);
}

TEST_F(TlsTest, ATokenAuthenticatesAndReceivesEvents) {
  serverToken("0123456789abcdef-the-token");
  startDaemon({"--token-dir", path("tokens")});
  auto c = connect(withToken("0123456789abcdef-the-token"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE((*c)->welcome().capabilities & proto::kCapAuth);
  auto reply = watch(**c);
  ASSERT_EQ(reply.status, 0) << reply.message;
  EXPECT_TRUE(seesCreate(**c, "with-token"));
}

TEST_F(TlsTest, AWrongTokenIsRefused) {
  serverToken("0123456789abcdef-the-token");
  startDaemon({"--token-dir", path("tokens")});
  expectRefused(connect(withToken("0123456789abcdef-not-it")), EACCES, "refused the token of user '" + user_ + "'");
}

TEST_F(TlsTest, AClientWithoutTokenOrCertificateIsTurnedAway) {
  serverToken("0123456789abcdef-the-token");
  startDaemon({"--token-dir", path("tokens")});
  TlsSettings tls;
  tls.ca = path("ca.pem");
  expectRefused(connect(tls), EACCES, "needs a client certificate or a token");
}

// Speaks the protocol by hand over TLS: a Watch instead of the Auth the
// server waits for gets Fatal EACCES, and nothing is watched.
TEST_F(TlsTest, NothingButAuthIsAcceptedBeforeTheTokenChecks) {
  serverToken("0123456789abcdef-the-token");
  startDaemon({"--token-dir", path("tokens")});
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::fcntl(fd.get(), F_SETFL, O_NONBLOCK);
  TlsSettings tls;
  tls.ca = path("ca.pem");
  auto channel = TlsChannel::open(fd.get(), "127.0.0.1", tls, 5000, "rnotifyd");
  ASSERT_TRUE(channel.ok()) << channel.error().message;
  std::string out;
  proto::Hello hello;
  hello.capabilities = proto::kCapAuth;
  proto::encode(hello, out);
  proto::encode(proto::Watch{1, 0, IN_CREATE, path("export/dir")}, out);
  auto written = (*channel)->writeSome(out);  // a fresh socket has room for both
  ASSERT_TRUE(written.ok()) << written.error().message;
  ASSERT_EQ(*written, out.size());
  proto::FrameReader reader;
  std::optional<proto::Fatal> fatal;
  bool welcomed = false, replied = false;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!fatal && Clock::now() < deadline) {
    char buffer[4096];
    auto n = (*channel)->read(buffer, sizeof buffer);
    if (!n && n.error().code == EAGAIN) {
      struct pollfd p = {fd.get(), POLLIN, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    if (!n || *n == 0) break;
    reader.feed(std::string_view(buffer, *n));
    for (auto next = reader.next(); next.ok() && next->has_value(); next = reader.next()) {
      if (auto* w = std::get_if<proto::Welcome>(&**next)) welcomed = (w->capabilities & proto::kCapAuth) != 0;
      if (std::holds_alternative<proto::Reply>(**next)) replied = true;
      if (auto* f = std::get_if<proto::Fatal>(&**next)) fatal = *f;
    }
  }
  EXPECT_TRUE(welcomed) << "the Welcome should offer the auth capability";
  EXPECT_FALSE(replied) << "the Watch was answered before authentication";
  ASSERT_TRUE(fatal.has_value()) << "no Fatal before the close";
  EXPECT_EQ(fatal->code, EACCES) << fatal->message;
  EXPECT_NE(fatal->message.find("authenticate first"), std::string::npos) << fatal->message;
}

TEST_F(TlsTest, ATokenFileOthersCanReadIsRefused) {
  serverToken("0123456789abcdef-the-token", 0644);
  startDaemon({"--token-dir", path("tokens")});
  expectRefused(connect(withToken("0123456789abcdef-the-token")), EACCES, "refused the token");
  EXPECT_TRUE(logSays("is accessible to other users; chmod 600"));

  // The client is as strict with its own copy.
  TlsSettings tls = withToken("0123456789abcdef-the-token");
  ::chmod(tls.tokenFile.c_str(), 0640);
  expectRefused(connect(tls), EACCES, "chmod 600 " + tls.tokenFile);
}

TEST_F(TlsTest, PlainTcpOffLoopbackNeedsInsecureTcp) {
  auto refused = AgentProcess::spawn({RNOTIFYD_PATH, "--listen", "tcp:0.0.0.0:0", "--export", path("export")});
  ASSERT_TRUE(refused.ok());
  int code = -1;
  for (int i = 0; i < 100 && code < 0; ++i) code = refused->reap(100);
  EXPECT_EQ(code, 1);
  EXPECT_NE(refused->stderrText().find("refusing plain TCP on 0.0.0.0"), std::string::npos) << refused->stderrText();
  EXPECT_NE(refused->stderrText().find("--insecure-tcp"), std::string::npos);

  auto allowed = AgentProcess::spawn({RNOTIFYD_PATH, "--listen", "tcp:0.0.0.0:0", "--insecure-tcp", "--export",
                                      path("export"), "--log-file", path("insecure.log"), "--log-level", "info"});
  ASSERT_TRUE(allowed.ok());
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (readFile(path("insecure.log")).find("listening on tcp:0.0.0.0:") == std::string::npos &&
         Clock::now() < deadline) {
    ASSERT_EQ(allowed->reap(20), -1) << allowed->stderrText();
  }
  EXPECT_NE(readFile(path("insecure.log")).find("anyone who can reach it"), std::string::npos);
}

TEST_F(TlsTest, UsageErrorsNameWhatIsMissing) {
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), RNOTIFYD_PATH);
    auto p = AgentProcess::spawn(args);
    EXPECT_TRUE(p.ok());
    int code = -1;
    for (int i = 0; i < 100 && code < 0; ++i) code = p->reap(100);
    return std::make_pair(code, p->stderrText());
  };
  auto [noAuth, noAuthText] = run({"--listen", "tls:127.0.0.1:0", "--tls-cert", path("server.pem"), "--tls-key",
                                   path("server.key"), "--export", path("export")});
  EXPECT_EQ(noAuth, 2);
  EXPECT_NE(noAuthText.find("--tls-client-ca FILE"), std::string::npos) << noAuthText;
  auto [noCert, noCertText] =
      run({"--listen", "tls:127.0.0.1:0", "--tls-client-ca", path("ca.pem"), "--export", path("export")});
  EXPECT_EQ(noCert, 2);
  EXPECT_NE(noCertText.find("--tls-cert FILE and --tls-key FILE"), std::string::npos) << noCertText;
  ::chmod(path("server.key").c_str(), 0644);
  auto [openKey, openKeyText] =
      run({"--listen", "tls:127.0.0.1:0", "--tls-cert", path("server.pem"), "--tls-key", path("server.key"),
           "--tls-client-ca", path("ca.pem"), "--export", path("export")});
  EXPECT_EQ(openKey, 1);
  EXPECT_NE(openKeyText.find("is readable by all users"), std::string::npos) << openKeyText;
}

// While clients without the right credentials hammer the port (plain bytes,
// another CA's certificate, connections that never start the handshake), a
// client with the right certificate keeps receiving its events.
TEST_F(TlsTest, AGoodClientKeepsItsEventsWhileBadClientsHammer) {
  startDaemon({"--tls-client-ca", path("ca.pem")});
  auto good = connect(withCertificate());
  ASSERT_TRUE(good.ok()) << good.error().message;
  ASSERT_EQ(watch(**good).status, 0);
  std::vector<UniqueFd> silent;
  for (int round = 0; round < 20; ++round) {
    std::string hello;
    proto::encode(proto::Hello{}, hello);
    rawExchange(hello);
    expectRefused(connect(withCertificate("stranger")), EACCES, "unknown ca");
    UniqueFd idle(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(idle.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    silent.push_back(std::move(idle));
    ASSERT_TRUE(seesCreate(**good, "during-" + std::to_string(round))) << "round " << round;
  }
  EXPECT_TRUE(seesCreate(**good, "after"));
}

// The client's side of the settings: the [[server]] keys of a tls: endpoint.
Result<Config> parseServer(const std::string& keys) {
  return parseConfig("[[server]]\nmatch = \"nas:/x\"\n" + keys, "/etc/rnotify/config.toml");
}

TEST(TlsClientConfig, ATlsEndpointTakesItsKeys) {
  ::setenv("HOME", "/home/me", 1);
  auto config = parseServer(
      "endpoint = \"tls:nas:7311\"\ntls_ca = \"/etc/rnotify/ca.pem\"\n"
      "tls_fingerprint = \"SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
      "01:23:45:67:89\"\ntls_cert = \"~/.config/rnotify/me.pem\"\ntls_key = \"~/.config/rnotify/me.key\"\n");
  ASSERT_TRUE(config.ok()) << config.error().message;
  const TlsSettings& tls = config->servers.at(0).tls;
  EXPECT_EQ(tls.ca, "/etc/rnotify/ca.pem");
  EXPECT_EQ(tls.fingerprint, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  EXPECT_EQ(tls.cert, "/home/me/.config/rnotify/me.pem");
  EXPECT_EQ(tls.key, "/home/me/.config/rnotify/me.key");

  auto token = parseServer(
      "endpoint = \"tls:[::1]:7311\"\ntls_ca = \"/ca.pem\"\ntoken_file = \"/t\"\n"
      "token_user = \"alice\"\n");
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(token->servers.at(0).tls.tokenUser, "alice");
}

TEST(TlsClientConfig, MissingOrMisplacedKeysAreErrors) {
  auto expectError = [](const std::string& keys, const std::string& fragment) {
    auto config = parseServer(keys);
    ASSERT_FALSE(config.ok()) << keys;
    EXPECT_NE(config.error().message.find(fragment), std::string::npos) << config.error().message;
  };
  expectError("endpoint = \"tls:nas:7311\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\n",
              "needs tls_ca (the CA that signed the server's certificate) or tls_fingerprint");
  expectError("endpoint = \"tls:nas:7311\"\ntls_ca = \"/ca\"\n", "needs tls_cert and tls_key, or token_file");
  expectError("endpoint = \"tls:nas:7311\"\ntls_ca = \"/ca\"\ntls_cert = \"/c\"\n", "go together");
  expectError("endpoint = \"tcp:127.0.0.1:7311\"\ntls_ca = \"/ca\"\n", "apply to tls: endpoints only");
  expectError("endpoint = \"tls:nas:7311\"\ntls_fingerprint = \"SHA256:12:34\"\n", "64 hex digits");
  expectError("endpoint = \"tls:nas\"\n", "is not tls:HOST:PORT");
}

}  // namespace
}  // namespace rnotify
