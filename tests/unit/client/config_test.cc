// Config parsing, layering of user and system files, and the server mapping
// for NFS and SMB mounts.
#include "mounts/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace rnotify {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "rnotify-config.XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::path file = fs::path(path_) / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file.string();
  }
  std::string path(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

TEST(ParseConfig, FullFile) {
  Result<Config> config = parseConfig(R"(
agent = "/opt/rnotify/bin/rnotifyd --stdio"

[[server]]
match = "nas:/export"
endpoint = "tcp:nas.example:7311"
remote_root = "/srv/export"

[[server]]
match = "//nas/share"
endpoint = "unix:/run/rnotifyd.sock"
)",
                                      "test.toml");
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->agent, "/opt/rnotify/bin/rnotifyd --stdio");
  EXPECT_EQ(config->origin, "test.toml");
  ASSERT_EQ(config->servers.size(), 2u);
  EXPECT_EQ(config->servers[0].match, "nas:/export");
  EXPECT_EQ(config->servers[0].endpoint, "tcp:nas.example:7311");
  EXPECT_EQ(config->servers[0].remoteRoot, "/srv/export");
  EXPECT_EQ(config->servers[1].remoteRoot, "");
}

TEST(ParseConfig, EmptyTextGivesDefaults) {
  Result<Config> config = parseConfig("", "empty.toml");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->agent, "rnotifyd --stdio");
  EXPECT_TRUE(config->servers.empty());
}

void expectError(std::string_view text, const std::string& fragment) {
  Result<Config> config = parseConfig(text, "/etc/rnotify/config.toml");
  ASSERT_FALSE(config.ok()) << text;
  EXPECT_NE(config.error().message.find(fragment), std::string::npos) << config.error().message;
  EXPECT_EQ(config.error().message.rfind("/etc/rnotify/config.toml:", 0), 0u) << config.error().message;
}

TEST(ParseConfig, Errors) {
  expectError("agent = \"x\"\nagnet = \"y\"\n", "config.toml:2: unknown key 'agnet'");
  expectError("[[server]]\nmatch = \"a:/b\"\nendpoint = \"tcp:a:1\"\nremoteroot = \"/x\"\n",
              "unknown key 'remoteroot'");
  expectError("[[server]]\nmatch = \"a:/b\"\nendpoint = \"http://a\"\n", "must start with 'unix:' or 'tcp:'");
  expectError("[[server]]\nmatch = \"a:/b\"\nendpoint = \"tcp:a\"\n", "tcp:HOST:PORT");
  expectError("[[server]]\nmatch = \"a:/b\"\n", "needs both 'match' and 'endpoint'");
  expectError("agent = 3\n", "'agent' must be a string");
  expectError("agent = \"\"\n", "'agent' is empty");
  expectError("server = \"x\"\n", "[[server]] tables");
  expectError("agent = \"unterminated\n", "config.toml:1:");
}

TEST(CheckEndpoint, Syntax) {
  for (const char* good : {"unix:/run/rnotifyd.sock", "unix:@abstract", "tcp:nas:7311", "tcp:192.0.2.1:1",
                           "tcp:[::1]:65535", "tls:nas:7311"}) {
    EXPECT_TRUE(checkEndpoint(good).ok()) << good;
  }
  for (const char* bad : {"", "unix:", "unix:relative.sock", "tcp:", "tcp::7311", "tcp:nas:", "tcp:nas:0",
                          "tcp:nas:65536", "tcp:nas:http", "tcp:::1:7311", "tls:nas:"}) {
    EXPECT_FALSE(checkEndpoint(bad).ok()) << bad;
  }
}

TEST(LoadConfig, UserLayeredOverSystem) {
  TempDir dir;
  ConfigSources sources;
  sources.systemFile = dir.write("etc/config.toml",
                                 "agent = \"system-agent\"\n[[server]]\nmatch = \"nas:/\"\nendpoint = \"tcp:nas:1\"\n");
  sources.userFile =
      dir.write("home/config.toml", "[[server]]\nmatch = \"nas:/home\"\nendpoint = \"unix:/run/u.sock\"\n");
  Result<Config> config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->agent, "system-agent");  // the user file does not name one
  ASSERT_EQ(config->servers.size(), 2u);
  EXPECT_EQ(config->servers[0].match, "nas:/home");  // user first
  EXPECT_EQ(config->servers[1].match, "nas:/");
  EXPECT_NE(config->origin.find(sources.userFile), std::string::npos);
  EXPECT_NE(config->origin.find(sources.systemFile), std::string::npos);

  dir.write("home/config.toml", "agent = \"user-agent\"\n");
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->agent, "user-agent");

  sources.agentOverride = "env-agent --stdio";
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->agent, "env-agent --stdio");
}

