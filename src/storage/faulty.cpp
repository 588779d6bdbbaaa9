#include "storage/faulty.h"

#include "common/error.h"

namespace gravl::storage {
namespace {

bool Applies(const FaultPlan& plan, const std::string& key) {
  return plan.key_filter.empty() || key.find(plan.key_filter) != std::string::npos;
}

class FaultyWrite final : public WriteStream {
 public:
  FaultyWrite(FaultyStorage& owner, std::unique_ptr<WriteStream> inner, std::string key)
      : owner_(owner), inner_(std::move(inner)), key_(std::move(key)), plan_(owner.plan()) {}
  void Write(ByteView data) override {
    if (Applies(plan_, key_) && plan_.cut_write_after &&
        written_ + data.size() > *plan_.cut_write_after) {
      inner_.reset();  // abandon: the object must not appear
      throw StorageError("injected fault: write of " + key_ + " cut after " +
                             std::to_string(*plan_.cut_write_after) + " bytes",
                         true);
    }
    if (!inner_) throw StorageError("write to " + key_ + " after an injected fault");
    written_ += data.size();
    inner_->Write(data);
  }
  bool Commit() override {
    if (!inner_) throw StorageError("finish of " + key_ + " after an injected fault");
    owner_.MaybeFail("finish", key_);
    return inner_->Commit();
  }
  std::string Name() const override { return inner_ ? inner_->Name() : key_; }

 private:
  FaultyStorage& owner_;
  std::unique_ptr<WriteStream> inner_;
  std::string key_;
  FaultPlan plan_;
  std::uint64_t written_ = 0;
};

class FaultyRead final : public ReadStream {
 public:
  FaultyRead(std::unique_ptr<ReadStream> inner, std::string key, FaultPlan plan,
             std::uint64_t start)
      : inner_(std::move(inner)), key_(std::move(key)), plan_(std::move(plan)), pos_(start) {}
  std::size_t Read(MutableByteView buf) override {
    bool applies = Applies(plan_, key_);
    if (applies && plan_.cut_read_after && read_ >= *plan_.cut_read_after) {
      throw StorageError(
          "injected fault: read of " + key_ + " cut after " + std::to_string(read_) + " bytes",
          true);
    }
    if (applies && plan_.cut_read_after) {
      buf = buf.first(std::min<std::size_t>(
          buf.size(), static_cast<std::size_t>(*plan_.cut_read_after - read_)));
    }
    std::size_t n = inner_->Read(buf);
    if (applies && plan_.flip_read_byte && *plan_.flip_read_byte >= pos_ &&
        *plan_.flip_read_byte < pos_ + n) {
      buf[static_cast<std::size_t>(*plan_.flip_read_byte - pos_)] ^= 0xff;
    }
    pos_ += n;
    read_ += n;
    return n;
  }

 private:
  std::unique_ptr<ReadStream> inner_;
  std::string key_;
  FaultPlan plan_;
  std::uint64_t pos_;
  std::uint64_t read_ = 0;
};

}  // namespace

void FaultyStorage::SetPlan(FaultPlan plan) {
  std::lock_guard lock(mutex_);
  plan_ = std::move(plan);
}

FaultPlan FaultyStorage::plan() const {
  std::lock_guard lock(mutex_);
  return plan_;
}

void FaultyStorage::MaybeFail(const std::string& what, const std::string& key) {
  std::uint64_t n = ++calls_;
  FaultPlan p = plan();
  if (!Applies(p, key)) return;
  if ((p.fail_call && n == *p.fail_call) || (p.fail_from_call && n >= *p.fail_from_call)) {
    throw StorageError(
        "injected fault: call " + std::to_string(n) + " (" + what + " " + key + ") failed", true);
  }
}

std::unique_ptr<WriteStream> FaultyStorage::Put(const std::string& key, const PutOptions& options) {
  MaybeFail("put", key);
  return std::make_unique<FaultyWrite>(*this, ForwardingStorage::Put(key, options), key);
}

std::unique_ptr<ReadStream> FaultyStorage::TryGet(const std::string& key,
                                                  const std::optional<Range>& range) {
  MaybeFail("get", key);
  auto inner = ForwardingStorage::TryGet(key, range);
  if (!inner) return nullptr;
  return std::make_unique<FaultyRead>(std::move(inner), key, plan(), range ? range->offset : 0);
}

std::optional<ObjectInfo> FaultyStorage::Stat(const std::string& key) {
  MaybeFail("stat", key);
  return ForwardingStorage::Stat(key);
}

ListPage FaultyStorage::List(const std::string& prefix, const ListOptions& options) {
  MaybeFail("list", prefix);
  return ForwardingStorage::List(prefix, options);
}

void FaultyStorage::DeleteMany(const std::vector<std::string>& keys) {
  MaybeFail("delete", keys.empty() ? "" : keys.front());
  ForwardingStorage::DeleteMany(keys);
}

void FaultyStorage::Persist(const std::string& key) {
  MaybeFail("persist", key);
  ForwardingStorage::Persist(key);
}

void FaultyStorage::DeletePrefix(const std::string& prefix) {
  MaybeFail("delete-prefix", prefix);
  ForwardingStorage::DeletePrefix(prefix);
}

}  // namespace gravl::storage
