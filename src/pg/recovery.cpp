#include "pg/recovery.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.h"
#include "io/file.h"

namespace gravl::pg {
namespace {

// Recovery target settings, each written explicitly (unused ones as '').
constexpr const char* kTargetSettings[] = {"recovery_target", "recovery_target_lsn",
                                           "recovery_target_name", "recovery_target_time",
                                           "recovery_target_xid"};

// Every setting a restore owns: earlier values are commented out.
const std::set<std::string>& OwnedSettings() {
  static const std::set<std::string> kOwned = {
      "restore_command",           "recovery_target",          "recovery_target_lsn",
      "recovery_target_name",      "recovery_target_time",     "recovery_target_xid",
      "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action",
      "primary_conninfo",          "primary_slot_name",        "recovery_end_command",
      "archive_cleanup_command",   "recovery_min_apply_delay", "promote_trigger_file"};
  return kOwned;
}

bool Owned(const std::string& name, const RecoverySettings& settings) {
  return OwnedSettings().count(name) > 0 || (settings.archive_off && name == "archive_mode");
}

// A postgresql.conf string value: single quotes and backslashes doubled (the config file
// parser reads backslash escapes).
std::string ConfQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  return out + "'";
}

// The setting name of a postgresql.conf line, lowercased; empty for comments and blank lines.
std::string SettingName(const std::string& line) {
  std::size_t i = 0;
  while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
  std::size_t start = i;
  while (i < line.size() &&
         (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == '.')) {
    ++i;
  }
  if (i == start || !std::isalpha(static_cast<unsigned char>(line[start]))) return "";
  std::string name = line.substr(start, i - start);
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string Trimmed(const std::string& line) {
  std::size_t b = line.find_first_not_of(" \t"), e = line.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : line.substr(b, e - b + 1);
}

bool HasControl(const std::string& s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

std::string RecoveryTarget::Describe() const {
  std::string out;
  switch (kind) {
    case Kind::kLatest:
      return "latest";
    case Kind::kImmediate:
      return "immediate";
    case Kind::kTime:
      out = "time " + FormatIso8601(time);
      break;
    case Kind::kLsn:
      out = "lsn " + lsn.ToString();
      break;
    case Kind::kXid:
      out = "xid " + std::to_string(xid);
      break;
    case Kind::kName:
      out = "name " + name;
      break;
  }
  return inclusive ? out : out + " (exclusive)";
}

RecoveryTarget ParseRecoveryTarget(const RecoveryTargetOptions& o) {
  if (o.target && *o.target != "immediate" && *o.target != "latest") {
    throw UsageError("--target must be 'immediate' or 'latest', not '" + o.target->substr(0, 40) +
                     "'");
  }
  std::vector<std::string> given;
  if (o.target) given.push_back("--target " + *o.target);
  if (o.time) given.push_back("--target-time");
  if (o.lsn) given.push_back("--target-lsn");
  if (o.xid) given.push_back("--target-xid");
  if (o.name) given.push_back("--target-name");
  if (given.size() > 1) {
    std::string list;
    for (const auto& g : given) list += (list.empty() ? "" : ", ") + g;
    throw UsageError("give one recovery target, not " + list +
                     " (recovery stops at exactly one point)");
  }
  RecoveryTarget t;
  t.inclusive = !o.exclusive;
  if (o.target == "immediate") t.kind = RecoveryTarget::Kind::kImmediate;
  if (o.time) {
    t.kind = RecoveryTarget::Kind::kTime;
    t.time = ParseTargetTime(*o.time);
  }
  if (o.lsn) {
    t.kind = RecoveryTarget::Kind::kLsn;
    try {
      t.lsn = Lsn::Parse(*o.lsn);
    } catch (const UsageError&) {
      throw UsageError("--target-lsn '" + o.lsn->substr(0, 40) +
                       "' is not an LSN: use the form 16/B374D848 (pg_current_wal_lsn())");
    }
    if (t.lsn.value == 0) throw UsageError("--target-lsn 0/0 is not a WAL position");
  }
  if (o.xid) {
    t.kind = RecoveryTarget::Kind::kXid;
    const std::string& x = *o.xid;
    auto [p, ec] = std::from_chars(x.data(), x.data() + x.size(), t.xid);
    bool digits = !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c));
    });
    if (!digits || ec != std::errc() || p != x.data() + x.size()) {
      throw UsageError("--target-xid '" + x.substr(0, 40) +
                       "' is not a transaction id: give a decimal number such as 741 "
                       "(txid_current() or pg_current_xact_id())");
    }
    if ((t.xid & 0xFFFFFFFFu) < 3) {
      throw UsageError("--target-xid " + x +
                       " is not a normal transaction id (0, 1 and 2 are reserved); no "
                       "transaction commits with it");
    }
  }
  if (o.name) {
    t.kind = RecoveryTarget::Kind::kName;
    t.name = *o.name;
    if (t.name.empty()) {
      throw UsageError(
          "--target-name is empty: give the name of a restore point "
          "(pg_create_restore_point), or leave the option out to recover to the "
          "end of the archive");
    }
    if (HasControl(t.name)) {
      throw UsageError(
          "--target-name contains a control character (newline, tab, ...); no "
          "restore point has such a name");
    }
    if (t.name.size() > 63) {
      throw UsageError("--target-name is " + std::to_string(t.name.size()) +
                       " bytes long; restore point names have at most 63");
    }
  }
  if (!t.inclusive &&
      (t.kind == RecoveryTarget::Kind::kLatest || t.kind == RecoveryTarget::Kind::kImmediate)) {
    throw UsageError(
        "--target-exclusive needs --target-time, --target-lsn, --target-xid or "
        "--target-name");
  }
  return t;
}

