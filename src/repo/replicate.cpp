#include "repo/replicate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "common/error.h"
#include "common/log.h"
#include "io/hash.h"
#include "io/stream.h"
#include "io/workers.h"
#include "repo/file_list.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "repo/stanza.h"

namespace gravl::repo {

namespace {

// One object to copy and how its copy is verified.
struct CopyItem {
  std::string key;
  Expected expected;
  bool by_stored = false;       // the SHA-256 covers the stored bytes: checked as they pass
  ObjectFormat content_format;  // otherwise: B's copy decoded and its content checked
};

// The last stage of a copy: commits the object (false when it exists: a concurrent sync).
class CommitSink final : public io::Sink {
 public:
  explicit CommitSink(storage::WriteStream& out) : out_(out) {}
  void Write(ByteView data) override { out_.Write(data); }
  void Finish() override { out_.Commit(); }

 private:
  storage::WriteStream& out_;
};

void CheckCompatible(Repository& a, Repository& b) {
  const StanzaInfo& ia = a.Stanza();
  const StanzaInfo& ib = b.Stanza();
  if (ia.system_identifier != ib.system_identifier) {
    throw ConflictError(b.Describe() + " holds stanza '" + ib.stanza +
                        "' of another cluster (system identifier " + ib.system_identifier + ", " +
                        a.Describe() + " has " + ia.system_identifier +
                        "): nothing copied -- never mix clusters");
  }
  if (ia.pg_major != ib.pg_major) {
    throw ConflictError(b.Describe() + " holds PostgreSQL " + std::to_string(ib.pg_major) +
                        " backups and " + a.Describe() + " PostgreSQL " +
                        std::to_string(ia.pg_major) + ": nothing copied");
  }
  nlohmann::json ea = ia.ToJson().value("encryption", nlohmann::json());
  nlohmann::json eb = ib.ToJson().value("encryption", nlohmann::json());
  if (ea != eb) {
    throw ConflictError(
        a.Describe() + " and " + b.Describe() +
        " use different key material (encryption parameters of their stanzas differ), and "
        "repo-sync copies stored bytes without decoding them: create the target's stanza with "
        "stanza-create while the source is configured too (it then takes the source's key "
        "parameters), see docs/multi-region.md");
  }
}

// Every object of backup `m` in A, with how its copy is verified.
std::vector<CopyItem> ObjectsOf(Repository& a, Repository& b, const BackupManifest& m) {
  std::vector<CopyItem> items;
  const std::string prefix = BackupObjectPrefix(a.stanza(), m.label);
  if (m.full()) {
    bool by_stored = m.format >= 3;
    ObjectFormat format = BackupObjectFormat({m.compression, 0, b.key()}, m.format);
    FileList files = ReadFileList(a, m);
    for (const auto& o : PlanObjects(files, m.bundles, [&](const FileEntry& f) {
           throw IntegrityError(a.Describe() + ": backup " + m.label + " lists " +
                                std::string(f.path) + " in a bundle it does not describe");
         })) {
      items.push_back({prefix + o.object, o.expected(), by_stored, format});
    }
    if (m.file_list) {
      items.push_back({prefix + m.file_list->object.object, m.file_list->object.expected(m.format),
                       by_stored, format});
    }
    items.push_back(
        {prefix + "backup_manifest", m.backup_manifest.expected(m.format), by_stored, format});
  } else {
    ObjectFormat format{m.compression, 0, b.key()};
    for (const auto& d : m.databases) {
      items.push_back({prefix + d.object.object, {d.object.sha256, d.object.size}, false, format});
    }
    items.push_back({prefix + m.globals.object, {m.globals.sha256, m.globals.size}, false, format});
  }
  return items;
}

// Copies one object from A to B unless B has it; returns the stored bytes copied.
std::uint64_t CopyObject(Repository& a, Repository& b, const CopyItem& item) {
  std::string what = b.storage().Describe() + "/" + item.key;
  if (auto present = b.storage().Stat(item.key)) {
    // Write-once objects are complete once visible; a size that differs is another object.
    if (item.by_stored && item.expected.stored_size &&
        present->size != *item.expected.stored_size) {
      throw ConflictError(what + " exists with " + std::to_string(present->size) + " bytes, but " +
                          a.Describe() + " has " + std::to_string(*item.expected.stored_size) +
                          " for it: a different backup under the same label; nothing overwritten");
    }
    return 0;
  }
  auto in = a.storage().Get(item.key);
  storage::PutOptions put;
  put.if_absent = true;
  auto out = b.storage().Put(item.key, put);
  CommitSink commit(*out);
  std::uint64_t bytes = 0;
  if (item.by_stored) {
    // Pump finishes the chain: the digest is compared before the copy is committed (equal
    // digests mean equal bytes, so equal sizes too).
    io::VerifySink verify(commit, item.expected.sha256, what);
    return io::Pump(*in, verify);
  }
  bytes = io::Pump(*in, commit);
  try {
    io::NullSink sink;
    ReadObject(b.storage(), item.key, item.content_format, item.expected, sink);
  } catch (const Error&) {
    b.storage().DeleteMany({item.key});  // a copy that does not verify is not kept
    throw;
  }
  return bytes;
}

}  // namespace

SyncLag LagOf(const std::vector<BackupEntry>& a_backups, const WalIndex& a_wal,
              const std::vector<BackupEntry>& b_backups, const WalIndex& b_wal) {
  SyncLag lag;
  std::set<std::string> in_b;
  std::optional<SystemTime> b_oldest;
  std::optional<std::uint64_t> from_segno;
  const std::uint64_t seg = a_wal.segment_size();
  for (const auto& b : b_backups) {
    if (!b.ok()) continue;
    in_b.insert(b.label);
    if (!b_oldest || b.manifest->stop_time < *b_oldest) b_oldest = b.manifest->stop_time;
    if (b.manifest->full()) {
      std::uint64_t s = b.manifest->start_lsn.value / seg;
      from_segno = from_segno ? std::min(*from_segno, s) : s;
    }
  }
  for (const auto& a : a_backups) {
    if (!a.ok() || in_b.count(a.label)) continue;
    if (b_oldest && a.manifest->stop_time < *b_oldest) continue;
    ++lag.missing_backups;
    lag.missing_bytes += a.manifest->stored_size;
    if (!lag.newest_missing_backup || a.manifest->stop_time > *lag.newest_missing_backup) {
      lag.newest_missing_backup = a.manifest->stop_time;
    }
    if (!from_segno && a.manifest->full()) {
      std::uint64_t s = a.manifest->start_lsn.value / seg;
      from_segno = s;
    }
  }
  if (!from_segno) {
    for (const auto& a : a_backups) {
      if (a.ok() && a.manifest->full()) {
        std::uint64_t s = a.manifest->start_lsn.value / seg;
        from_segno = from_segno ? std::min(*from_segno, s) : s;
      }
    }
  }
  if (!from_segno) return lag;
  for (const auto& [tli, t] : a_wal.timelines()) {
    for (auto it = t.segments.lower_bound(*from_segno); it != t.segments.end(); ++it) {
      if (b_wal.Find(tli, it->first)) continue;
      ++lag.missing_wal;
      lag.missing_bytes += it->second.stored_size;
      SystemTime at{std::chrono::seconds(it->second.modified)};
      if (!lag.newest_missing_wal || at > *lag.newest_missing_wal) lag.newest_missing_wal = at;
    }
  }
  return lag;
}

SyncResult Sync(Catalog& from, Catalog& to, const SyncOptions& options) {
  Repository& a = from.repo();
  Repository& b = to.repo();
  CheckCompatible(a, b);
  const bool write = !options.dry_run && !options.verify_only;
  SyncResult result;

  // Which of A's backups B should hold: those it lacks, unless its own retention would not
  // keep them.
  std::vector<BackupFacts> facts = to.RetentionFacts();
  std::vector<const BackupManifest*> wanted;
  for (const auto& e : from.Backups()) {
    if (!e.ok()) {
      spdlog::warn("{}: backup {} is damaged there and is not copied: {}", a.Describe(), e.label,
                   Redact(e.problem));
      continue;
    }
    SyncedBackup s{e.label, "missing", 0, 0, e.manifest->stop_time};
    if (to.Find(e.label) != nullptr) {
      if (ReadManifestDocument(a, e.label) != ReadManifestDocument(b, e.label)) {
        throw ConflictError(b.storage().Describe() + "/" + ManifestKey(b.stanza(), e.label) +
                            " differs from " + a.storage().Describe() + "/" +
                            ManifestKey(a.stanza(), e.label) +
                            ": two different backups under one label; nothing overwritten");
      }
      s.status = "present";
    } else {
      facts.push_back(FactsOf(*e.manifest));
      wanted.push_back(&*e.manifest);
    }
    result.backups.push_back(s);
  }
  std::optional<RetentionPlan> plan;
  if (options.policy) {
    plan = PlanRetention(facts, *options.policy, options.now, b.Stanza().wal_segment_size);
    std::erase_if(wanted, [&](const BackupManifest* m) {
      const BackupDecision* d = plan->Find(m->label);
      if (d == nullptr || d->keep) return false;
      for (auto& s : result.backups) {
        if (s.label == m->label) s.status = "expired-in-target";
      }
      return true;
    });
  }

  // The WAL B needs: what its retention keeps (or, without a policy, everything from the
  // oldest backup it will hold), that A has and B does not.
  std::uint64_t from_segno = UINT64_MAX;
  for (const auto& f : facts) {
    if (f.ok && f.full && (!plan || plan->Find(f.label) == nullptr || plan->Find(f.label)->keep)) {
      from_segno = std::min(from_segno, f.start_lsn.value / b.Stanza().wal_segment_size);
    }
  }
  std::vector<CopyItem> wal;
  std::optional<SystemTime> newest_missing_wal;
  const WalIndex& aw = from.Wal();
  const WalIndex& bw = to.Wal();
  for (const auto& [tli, t] : aw.timelines()) {
    if (t.history_object && !(bw.timelines().count(tli) && bw.timelines().at(tli).history_object)) {
      const WalObject& h = *t.history_object;
      wal.push_back({h.key, {h.sha256, std::nullopt}, false, {h.compression, 0, b.key()}});
    }
    for (const auto& [segno, s] : t.segments) {
      bool needed =
          plan && !plan->keep_all_wal ? plan->KeepsSegment(tli, segno) : segno >= from_segno;
      if (!needed || bw.Find(tli, segno)) continue;
      WalObject o = *aw.Find(tli, segno);
      wal.push_back({o.key, {o.sha256, std::nullopt}, false, {o.compression, 0, b.key()}});
      result.missing_bytes += o.stored_size;
      SystemTime at{std::chrono::seconds(s.modified)};
      if (!newest_missing_wal || at > *newest_missing_wal) newest_missing_wal = at;
    }
  }
  result.wal_missing = wal.size();

  // Backups' objects (each backup's file list read from A, verified).
  std::vector<std::vector<CopyItem>> objects;
  for (const BackupManifest* summary : wanted) {
    BackupManifest m = ReadManifest(a, summary->label);
    objects.push_back(ObjectsOf(a, b, m));
    for (auto& s : result.backups) {
      if (s.label != m.label) continue;
      s.objects = objects.back().size() + 1;
      for (const auto& o : objects.back())
        s.bytes += o.expected.stored_size.value_or(o.expected.size.value_or(0));
    }
  }
  if (!write) {
    result.missing_objects = wal.size();
    for (const auto& s : result.backups) {
      if (s.status != "missing") continue;
      result.missing_objects += s.objects;
      result.missing_bytes += s.bytes;
      if (!result.newest_missing_backup || s.stop_time > *result.newest_missing_backup) {
        result.newest_missing_backup = s.stop_time;
      }
    }
    result.newest_missing_wal = newest_missing_wal;
    return result;
  }

  // Copy: WAL first (a backup listed in B has its WAL there), then each backup's objects in
  // parallel, then its manifest.
  std::mutex mutex;
  auto copy_all = [&](const std::vector<CopyItem>& items) {
    auto errors = io::RunParallel(items.size(), options.parallel, [&](std::size_t i) {
      std::uint64_t bytes = CopyObject(a, b, items[i]);
      std::lock_guard lock(mutex);
      if (bytes > 0) {
        ++result.objects_copied;
        result.bytes_copied += bytes;
      }
      if (options.on_object) options.on_object(items[i].key, bytes);
    });
    for (auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  };
  copy_all(wal);
  result.wal_copied = wal.size();
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    const std::string& label = wanted[i]->label;
    copy_all(objects[i]);
    // The manifest last, and read back from B (its embedded checksum) before it counts.
    const std::string manifest_key = ManifestKey(a.stanza(), label);
    auto in = a.storage().Get(manifest_key);
    storage::PutOptions put;
    put.if_absent = true;
    auto out = b.storage().Put(manifest_key, put);
    CommitSink commit(*out);
    std::uint64_t bytes = io::Pump(*in, commit);
    if (ReadManifestDocument(b, label) != ReadManifestDocument(a, label)) {
      throw IntegrityError(b.storage().Describe() + "/" + manifest_key + " does not read back as " +
                           a.storage().Describe() + "'s");
    }
    ++result.objects_copied;
    result.bytes_copied += bytes;
    if (options.on_object) options.on_object(manifest_key, bytes);
    for (auto& s : result.backups) {
      if (s.label == label) s.status = "copied";
    }
    spdlog::info("event=backup_synced backup={} from={} to={}", label, a.config().name,
                 b.config().name);
  }
  return result;
}

}  // namespace gravl::repo
