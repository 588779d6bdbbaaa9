#pragma once
// A Storage that forwards every call to another one. Wrappers -- fault injection, test doubles
// that count or record calls, repository sync -- derive from it and override only what they
// change, as leveldb's EnvWrapper "forwards all calls". It either refers to its target (which
// must outlive it) or owns it.

#include <memory>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace gravl::storage {

class ForwardingStorage : public Storage {
 public:
  explicit ForwardingStorage(Storage& target) : target_(&target) {}
  explicit ForwardingStorage(std::unique_ptr<Storage> owned)
      : owned_(std::move(owned)), target_(owned_.get()) {}

  Storage& target() const { return *target_; }

  std::unique_ptr<WriteStream> Put(const std::string& key, const PutOptions& options) override {
    return target_->Put(key, options);
  }
  std::unique_ptr<ReadStream> TryGet(const std::string& key,
                                     const std::optional<Range>& range) override {
    return target_->TryGet(key, range);
  }
  std::optional<ObjectInfo> Stat(const std::string& key) override { return target_->Stat(key); }
  ListPage List(const std::string& prefix, const ListOptions& options) override {
    return target_->List(prefix, options);
  }
  void DeleteMany(const std::vector<std::string>& keys) override { target_->DeleteMany(keys); }
  void Persist(const std::string& key) override { target_->Persist(key); }
  void DeletePrefix(const std::string& prefix) override { target_->DeletePrefix(prefix); }
  bool ExtendRetention(const std::string& key, SystemTime until) override {
    return target_->ExtendRetention(key, until);
  }
  bool ChangeStorageClass(const std::string& key, const std::string& storage_class) override {
    return target_->ChangeStorageClass(key, storage_class);
  }
  std::string Describe() const override { return target_->Describe(); }

 private:
  std::unique_ptr<Storage> owned_;
  Storage* target_;
};

}  // namespace gravl::storage
