#include "repo/wal.h"

#include <cstring>

#include "common/error.h"
#include "io/compress.h"
#include "repo/layout.h"

namespace gravl::repo {
namespace {

bool IsHex(const std::string& s, std::size_t from, std::size_t n) {
  if (s.size() < from + n) return false;
  for (std::size_t i = from; i < from + n; ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

bool IsUpperHex(const std::string& s, std::size_t from, std::size_t n) {
  if (!IsHex(s, from, n)) return false;
  for (std::size_t i = from; i < from + n; ++i) {
    if (std::islower(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

std::uint32_t ReadLe32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

std::uint64_t ReadLe64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(ReadLe32(p)) | static_cast<std::uint64_t>(ReadLe32(p + 4))
                                                       << 32;
}

}  // namespace

std::optional<WalFileName> ParseWalFileName(const std::string& name) {
  if (!IsUpperHex(name, 0, 8)) return std::nullopt;
  TimelineId tli = static_cast<TimelineId>(std::stoul(name.substr(0, 8), nullptr, 16));
  if (tli == 0) return std::nullopt;
  if (name.size() == 8 + 8 && name.compare(8, 8, ".history") == 0) {
    return WalFileName{name, WalFileKind::kHistory, tli};
  }
  if (!IsUpperHex(name, 0, 24)) return std::nullopt;
  if (name.size() == 24) return WalFileName{name, WalFileKind::kSegment, tli};
  if (name.size() == 24 + 8 && name.compare(24, 8, ".partial") == 0) {
    return WalFileName{name, WalFileKind::kPartial, tli};
  }
  // 000000010000000000000002.00000028.backup
  if (name.size() == 24 + 1 + 8 + 7 && name[24] == '.' && IsUpperHex(name, 25, 8) &&
      name.compare(33, 7, ".backup") == 0) {
    return WalFileName{name, WalFileKind::kBackupLabel, tli};
  }
  return std::nullopt;
}

std::string WalObjectKey(const std::string& stanza, const WalFileName& file,
                         const std::string& sha256, CompressionType compression) {
  std::string key = WalPrefix(stanza) + TimelineHex(file.timeline) + "/" + file.name + "-" + sha256;
  const char* ext = io::CompressionExtension(compression);
  if (*ext != '\0') key += std::string(".") + ext;
  return key;
}

std::optional<WalObject> ParseWalObjectKey(const std::string& key) {
  auto slash = key.rfind('/');
  std::string base = key.substr(slash == std::string::npos ? 0 : slash + 1);
  WalObject obj;
  obj.key = key;
  for (CompressionType t :
       {CompressionType::kZstd, CompressionType::kLz4, CompressionType::kGzip}) {
    std::string ext = std::string(".") + io::CompressionExtension(t);
    if (base.size() > ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0) {
      base.resize(base.size() - ext.size());
      obj.compression = t;
      break;
    }
  }
  if (base.size() < 66 || base[base.size() - 65] != '-' || !IsHex(base, base.size() - 64, 64)) {
    return std::nullopt;
  }
  obj.sha256 = base.substr(base.size() - 64);
  obj.name = base.substr(0, base.size() - 65);
  if (!ParseWalFileName(obj.name)) return std::nullopt;
  return obj;
}

std::vector<WalObject> FindWalObjects(storage::Storage& storage, const std::string& stanza,
                                      const WalFileName& file) {
  std::vector<WalObject> found;
  std::string prefix = WalPrefix(stanza) + TimelineHex(file.timeline) + "/" + file.name + "-";
  for (const auto& info : storage::ListAll(storage, prefix)) {
    auto obj = ParseWalObjectKey(info.key);
    if (obj && obj->name == file.name) {
      obj->stored_size = info.size;
      found.push_back(std::move(*obj));
    }
  }
  return found;
}

void ValidateSegmentHeader(ByteView data, const std::string& what,
                           const std::string& expected_system_identifier,
                           std::uint64_t expected_segment_size) {
  // XLogLongPageHeaderData: xlp_magic u16, xlp_info u16, xlp_tli u32, xlp_pageaddr u64,
  // xlp_rem_len u32, (padding), xlp_sysid u64 @24, xlp_seg_size u32 @32, xlp_xlog_blcksz @36.
  constexpr std::uint16_t kLongHeader = 0x0002;
  if (data.size() < 40) {
    throw IntegrityError(what + " is too short to be a WAL segment (" +
                         std::to_string(data.size()) + " bytes)");
  }
  std::uint16_t info = static_cast<std::uint16_t>(data[2] | data[3] << 8);
  if (!(info & kLongHeader)) {
    throw IntegrityError(what + " does not start with a WAL segment header");
  }
  std::uint64_t sysid = ReadLe64(data.data() + 24);
  std::uint32_t seg_size = ReadLe32(data.data() + 32);
  if (std::to_string(sysid) != expected_system_identifier) {
    throw ConflictError(what + " belongs to the cluster with system identifier " +
                        std::to_string(sysid) + ", but this stanza is for " +
                        expected_system_identifier +
                        "; refusing to archive it (check archive_command's --stanza)");
  }
  if (expected_segment_size != 0 && seg_size != expected_segment_size) {
    throw ConflictError(what + " has WAL segment size " + std::to_string(seg_size) +
                        ", but the stanza's is " + std::to_string(expected_segment_size));
  }
}

}  // namespace gravl::repo