TEST(LoadConfig, EchoWindowFromFilesAndEnvironment) {
  TempDir dir;
  ConfigSources sources;
  Result<Config> config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->echoWindowMs, 2000);
  sources.systemFile = dir.write("etc/config.toml", "echo_window_ms = 500\n");
  sources.userFile = dir.write("home/config.toml", "echo_window_ms = 0\n");
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->echoWindowMs, 0) << "the user's choice wins, and 0 (off) is a choice";
  sources.echoWindowOverride = "750";
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->echoWindowMs, 750);
  sources.echoWindowOverride = "soon";
  config = loadConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("RNOTIFY_ECHO_WINDOW_MS"), std::string::npos);
  for (const char* bad : {"echo_window_ms = -1\n", "echo_window_ms = \"2s\"\n"}) {
    Result<Config> parsed = parseConfig(bad, "test.toml");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find("echo_window_ms"), std::string::npos) << parsed.error().message;
  }
}

TEST(LoadConfig, DedupModeAndHoldFromFilesAndEnvironment) {
  TempDir dir;
  ConfigSources sources;
  Result<Config> config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->dedup, DedupMode::kAuto);
  EXPECT_EQ(config->echoHoldMs, 250);
  sources.systemFile = dir.write("etc/config.toml", "dedup = \"echo\"\necho_hold_ms = 100\n");
  sources.userFile = dir.write("home/config.toml", "dedup = \"state\"\n");
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->dedup, DedupMode::kState) << "the user's choice wins";
  EXPECT_EQ(config->echoHoldMs, 100) << "what the user leaves out comes from the system file";
  sources.dedupOverride = "origin";
  sources.echoHoldOverride = "40";
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->dedup, DedupMode::kOrigin);
  EXPECT_EQ(config->echoHoldMs, 40);
  sources.dedupOverride = "smart";
  config = loadConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("RNOTIFY_DEDUP"), std::string::npos) << config.error().message;
  EXPECT_NE(config.error().message.find("auto, origin, state, echo or off"), std::string::npos);
  for (const char* bad : {"dedup = 1\n", "dedup = \"fast\"\n", "echo_hold_ms = -5\n"}) {
    Result<Config> parsed = parseConfig(bad, "test.toml");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find("test.toml:1"), std::string::npos) << parsed.error().message;
  }
}

TEST(LoadConfig, KeepaliveFromFilesAndEnvironment) {
  TempDir dir;
  ConfigSources sources;
  Result<Config> config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->keepaliveMs, 2000);
  sources.systemFile = dir.write("etc/config.toml", "keepalive_ms = 5000\n");
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->keepaliveMs, 5000);
  sources.keepaliveOverride = "60000";  // past what the server relies on
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->keepaliveMs, kMaxKeepaliveMs);
  sources.keepaliveOverride = "often";
  config = loadConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find("RNOTIFY_KEEPALIVE_MS"), std::string::npos) << config.error().message;
  for (const char* bad : {"keepalive_ms = 0\n", "keepalive_ms = 30000\n", "keepalive_ms = \"2s\"\n"}) {
    Result<Config> parsed = parseConfig(bad, "test.toml");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.error().message.find("keepalive_ms"), std::string::npos) << parsed.error().message;
  }
}

TEST(LoadConfig, MissingFilesAreFineButExplicitOneMustExist) {
  TempDir dir;
  ConfigSources sources;
  sources.userFile = dir.path("none/config.toml");
  sources.systemFile = dir.path("also-none.toml");
  Result<Config> config = loadConfig(sources);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->agent, "rnotifyd --stdio");
  EXPECT_EQ(config->origin, "built-in defaults");

  sources.explicitFile = dir.path("missing.toml");
  config = loadConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code, ENOENT);
  EXPECT_NE(config.error().message.find("RNOTIFY_CONFIG"), std::string::npos);

  // An explicit file is used alone: the user file's error is not reached.
  dir.write("none/config.toml", "bogus = 1\n");
  sources.explicitFile = dir.write("explicit.toml", "agent = \"explicit\"\n");
  config = loadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->agent, "explicit");
}

TEST(LoadConfig, ErrorsNameTheFile) {
  TempDir dir;
  ConfigSources sources;
  sources.userFile = dir.write("user.toml", "\n\nbogus = 1\n");
  Result<Config> config = loadConfig(sources);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.error().message.find(sources.userFile + ":3: unknown key 'bogus'"), std::string::npos)
      << config.error().message;
}