std::string TargetTimeline::Setting() const {
  switch (kind) {
    case Kind::kLatest:
      return "latest";
    case Kind::kCurrent:
      return "current";
    case Kind::kNumber:
      return std::to_string(number);
  }
  return "latest";
}

TargetTimeline ParseTargetTimeline(const std::string& text) {
  TargetTimeline t;
  if (text.empty() || text == "latest") return t;
  if (text == "current") {
    t.kind = TargetTimeline::Kind::kCurrent;
    return t;
  }
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p != text.data() + text.size() || n == 0 || n > 0xFFFFFFFFu) {
    throw UsageError("--target-timeline '" + text.substr(0, 40) +
                     "' must be 'latest', 'current' or a timeline number such as 2");
  }
  t.kind = TargetTimeline::Kind::kNumber;
  t.number = static_cast<TimelineId>(n);
  return t;
}

AutoConfRewrite RewriteAutoConf(const std::string& existing, const RecoverySettings& s) {
  AutoConfRewrite out;
  std::istringstream in(existing);
  std::string line;
  while (std::getline(in, line)) {
    std::string name = SettingName(line);
    if (!name.empty() && Owned(name, s)) {
      out.replaced.push_back(Trimmed(line));
      out.text += "# replaced by gravl-dr (" + s.comment + "): " + line + "\n";
    } else {
      out.text += line + "\n";
    }
  }
  using Kind = RecoveryTarget::Kind;
  const RecoveryTarget& t = s.target;
  std::string set_name, set_value;
  switch (t.kind) {
    case Kind::kLatest:
      break;
    case Kind::kImmediate:
      set_name = "recovery_target", set_value = "immediate";
      break;
    case Kind::kTime:
      set_name = "recovery_target_time", set_value = FormatPostgres(t.time);
      break;
    case Kind::kLsn:
      set_name = "recovery_target_lsn", set_value = t.lsn.ToString();
      break;
    case Kind::kXid:
      set_name = "recovery_target_xid", set_value = std::to_string(t.xid);
      break;
    case Kind::kName:
      set_name = "recovery_target_name", set_value = t.name;
      break;
  }
  std::ostringstream block;
  block << "\n# Recovery settings of gravl-dr (" << s.comment
        << "). Every recovery setting is here; earlier ones are commented out above.\n";
  block << "restore_command = " << ConfQuote(s.restore_command) << "\n";
  // The unused targets first and empty, the target last: PostgreSQL refuses two targets,
  // and applies settings in the order of their last occurrence.
  for (const char* name : kTargetSettings) {
    if (name != set_name) block << name << " = ''\n";
  }
  if (!set_name.empty()) block << set_name << " = " << ConfQuote(set_value) << "\n";
  block << "recovery_target_inclusive = '" << (t.inclusive ? "on" : "off") << "'\n";
  block << "recovery_target_timeline = " << ConfQuote(s.timeline.Setting()) << "\n";
  if (t.IsSet() && !s.action.empty()) {
    block << "recovery_target_action = " << ConfQuote(s.action) << "\n";
  }
  block << "primary_conninfo = " << ConfQuote(s.standby ? s.primary_conninfo : "") << "\n";
  block << "primary_slot_name = " << ConfQuote(s.standby ? s.primary_slot_name : "") << "\n";
  if (s.archive_off) block << "archive_mode = 'off'\n";
  out.text += block.str();
  return out;
}

std::vector<std::string> OverriddenSettings(const std::string& conf_text,
                                            const RecoverySettings& settings) {
  std::vector<std::string> out;
  std::istringstream in(conf_text);
  std::string line;
  while (std::getline(in, line)) {
    std::string name = SettingName(line);
    if (!name.empty() && Owned(name, settings) && name != "archive_mode") {
      out.push_back(Trimmed(line));
    }
  }
  return out;
}

RecoveryConfigResult WriteRecoveryConfig(const std::string& pgdata,
                                         const RecoverySettings& settings) {
  auto read = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
  };
  RecoveryConfigResult result;
  // Run as root, the files written go to the data directory's owner (the server's user).
  struct stat owner {};
  bool chown_needed = ::geteuid() == 0 && ::stat(pgdata.c_str(), &owner) == 0 && owner.st_uid != 0;
  auto give = [&](const std::string& path) {
    if (chown_needed && ::chown(path.c_str(), owner.st_uid, owner.st_gid) != 0) {
      throw StorageError(
          SysErrorText("cannot hand " + path + " to the data directory's owner", errno));
    }
  };
  std::string auto_conf = pgdata + "/postgresql.auto.conf";
  AutoConfRewrite rewrite = RewriteAutoConf(read(auto_conf), settings);
  result.replaced = std::move(rewrite.replaced);
  result.overridden = OverriddenSettings(read(pgdata + "/postgresql.conf"), settings);
  {
    io::AtomicFileSink out(auto_conf, io::AtomicFileOptions{.mode = 0600, .durable = false});
    out.Write(AsBytes(rewrite.text));
    out.Finish();
  }
  give(auto_conf);
  std::string signal = settings.standby ? "standby.signal" : "recovery.signal";
  std::string other = settings.standby ? "recovery.signal" : "standby.signal";
  if (::unlink((pgdata + "/" + other).c_str()) != 0 && errno != ENOENT) {
    throw StorageError(SysErrorText("cannot remove " + pgdata + "/" + other, errno));
  }
  // Without it PostgreSQL would start without archive recovery and ignore the target.
  io::AtomicFileSink signal_file(pgdata + "/" + signal,
                                 io::AtomicFileOptions{.mode = 0600, .durable = false});
  signal_file.Finish();
  give(pgdata + "/" + signal);
  return result;
}

}  // namespace gravl::pg
