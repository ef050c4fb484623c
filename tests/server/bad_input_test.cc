// Hostile and careless clients: malformed protobuf bytes sent to every
// method through a generic (byte-level) stub, random garbage, empty and
// oversized keys and values, oversized messages for every method,
// 10,000-mutation batches, huge-limit scans cancelled midway, expired
// deadlines on every method, thousands of concurrent streams, unknown
// methods. Every request gets a clear status code, nothing half-written
// becomes visible, no call object leaks, and the server keeps serving.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;
using ::strata::testing::TestServerOptions;

constexpr absl::Duration kWait = absl::Seconds(30);
const char* const kMethods[] = {"Get", "Put", "Delete", "Write", "Scan"};

std::chrono::system_clock::time_point Deadline(absl::Duration d = kWait) {
  return absl::ToChronoTime(absl::Now() + d);
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = TestServerOptions();
    // Small limits keep oversized messages cheap: requests above 1 MiB are
    // ours to refuse (INVALID_ARGUMENT), above 2 MiB gRPC's
    // (RESOURCE_EXHAUSTED).
    options.limits.max_key_bytes = 1024;
    options.limits.max_value_bytes = 256 << 10;
    options.limits.max_message_bytes = 1 << 20;
    options.limits.max_batch_mutations = 10000;
    storage::Options engine;
    engine.memtable_bytes = 1 << 20;
    auto server = InProcessServer::Start(options, nullptr, nullptr, engine);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = NewChannel(0);
    stub_ = v1::KV::NewStub(channel_);
    generic_ = std::make_unique<grpc::GenericStub>(channel_);
  }

  void TearDown() override {
    // Whatever a test did, no call object is left behind and the server
    // still answers.
    EXPECT_TRUE(WaitForIdle()) << "live calls: "
                               << server_->server()->TEST_live_calls();
    ExpectServing();
  }

  // A channel with its own connection (`n` keeps subchannels apart).
  std::shared_ptr<grpc::Channel> NewChannel(int n) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetInt("strata.test.connection", n);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(server_->address(),
                                     grpc::InsecureChannelCredentials(), args);
  }

  bool WaitForIdle() { return server_->WaitForIdle(kWait); }

  void ExpectServing() {
    grpc::ClientContext put_ctx;
    put_ctx.set_deadline(Deadline());
    v1::PutRequest put;
    put.set_key("canary");
    put.set_value(std::to_string(++canary_));
    v1::PutResponse put_resp;
    grpc::Status s = stub_->Put(&put_ctx, put, &put_resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    grpc::ClientContext get_ctx;
    get_ctx.set_deadline(Deadline());
    v1::GetRequest get;
    get.set_key("canary");
    v1::GetResponse get_resp;
    s = stub_->Get(&get_ctx, get, &get_resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(get_resp.value(), std::to_string(canary_));
  }

  // Sends `payloads` as request messages of /strata.v1.KV/<method>, byte
  // for byte, and reads every response. Returns the final status.
  grpc::Status RawCall(const std::string& method,
                       const std::vector<std::string>& payloads,
                       int* responses = nullptr,
                       absl::Duration timeout = kWait) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(timeout));
    grpc::CompletionQueue cq;
    auto call = generic_->PrepareCall(&ctx, "/strata.v1.KV/" + method, &cq);
    auto step = [&cq](void* tag) {
      void* got = nullptr;
      bool ok = false;
      EXPECT_EQ(cq.AsyncNext(&got, &ok, Deadline()),
                grpc::CompletionQueue::GOT_EVENT);
      EXPECT_EQ(got, tag);
      return ok;
    };
    int tag = 0;
    call->StartCall(&tag);
    bool ok = step(&tag);
    for (const std::string& p : payloads) {
      if (!ok) break;
      grpc::Slice slice(p);
      grpc::ByteBuffer buffer(&slice, 1);
      call->Write(buffer, &tag);
      ok = step(&tag);
    }
    if (ok) {
      call->WritesDone(&tag);
      step(&tag);
    }
    grpc::ByteBuffer response;
    int n = 0;
    while (true) {
      call->Read(&response, &tag);
      if (!step(&tag)) break;
      n++;
    }
    if (responses != nullptr) *responses = n;
    grpc::Status status;
    call->Finish(&status, &tag);
    step(&tag);
    cq.Shutdown();
    void* ignored;
    bool ignored_ok;
    while (cq.Next(&ignored, &ignored_ok)) {
    }
    return status;
  }

  grpc::Status Write(const v1::WriteRequest& req,
                     absl::Duration timeout = kWait) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(timeout));
    v1::WriteResponse resp;
    return stub_->Write(&ctx, req, &resp);
  }

  // Writes n keys prefix+"%02d" with values of `bytes`, four per Write
  // (each request stays under the 1 MiB message limit).
  void FillLarge(const std::string& prefix, int n, size_t bytes) {
    for (int i = 0; i < n; i += 4) {
      v1::WriteRequest w;
      for (int j = i; j < std::min(n, i + 4); j++) {
        auto* p = w.add_mutations()->mutable_put();
        p->set_key(absl::StrFormat("%s%02d", prefix, j));
        p->set_value(std::string(bytes, prefix[0]));
      }
      grpc::Status s = Write(w);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }

  // Keys in [start, end) (keys only), or -1 on error.
  int64_t CountKeys(const std::string& start, const std::string& end) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::ScanRequest req;
    req.set_start_key(start);
    req.set_end_key(end);
    req.set_keys_only(true);
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse resp;
    int64_t n = 0;
    while (reader->Read(&resp)) n += resp.pairs_size();
    return reader->Finish().ok() ? n : -1;
  }

  std::unique_ptr<InProcessServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KV::Stub> stub_;
  std::unique_ptr<grpc::GenericStub> generic_;
  int canary_ = 0;
};