TEST(ConfigSourcesFromEnvironment, HonoursXdgConfigHome) {
  const char* home = std::getenv("HOME");
  std::string savedHome = home == nullptr ? "" : home;
  ::setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
  ::setenv("RNOTIFY_AGENT", "a", 1);
  ConfigSources sources = configSourcesFromEnvironment();
  EXPECT_EQ(sources.userFile, "/x/cfg/rnotify/config.toml");
  EXPECT_EQ(sources.systemFile, "/etc/rnotify/config.toml");
  EXPECT_EQ(sources.agentOverride, "a");
  ::setenv("XDG_CONFIG_HOME", "relative", 1);  // invalid per the XDG spec
  ::setenv("HOME", "/home/u", 1);
  EXPECT_EQ(configSourcesFromEnvironment().userFile, "/home/u/.config/rnotify/config.toml");
  ::unsetenv("XDG_CONFIG_HOME");
  ::unsetenv("RNOTIFY_AGENT");
  ::setenv("HOME", savedHome.c_str(), 1);
}

MountInfo mount(const char* type, const char* source, const char* root = "/") {
  MountInfo m;
  m.fsType = type;
  m.source = source;
  m.root = root;
  m.mountPoint = "/mnt/x";
  return m;
}

TEST(FindServer, LongestPrefixAtPathBoundary) {
  Config config;
  config.servers = {{"nas:/", "tcp:nas:1", ""}, {"nas:/export", "tcp:nas:2", ""}, {"//nas/share", "tcp:nas:3", ""}};
  EXPECT_EQ(findServer(config, mount("nfs4", "nas:/export/home"))->endpoint, "tcp:nas:2");
  EXPECT_EQ(findServer(config, mount("nfs4", "nas:/export"))->endpoint, "tcp:nas:2");
  EXPECT_EQ(findServer(config, mount("nfs4", "nas:/export/"))->endpoint, "tcp:nas:2");
  EXPECT_EQ(findServer(config, mount("nfs4", "nas:/exports"))->endpoint, "tcp:nas:1");
  EXPECT_EQ(findServer(config, mount("cifs", "//nas/share/docs"))->endpoint, "tcp:nas:3");
  EXPECT_EQ(findServer(config, mount("cifs", "//nas/shared")), nullptr);
  EXPECT_EQ(findServer(config, mount("nfs", "other:/export")), nullptr);
}

TEST(ServerPathFor, NfsDefaultsToTheExportPath) {
  ServerEntry entry{"nas:/export", "tcp:nas:2", ""};
  EXPECT_EQ(serverPathFor(entry, mount("nfs4", "nas:/export/home"), "alice/doc"), "/export/home/alice/doc");
  EXPECT_EQ(serverPathFor(entry, mount("nfs4", "nas:/export"), ""), "/export");
}

TEST(ServerPathFor, SmbDefaultsToTheShareAndItsPath) {
  ServerEntry entry{"//nas/share", "tcp:nas:2", ""};
  EXPECT_EQ(serverPathFor(entry, mount("cifs", "//nas/share"), "x/y"), "/share/x/y");
  EXPECT_EQ(serverPathFor(entry, mount("cifs", "//nas/share/sub"), "x"), "/share/sub/x");
  EXPECT_EQ(serverPathFor(entry, mount("cifs", "//nas/share"), ""), "/share");
}

TEST(ServerPathFor, RemoteRootReplacesTheMatchedPrefix) {
  ServerEntry entry{"nas:/export", "tcp:nas:2", "/srv/export"};
  EXPECT_EQ(serverPathFor(entry, mount("nfs4", "nas:/export/home"), "a"), "/srv/export/home/a");
  EXPECT_EQ(serverPathFor(entry, mount("nfs4", "nas:/export"), ""), "/srv/export");
  ServerEntry smb{"//nas/share", "unix:/run/r.sock", "/srv/samba/share"};
  EXPECT_EQ(serverPathFor(smb, mount("cifs", "//nas/share"), "x/y"), "/srv/samba/share/x/y");
  EXPECT_EQ(serverPathFor(smb, mount("cifs", "//nas/share/sub"), "x"), "/srv/samba/share/sub/x");
}

TEST(ServerPathFor, BindMountOfSubdirectoryAddsTheMountRoot) {
  ServerEntry smb{"//nas/share", "unix:/run/r.sock", "/srv/samba/share"};
  // A bind mount of a subdirectory shows it in root, not in the source.
  EXPECT_EQ(serverPathFor(smb, mount("cifs", "//nas/share", "/projects"), "a"), "/srv/samba/share/projects/a");
  // A cifs prefix path shows in both; it is not added twice.
  EXPECT_EQ(serverPathFor(smb, mount("cifs", "//nas/share/projects", "/projects"), "a"), "/srv/samba/share/projects/a");
}

}  // namespace
}  // namespace rnotify
