#ifndef STRATA_STORAGE_UTIL_CODING_H_
#define STRATA_STORAGE_UTIL_CODING_H_

// Little-endian fixed-width integers and LEB128 varints, as used by every
// on-disk format (the same encodings as LevelDB's util/coding.h).

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace strata::storage {

inline void EncodeFixed32(char* dst, uint32_t v) { std::memcpy(dst, &v, 4); }
inline void EncodeFixed64(char* dst, uint64_t v) { std::memcpy(dst, &v, 8); }
inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "on-disk formats assume a little-endian host");

void PutFixed32(std::string* dst, uint32_t v);
void PutFixed64(std::string* dst, uint64_t v);
void PutVarint32(std::string* dst, uint32_t v);
void PutVarint64(std::string* dst, uint64_t v);
// Varint32 length followed by the bytes.
void PutLengthPrefixed(std::string* dst, std::string_view value);

// Writes v at dst and returns a pointer past the last byte written.
// REQUIRES: dst has room for 5 (varint32) or 10 (varint64) bytes.
char* EncodeVarint32(char* dst, uint32_t v);
char* EncodeVarint64(char* dst, uint64_t v);
int VarintLength(uint64_t v);

namespace coding_internal {
// The general decoders behind the inline one-byte fast paths below.
const char* GetVarint32PtrSlow(const char* p, const char* limit,
                               uint32_t* value);
bool GetVarint64Slow(std::string_view* input, uint64_t* value);
}  // namespace coding_internal

// Pointer-based varint32 decoder for hot loops: returns a pointer past the
// varint, or nullptr if it is malformed or runs past limit. A value below
// 128 (one byte: lengths, flags, small counts) is decoded inline, as in
// LevelDB's util/coding.h.
inline const char* GetVarint32Ptr(const char* p, const char* limit,
                                  uint32_t* value) {
  if (p < limit) {
    const uint32_t byte = static_cast<unsigned char>(*p);
    if (byte < 0x80) {
      *value = byte;
      return p + 1;
    }
  }
  return coding_internal::GetVarint32PtrSlow(p, limit, value);
}

// Parsers consume from the front of *input. They return false (leaving
// *input unspecified) on truncated or malformed input; they never read
// outside the view. The varint parsers decode one-byte values inline.
inline bool GetVarint32(std::string_view* input, uint32_t* value) {
  const char* p = input->data();
  const char* q = GetVarint32Ptr(p, p + input->size(), value);
  if (q == nullptr) return false;
  input->remove_prefix(static_cast<size_t>(q - p));
  return true;
}
inline bool GetVarint64(std::string_view* input, uint64_t* value) {
  if (!input->empty() && static_cast<unsigned char>(input->front()) < 0x80) {
    *value = static_cast<unsigned char>(input->front());
    input->remove_prefix(1);
    return true;
  }
  return coding_internal::GetVarint64Slow(input, value);
}
bool GetFixed32(std::string_view* input, uint32_t* value);
bool GetFixed64(std::string_view* input, uint64_t* value);
inline bool GetLengthPrefixed(std::string_view* input,
                              std::string_view* result) {
  uint32_t len;
  if (!GetVarint32(input, &len) || input->size() < len) return false;
  *result = input->substr(0, len);
  input->remove_prefix(len);
  return true;
}

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_CODING_H_