// ------------------------------------------------------- malformed bytes

TEST_F(BadInputTest, MalformedProtobufIsRejectedByEveryMethod) {
  const std::vector<std::string> malformed = {
      std::string("\x0a\xff\xff\xff\xff\x0f", 6),      // Length beyond the end.
      std::string("\x0a\x05" "abc", 5),                // Truncated bytes field.
      std::string("\x0a", 1),                          // Tag without a value.
      std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11),  // Bad varint.
      std::string("\x0b", 1),                          // Unterminated group.
      std::string("\x00", 1),                          // Field number 0.
  };
  for (const char* method : kMethods) {
    for (size_t i = 0; i < malformed.size(); i++) {
      SCOPED_TRACE(absl::StrFormat("%s, payload %d", method, i));
      grpc::Status s = RawCall(method, {malformed[i]});
      // gRPC refuses what does not parse before it reaches Strata.
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << s.error_message();
    }
  }
  // Inside a Write, a mutation whose put message is truncated.
  grpc::Status s = RawCall("Write", {std::string("\x0a\x03\x0a\x05" "k", 5)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << s.error_message();
  EXPECT_EQ(CountKeys("", ""), 0);  // Nothing was written.
}

TEST_F(BadInputTest, RandomBytesGetClearCodesAndWriteNothingInvalid) {
  std::mt19937_64 rng(1234);
  const std::set<grpc::StatusCode> allowed = {
      grpc::StatusCode::OK, grpc::StatusCode::INVALID_ARGUMENT,
      grpc::StatusCode::INTERNAL};
  int codes[17] = {};
  for (const char* method : kMethods) {
    for (int i = 0; i < 120; i++) {
      std::string payload(rng() % 64, '\0');
      for (char& c : payload) c = static_cast<char>(rng());
      grpc::Status s = RawCall(method, {payload});
      codes[s.error_code()]++;
      EXPECT_TRUE(allowed.count(s.error_code()))
          << method << ": " << s.error_code() << " " << s.error_message();
    }
  }
  EXPECT_GT(codes[grpc::StatusCode::INTERNAL], 0);
  EXPECT_GT(codes[grpc::StatusCode::INVALID_ARGUMENT] + codes[0], 0);
}

// gRPC's C++ server reads only the first message of a unary (or
// server-streaming) call and ignores what follows, so a second request
// message is not an error; what matters is that exactly the first applies.
TEST_F(BadInputTest, ExtraRequestMessagesAreIgnoredNotApplied) {
  v1::PutRequest first, second;
  first.set_key("twice");
  first.set_value("first");
  second.set_key("twice");
  second.set_value("second");
  grpc::Status s =
      RawCall("Put", {first.SerializeAsString(), second.SerializeAsString()});
  ASSERT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::INTERNAL)
      << s.error_message();
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  v1::GetRequest get;
  get.set_key("twice");
  v1::GetResponse resp;
  ASSERT_TRUE(stub_->Get(&ctx, get, &resp).ok());
  if (s.ok()) {
    EXPECT_EQ(resp.value(), "first");
  } else {
    EXPECT_FALSE(resp.found());
  }
  int responses = 0;
  grpc::Status scan = RawCall("Scan", {"", ""}, &responses);
  EXPECT_TRUE(scan.ok() || scan.error_code() == grpc::StatusCode::INTERNAL)
      << scan.error_message();
}

