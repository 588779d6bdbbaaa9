#include "storage/memory.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "common/error.h"

namespace gravl::storage {
namespace {

struct Object {
  std::shared_ptr<const Bytes> data;
  SystemTime modified;
};

struct State {
  std::mutex mutex;
  std::map<std::string, Object> objects;
};

class MemoryWrite final : public WriteStream {
 public:
  MemoryWrite(std::shared_ptr<State> state, std::string key, bool if_absent)
      : state_(std::move(state)), key_(std::move(key)), if_absent_(if_absent) {}
  void Write(ByteView data) override {
    if (done_) throw StorageError("write to " + key_ + " after finish");
    buffer_.insert(buffer_.end(), data.begin(), data.end());
  }
  bool Commit() override {
    if (done_) throw StorageError("finish of " + key_ + " called twice");
    done_ = true;
    std::lock_guard lock(state_->mutex);
    if (if_absent_ && state_->objects.count(key_)) return false;
    state_->objects[key_] =
        Object{std::make_shared<const Bytes>(std::move(buffer_)), std::chrono::system_clock::now()};
    return true;
  }
  std::string Name() const override { return "memory:" + key_; }

 private:
  std::shared_ptr<State> state_;
  std::string key_;
  bool if_absent_;
  Bytes buffer_;
  bool done_ = false;
};

class MemoryRead final : public ReadStream {
 public:
  MemoryRead(std::shared_ptr<const Bytes> data, std::size_t begin, std::size_t end)
      : data_(std::move(data)), pos_(begin), end_(end) {}
  std::size_t Read(MutableByteView buf) override {
    std::size_t n = std::min(buf.size(), end_ - pos_);
    std::copy_n(data_->begin() + static_cast<long>(pos_), n, buf.begin());
    pos_ += n;
    return n;
  }

 private:
  std::shared_ptr<const Bytes> data_;
  std::size_t pos_, end_;
};

class MemoryStorage final : public Storage {
 public:
  std::unique_ptr<WriteStream> Put(const std::string& key, const PutOptions& options) override {
    ValidateKey(key);
    return std::make_unique<MemoryWrite>(state_, key, options.if_absent);
  }
  std::unique_ptr<ReadStream> TryGet(const std::string& key,
                                     const std::optional<Range>& range) override {
    ValidateKey(key);
    std::lock_guard lock(state_->mutex);
    auto it = state_->objects.find(key);
    if (it == state_->objects.end()) return nullptr;
    std::size_t size = it->second.data->size();
    std::size_t begin = 0, end = size;
    if (range) {
      begin = static_cast<std::size_t>(std::min<std::uint64_t>(range->offset, size));
      if (range->length) {
        end = static_cast<std::size_t>(std::min<std::uint64_t>(begin + *range->length, size));
      }
    }
    return std::make_unique<MemoryRead>(it->second.data, begin, end);
  }
  std::optional<ObjectInfo> Stat(const std::string& key) override {
    ValidateKey(key);
    std::lock_guard lock(state_->mutex);
    auto it = state_->objects.find(key);
    if (it == state_->objects.end()) return std::nullopt;
    return ObjectInfo{key, it->second.data->size(), it->second.modified};
  }
  ListPage List(const std::string& prefix, const ListOptions& options) override {
    std::lock_guard lock(state_->mutex);
    ListPage page;
    std::size_t count = 0;
    std::string last;
    const std::optional<std::string>& after = options.token ? options.token : options.start_after;
    auto it = after && *after >= prefix ? state_->objects.upper_bound(*after)
                                        : state_->objects.lower_bound(prefix);
    for (; it != state_->objects.end(); ++it) {
      const std::string& key = it->first;
      if (key.compare(0, prefix.size(), prefix) != 0) {
        if (key > prefix) break;
        continue;
      }
      std::string entry = key;
      bool is_prefix = false;
      if (options.delimited) {
        auto slash = key.find('/', prefix.size());
        if (slash != std::string::npos) {
          entry = key.substr(0, slash + 1);
          is_prefix = true;
          if (entry == last) continue;
          if (after && entry <= *after) continue;
        }
      }
      if (count == options.limit) {
        page.next_token = last;
        break;
      }
      ++count;
      last = entry;
      if (is_prefix) {
        page.common_prefixes.push_back(entry);
      } else {
        page.objects.push_back({key, it->second.data->size(), it->second.modified});
      }
    }
    return page;
  }
  void DeleteMany(const std::vector<std::string>& keys) override {
    std::lock_guard lock(state_->mutex);
    for (const auto& k : keys) state_->objects.erase(k);
  }
  void Persist(const std::string& key) override {
    if (!Stat(key)) throw NotFoundError("memory: no object " + key);
  }
  void DeletePrefix(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/')
      throw StorageError("DeletePrefix needs a folder prefix");
    std::lock_guard lock(state_->mutex);
    auto it = state_->objects.lower_bound(prefix);
    while (it != state_->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0) {
      it = state_->objects.erase(it);
    }
  }
  std::string Describe() const override { return "memory:"; }

 private:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace

std::unique_ptr<Storage> MakeMemoryStorage() { return std::make_unique<MemoryStorage>(); }

}  // namespace gravl::storage
