#include "storage/storage.h"

#include "common/error.h"

namespace gravl::storage {

std::vector<ObjectInfo> ListAll(Storage& storage, const std::string& prefix) {
  std::vector<ObjectInfo> all;
  ListOptions options;
  do {
    ListPage page = storage.List(prefix, options);
    for (auto& o : page.objects) all.push_back(std::move(o));
    options.token = std::move(page.next_token);
  } while (options.token);
  return all;
}

void ForEachObject(Storage& storage, const std::string& prefix,
                   const std::function<void(ObjectInfo&&)>& visit, std::size_t page_size,
                   const std::optional<std::string>& start_after) {
  ListOptions options;
  options.limit = page_size;
  options.start_after = start_after;
  do {
    ListPage page = storage.List(prefix, options);
    for (auto& o : page.objects) visit(std::move(o));
    options.token = std::move(page.next_token);
  } while (options.token);
}

std::vector<std::string> ListPrefixes(Storage& storage, const std::string& prefix) {
  std::vector<std::string> all;
  ListOptions options;
  options.delimited = true;
  do {
    ListPage page = storage.List(prefix, options);
    for (auto& p : page.common_prefixes) all.push_back(std::move(p));
    options.token = std::move(page.next_token);
  } while (options.token);
  return all;
}

void WriteStream::Finish() {
  if (!Commit()) throw ConflictError(Name() + " already exists");
}

void PutBytes(Storage& storage, const std::string& key, ByteView data, const PutOptions& options) {
  auto w = storage.Put(key, options);
  w->Write(data);
  w->Finish();
}

bool PutBytesIfAbsent(Storage& storage, const std::string& key, ByteView data) {
  auto w = storage.Put(key, PutOptions{.if_absent = true});
  w->Write(data);
  return w->Commit();
}

std::unique_ptr<ReadStream> Storage::Get(const std::string& key,
                                         const std::optional<Range>& range) {
  auto stream = TryGet(key, range);
  if (!stream) throw NotFoundError(Describe() + ": no object " + key);
  return stream;
}

Bytes GetBytes(Storage& storage, const std::string& key) {
  auto r = storage.Get(key);
  io::BufferSink sink;
  io::Pump(*r, sink);
  return sink.Take();
}

std::optional<Bytes> TryGetBytes(Storage& storage, const std::string& key) {
  auto r = storage.TryGet(key);
  if (!r) return std::nullopt;
  io::BufferSink sink;
  io::Pump(*r, sink);
  return sink.Take();
}

void ValidateKey(const std::string& key) {
  bool bad = key.empty() || key.front() == '/' || key.back() == '/' ||
             key.find("//") != std::string::npos || key.find('\0') != std::string::npos;
  std::size_t start = 0;
  while (!bad && start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string part = key.substr(start, end - start);
    if (part == "." || part == "..") bad = true;
    start = end + 1;
  }
  if (bad) throw StorageError("invalid object key '" + key + "'");
}

}  // namespace gravl::storage