TEST_F(BadInputTest, NoRequestMessageIsRefused) {
  for (const char* method : kMethods) {
    grpc::Status s = RawCall(method, {});
    EXPECT_FALSE(s.ok()) << method;
  }
}

TEST_F(BadInputTest, UnknownMethodIsUnimplemented) {
  grpc::Status s = RawCall("Nope", {""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  grpc::CompletionQueue cq;
  grpc::GenericStub other(channel_);
  auto call = other.PrepareCall(&ctx, "/strata.v2.KV/Get", &cq);
  call->StartCall(nullptr);
  grpc::Status status;
  call->Finish(&status, nullptr);
  void* tag;
  bool ok;
  for (int i = 0; i < 2; i++) cq.Next(&tag, &ok);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// ---------------------------------------------------- keys and values

TEST_F(BadInputTest, EmptyAndOversizedKeysAndValues) {
  auto put = [&](const std::string& k, const std::string& v) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    return stub_->Put(&ctx, req, &resp).error_code();
  };
  auto get = [&](const std::string& k) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    return stub_->Get(&ctx, req, &resp).error_code();
  };
  auto del = [&](const std::string& k) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    v1::DeleteRequest req;
    req.set_key(k);
    v1::DeleteResponse resp;
    return stub_->Delete(&ctx, req, &resp).error_code();
  };
  using C = grpc::StatusCode;
  const std::string max_key(1024, 'k'), long_key(1025, 'k');
  EXPECT_EQ(put("", "v"), C::INVALID_ARGUMENT);
  EXPECT_EQ(get(""), C::INVALID_ARGUMENT);
  EXPECT_EQ(del(""), C::INVALID_ARGUMENT);
  EXPECT_EQ(put(long_key, "v"), C::INVALID_ARGUMENT);
  EXPECT_EQ(get(long_key), C::INVALID_ARGUMENT);
  EXPECT_EQ(del(long_key), C::INVALID_ARGUMENT);
  EXPECT_EQ(put(max_key, "v"), C::OK);
  EXPECT_EQ(get(max_key), C::OK);
  EXPECT_EQ(put("v-max", std::string(256 << 10, 'v')), C::OK);
  EXPECT_EQ(put("v-over", std::string((256 << 10) + 1, 'v')), C::INVALID_ARGUMENT);
  EXPECT_EQ(put("v-empty", ""), C::OK);
  // Binary keys: NUL, 0xff, a lone high byte.
  EXPECT_EQ(put(std::string("\0\xff\x80", 3), std::string("\0", 1)), C::OK);
  EXPECT_EQ(get(std::string("\0\xff\x80", 3)), C::OK);
  // A bad key in the middle of a Write rejects all of it.
  v1::WriteRequest w;
  for (int i = 0; i < 5; i++) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key(i == 3 ? "" : absl::StrFormat("wk%d", i));
    p->set_value("x");
  }
  grpc::Status s = Write(w);
  EXPECT_EQ(s.error_code(), C::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("mutation 3"), std::string::npos)
      << s.error_message();
  w.mutable_mutations(3)->mutable_put()->set_key(long_key);
  EXPECT_EQ(Write(w).error_code(), C::INVALID_ARGUMENT);
  w.mutable_mutations(3)->clear_put();  // No operation at all.
  EXPECT_EQ(Write(w).error_code(), C::INVALID_ARGUMENT);
  EXPECT_EQ(CountKeys("wk", "wl"), 0);
  // Scan bounds are not limited beyond the message size.
  EXPECT_EQ(CountKeys(std::string(100000, 'z'), ""), 0);
  EXPECT_EQ(CountKeys("b", "a"), 0);  // end < start: empty, not an error.
}

// ------------------------------------------------------------ sizes

