#ifndef STRATA_STORAGE_UTIL_FILENAME_H_
#define STRATA_STORAGE_UTIL_FILENAME_H_

// Names of the files in a database directory:
//   LOCK                 advisory lock held while the DB is open
//   CURRENT              names the live manifest
//   MANIFEST-<number>    version edits (docs/manifest-format.md)
//   <number>.wal         write-ahead log (docs/wal-format.md)
//   <number>.sst         SSTable (docs/sstable-format.md)
//   <number>.tmp         a temporary file being written
// Numbers come from one counter, so every file name is unique.

#include <cstdint>
#include <string>
#include <string_view>

namespace strata::storage {

enum class FileType { kWal, kTable, kManifest, kCurrent, kLock, kTemp };

std::string WalFileName(const std::string& dbname, uint64_t number);
std::string TableFileName(const std::string& dbname, uint64_t number);
std::string ManifestFileName(const std::string& dbname, uint64_t number);
std::string CurrentFileName(const std::string& dbname);
std::string LockFileName(const std::string& dbname);
std::string TempFileName(const std::string& dbname, uint64_t number);

// Parses a directory entry name. Returns false for names the engine does
// not own (which are left alone).
bool ParseFileName(std::string_view name, uint64_t* number, FileType* type);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_FILENAME_H_
