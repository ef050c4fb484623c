// engine_consumer DIR: opens a database in DIR, puts a key, closes it,
// reopens it and reads the key back. Exit 0 and "ok" only if the value
// survived the reopen; otherwise the failing step on stderr and exit 1.
#include <cstdio>
#include <memory>
#include <string>

#include "strata/storage/db.h"
#include "strata/storage/options.h"

namespace {

int Fail(const char* step, const absl::Status& status) {
  std::fprintf(stderr, "engine_consumer: %s: %s\n", step,
               status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: engine_consumer DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  strata::storage::Options options;
  options.create_if_missing = true;
  {
    auto db = strata::storage::DB::Open(options, dir);
    if (!db.ok()) return Fail("open", db.status());
    auto rev = (*db)->Put(strata::storage::WriteOptions(), "greeting", "hello");
    if (!rev.ok()) return Fail("put", rev.status());
    auto v = (*db)->Get(strata::storage::ReadOptions(), "greeting");
    if (!v.ok()) return Fail("get", v.status());
    if (*v != "hello") {
      std::fprintf(stderr, "engine_consumer: get: got '%s'\n", v->c_str());
      return 1;
    }
  }  // Destroying the DB closes it.
  options.create_if_missing = false;
  auto db = strata::storage::DB::Open(options, dir);
  if (!db.ok()) return Fail("reopen", db.status());
  auto v = (*db)->Get(strata::storage::ReadOptions(), "greeting");
  if (!v.ok()) return Fail("get after reopen", v.status());
  if (*v != "hello") {
    std::fprintf(stderr, "engine_consumer: after reopen: got '%s'\n",
                 v->c_str());
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