TEST_F(BadInputTest, OversizedMessagesForEveryMethod) {
  // 1.5 MiB: above --max_message_bytes, below gRPC's limit; 2.5 MiB: above
  // gRPC's receive limit (twice ours).
  for (size_t size : {size_t{3} << 19, size_t{5} << 19}) {
    const grpc::StatusCode want = size < (2u << 20)
                                      ? grpc::StatusCode::INVALID_ARGUMENT
                                      : grpc::StatusCode::RESOURCE_EXHAUSTED;
    const std::string big(size, 'x');
    v1::GetRequest get;
    get.set_key(big);
    v1::PutRequest put;
    put.set_key("big-put");
    put.set_value(big);
    v1::DeleteRequest del;
    del.set_key(big);
    v1::WriteRequest write;
    for (int i = 0; i < 8; i++) {
      auto* p = write.add_mutations()->mutable_put();
      p->set_key(absl::StrFormat("big-write-%d", i));
      p->set_value(std::string(size / 8, 'w'));
    }
    v1::ScanRequest scan;
    scan.set_start_key(big);
    const std::pair<const char*, std::string> requests[] = {
        {"Get", get.SerializeAsString()},
        {"Put", put.SerializeAsString()},
        {"Delete", del.SerializeAsString()},
        {"Write", write.SerializeAsString()},
        {"Scan", scan.SerializeAsString()}};
    for (const auto& [method, bytes] : requests) {
      SCOPED_TRACE(absl::StrFormat("%s of %d bytes", method, bytes.size()));
      grpc::Status s = RawCall(method, {bytes});
      EXPECT_EQ(s.error_code(), want) << s.error_message();
      if (want == grpc::StatusCode::INVALID_ARGUMENT) {
        EXPECT_NE(s.error_message().find("--max_message_bytes"),
                  std::string::npos)
            << s.error_message();
      }
    }
  }
  EXPECT_EQ(CountKeys("big", "bih"), 0);  // Nothing was written.
}

TEST_F(BadInputTest, TenThousandMutationBatches) {
  v1::WriteRequest w;
  for (int i = 0; i < 10000; i++) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key(absl::StrFormat("m%05d", i));
    p->set_value(std::string(20, 'm'));
  }
  grpc::Status s = Write(w);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(CountKeys("m", "n"), 10000);
  // One more is refused, and nothing of it is written.
  v1::WriteRequest over;
  for (int i = 0; i < 10001; i++) {
    over.add_mutations()->mutable_put()->set_key(absl::StrFormat("o%05d", i));
  }
  s = Write(over);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("10001 mutations"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(CountKeys("o", "p"), 0);
  // 10,000 deletes in one batch.
  v1::WriteRequest dels;
  for (int i = 0; i < 10000; i++) {
    dels.add_mutations()->mutable_delete_()->set_key(absl::StrFormat("m%05d", i));
  }
  ASSERT_TRUE(Write(dels).ok());
  EXPECT_EQ(CountKeys("m", "n"), 0);
}

// ------------------------------------------------ cancellation, deadlines

TEST_F(BadInputTest, HugeLimitScansCancelledMidway) {
  // 4 MiB: every full scan takes several 1 MiB messages.
  FillLarge("s", 32, 128 << 10);
  std::vector<std::thread> scanners;
  std::atomic<int> cancelled{0}, completed{0}, other{0};
  for (int t = 0; t < 16; t++) {
    scanners.emplace_back([&, t] {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline());
      v1::ScanRequest req;
      req.set_limit(UINT32_MAX);
      auto reader = stub_->Scan(&ctx, req);
      v1::ScanResponse resp;
      for (int read = 0; read <= t % 3 && reader->Read(&resp); read++) {
      }
      ctx.TryCancel();
      while (reader->Read(&resp)) {
      }
      grpc::Status s = reader->Finish();
      if (s.error_code() == grpc::StatusCode::CANCELLED) {
        cancelled++;
      } else if (s.ok()) {
        completed++;
      } else {
        other++;
      }
    });
  }
  for (auto& t : scanners) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(cancelled.load(), 0);
  EXPECT_EQ(CountKeys("s", "t"), 32);
}

TEST_F(BadInputTest, ExpiredDeadlinesOnEveryMethod) {
  for (const char* method : kMethods) {
    SCOPED_TRACE(method);
    v1::PutRequest put;  // Parses as every request type (key/value bytes).
    put.set_key("late");
    put.set_value("v");
    grpc::Status s = RawCall(method, {put.SerializeAsString()}, nullptr,
                             absl::Milliseconds(-10));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << s.error_message();
  }
  // A deadline that expires while a large write is on its way: either
  // outcome is allowed, but all of it or none of it.
  v1::WriteRequest w;
  for (int i = 0; i < 10000; i++) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key(absl::StrFormat("late%05d", i));
    p->set_value(std::string(50, 'l'));
  }
  grpc::Status s = Write(w, absl::Milliseconds(1));
  EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  ASSERT_TRUE(WaitForIdle());
  const int64_t n = CountKeys("late", "latf");
  EXPECT_TRUE(n == 0 || n == 10000) << n;
}

// ------------------------------------------------------------ streams

