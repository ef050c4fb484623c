// strata::Client against a real in-process server.

#include "client/strata_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata {
namespace {

using ::strata::testing::InProcessServer;
using ::testing::HasSubstr;

// A 127.0.0.1 port with nothing listening (bound, then closed).
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class StrataClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = InProcessServer::Start();
    ASSERT_OK(s);
    server_ = *std::move(s);
    client_ = std::make_unique<Client>(server_->address());
  }

  std::vector<std::pair<std::string, std::string>> ScanAll(
      std::string_view start, std::string_view end, uint32_t limit = 0,
      bool keys_only = false) {
    std::vector<std::pair<std::string, std::string>> out;
    EXPECT_OK(client_->Scan(start, end, limit, keys_only,
                            [&](std::string_view k, std::string_view v) {
                              out.emplace_back(k, v);
                              return true;
                            }));
    return out;
  }

  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(StrataClientTest, PutGetDelete) {
  ASSERT_OK(client_->Put("k", "v"));
  ASSERT_OK_AND_ASSIGN(auto v, client_->Get("k"));
  EXPECT_EQ(v, std::optional<std::string>("v"));
  ASSERT_OK(client_->Delete("k"));
  ASSERT_OK_AND_ASSIGN(v, client_->Get("k"));
  EXPECT_FALSE(v.has_value());
  ASSERT_OK(client_->Delete("k"));  // Missing: still OK.
}

TEST_F(StrataClientTest, EmptyValueIsPresent) {
  ASSERT_OK(client_->Put("k", ""));
  ASSERT_OK_AND_ASSIGN(auto v, client_->Get("k"));
  EXPECT_EQ(v, std::optional<std::string>(""));
}

TEST_F(StrataClientTest, LargestValueRoundTrips) {
  const std::string big(2 << 20, 'x');
  ASSERT_OK(client_->Put("big", big));
  ASSERT_OK_AND_ASSIGN(auto v, client_->Get("big"));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->size(), big.size());
}

TEST_F(StrataClientTest, WriteAppliesInOrder) {
  ASSERT_OK(client_->Write({Mutation::Put("a", "1"), Mutation::Put("b", "2"),
                            Mutation::Delete("a"), Mutation::Put("b", "3")}));
  ASSERT_OK_AND_ASSIGN(auto a, client_->Get("a"));
  EXPECT_FALSE(a.has_value());
  ASSERT_OK_AND_ASSIGN(auto b, client_->Get("b"));
  EXPECT_EQ(b, std::optional<std::string>("3"));
  EXPECT_OK(client_->Write({}));
}

TEST_F(StrataClientTest, ScanBoundsLimitKeysOnlyAndEarlyStop) {
  std::vector<Mutation> batch;
  for (int i = 0; i < 50; ++i) {
    batch.push_back(Mutation::Put(absl::StrFormat("s%02d", i), "v"));
  }
  ASSERT_OK(client_->Write(batch));
  EXPECT_EQ(ScanAll("s10", "s20").size(), 10u);
  EXPECT_EQ(ScanAll("s45", "").size(), 5u);
  auto limited = ScanAll("", "", 3);
  ASSERT_EQ(limited.size(), 3u);
  EXPECT_EQ(limited[0].first, "s00");
  for (const auto& [k, v] : ScanAll("s00", "s05", 0, true)) EXPECT_EQ(v, "");

  int seen = 0;
  ASSERT_OK(client_->Scan("", "", 0, false,
                          [&](std::string_view, std::string_view) {
                            return ++seen < 7;
                          }));
  EXPECT_EQ(seen, 7);
  // The server is still fine after the early stop.
  EXPECT_EQ(ScanAll("", "").size(), 50u);
}

TEST_F(StrataClientTest, ServerErrorsKeepCodeAndMessage) {
  absl::Status s = client_->Put("", "v");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--max_key_bytes"));
  s = client_->Write({Mutation::Put("ok", "v"), Mutation::Delete("")});
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("mutation 1"));
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Get("").status()));
}

TEST_F(StrataClientTest, HealthIsServing) {
  ASSERT_OK_AND_ASSIGN(bool serving, client_->Health());
  EXPECT_TRUE(serving);
  ASSERT_OK_AND_ASSIGN(serving, client_->Health("strata.v1.KV"));
  EXPECT_TRUE(serving);
  EXPECT_TRUE(absl::IsNotFound(client_->Health("no.such.Service").status()));
}

TEST(StrataClientNoServerTest, UnreachableServerIsUnavailable) {
  strata::testing::PinGrpcLibrary();
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  Client client(absl::StrFormat("127.0.0.1:%d", UnusedPort()), options);
  EXPECT_TRUE(absl::IsUnavailable(client.Put("k", "v")));
  EXPECT_TRUE(absl::IsUnavailable(client.Get("k").status()));
  EXPECT_TRUE(absl::IsUnavailable(client.Health().status()));
  EXPECT_TRUE(absl::IsUnavailable(client.Scan(
      "", "", 0, false, [](std::string_view, std::string_view) { return true; })));
}

TEST(FromGrpcStatusTest, SameCodeSameMessage) {
  EXPECT_OK(FromGrpcStatus(grpc::Status::OK));
  absl::Status s =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::DATA_LOSS, "bad block"));
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(s.message(), "bad block");
  EXPECT_TRUE(absl::IsResourceExhausted(FromGrpcStatus(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x"))));
}

}  // namespace
}  // namespace strata