// 2,000 Scans and 1,000 Gets in flight at once over 8 connections (each
// connection allows 256 concurrent streams; the rest queue in the client).
TEST_F(BadInputTest, ThousandsOfConcurrentStreams) {
  v1::WriteRequest w;
  for (int i = 0; i < 50; i++) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key(absl::StrFormat("c%02d", i));
    p->set_value(std::string(100, 'c'));
  }
  ASSERT_TRUE(Write(w).ok());

  constexpr int kConnections = 8, kScans = 2000, kGets = 1000;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::KV::Stub>> stubs;
  for (int i = 0; i < kConnections; i++) {
    channels.push_back(NewChannel(i + 1));
    stubs.push_back(v1::KV::NewStub(channels.back()));
  }
  grpc::CompletionQueue cq;
  struct ScanCall {
    grpc::ClientContext ctx;
    v1::ScanResponse resp;
    std::unique_ptr<grpc::ClientAsyncReader<v1::ScanResponse>> reader;
    grpc::Status status;
    int pairs = 0;
    enum { kStarting, kReading, kFinishing } state = kStarting;
  };
  struct GetCall {
    grpc::ClientContext ctx;
    v1::GetResponse resp;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::GetResponse>> reader;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<ScanCall>> scans;
  std::vector<std::unique_ptr<GetCall>> gets;
  int expect_found = 0;
  v1::ScanRequest scan_req;
  scan_req.set_start_key("c");
  scan_req.set_limit(10);
  for (int i = 0; i < kScans; i++) {
    auto c = std::make_unique<ScanCall>();
    c->ctx.set_deadline(Deadline(absl::Seconds(120)));
    c->reader = stubs[i % kConnections]->PrepareAsyncScan(&c->ctx, scan_req, &cq);
    c->reader->StartCall(c.get());
    scans.push_back(std::move(c));
  }
  for (int i = 0; i < kGets; i++) {
    auto c = std::make_unique<GetCall>();
    c->ctx.set_deadline(Deadline(absl::Seconds(120)));
    v1::GetRequest req;
    req.set_key(absl::StrFormat("c%02d", i % 60));
    expect_found += i % 60 < 50;
    c->reader = stubs[i % kConnections]->AsyncGet(&c->ctx, req, &cq);
    c->reader->Finish(&c->resp, &c->status, reinterpret_cast<char*>(c.get()) + 1);
    gets.push_back(std::move(c));
  }
  int pending = kScans + kGets;
  while (pending > 0) {
    void* tag = nullptr;
    bool ok = false;
    ASSERT_EQ(cq.AsyncNext(&tag, &ok, Deadline(absl::Seconds(120))),
              grpc::CompletionQueue::GOT_EVENT)
        << pending << " calls still pending";
    if (reinterpret_cast<uintptr_t>(tag) & 1) {  // A Get finished.
      pending--;
      continue;
    }
    auto* c = static_cast<ScanCall*>(tag);
    switch (c->state) {
      case ScanCall::kStarting:
      case ScanCall::kReading:
        if (c->state == ScanCall::kReading && ok) c->pairs += c->resp.pairs_size();
        if (ok) {
          c->state = ScanCall::kReading;
          c->reader->Read(&c->resp, c);
        } else {
          c->state = ScanCall::kFinishing;
          c->reader->Finish(&c->status, c);
        }
        break;
      case ScanCall::kFinishing:
        pending--;
        break;
    }
  }
  for (const auto& c : scans) {
    EXPECT_TRUE(c->status.ok()) << c->status.error_message();
    EXPECT_EQ(c->pairs, 10);
  }
  int found = 0;
  for (const auto& c : gets) {
    EXPECT_TRUE(c->status.ok()) << c->status.error_message();
    found += c->resp.found();
  }
  EXPECT_EQ(found, expect_found);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

// Many clients that open a stream and vanish without reading or cancelling
// (their channels are destroyed): the server frees every call.
TEST_F(BadInputTest, AbandonedStreamsAreFreed) {
  FillLarge("a", 32, 128 << 10);
  for (int round = 0; round < 5; round++) {
    auto channel = NewChannel(100 + round);
    auto stub = v1::KV::NewStub(channel);
    grpc::CompletionQueue cq;
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientAsyncReader<v1::ScanResponse>>> readers;
    for (int i = 0; i < 50; i++) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      contexts.back()->set_deadline(Deadline());
      readers.push_back(
          stub->PrepareAsyncScan(contexts.back().get(), v1::ScanRequest(), &cq));
      readers.back()->StartCall(nullptr);
    }
    // Gone: cancel from the client's side as a closing process would.
    for (auto& ctx : contexts) ctx->TryCancel();
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }
  ASSERT_TRUE(WaitForIdle());
  EXPECT_EQ(CountKeys("a", "b"), 32);
}

}  // namespace
}  // namespace strata::server
