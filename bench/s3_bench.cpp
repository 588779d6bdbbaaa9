// Upload and download throughput of the S3 driver for one large object, and the process's
// peak memory. Driven by bench/s3_bench.sh, which runs the AWS JavaScript SDK on the same
// object through the same endpoint for comparison.
//
//   gravl_s3_bench ENDPOINT BUCKET SIZE_MIB [PART_SIZE_MIB=8] [CONCURRENCY=4]
// Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Prints one JSON object.

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/bytes.h"
#include "io/hash.h"
#include "storage/s3/s3_storage.h"
#include "support/test_util.h"

using namespace gravl;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: gravl_s3_bench ENDPOINT BUCKET SIZE_MIB [PART_SIZE_MIB] [CONCURRENCY]\n";
    return 2;
  }
  S3RepoConfig c;
  c.endpoint = argv[1];
  c.bucket = argv[2];
  c.region = "us-east-1";
  c.uri_style = "path";
  c.prefix = "bench";
  std::uint64_t size = std::stoull(argv[3]) << 20;
  if (argc > 4) c.part_size_mib = std::stoi(argv[4]);
  if (argc > 5) c.upload_concurrency = std::stoi(argv[5]);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);  // as gravl-dr's main() does
  try {
    auto s = storage::s3::MakeS3Storage("bench", c);
    std::uint64_t rss_before = test::PeakRssBytes();
    auto t0 = std::chrono::steady_clock::now();
    test::GeneratedSource src(size, 7);
    io::Sha256 sha_up;
    auto w = s->Put("object");
    Bytes buf(1 << 20);
    while (std::size_t n = src.Read(buf)) {
      sha_up.Update(ByteView(buf).first(n));
      w->Write(ByteView(buf).first(n));
    }
    w->Finish();
    auto t1 = std::chrono::steady_clock::now();
    std::uint64_t rss_upload = test::PeakRssBytes();
    auto r = s->Get("object");
    io::Sha256 sha_down;
    std::uint64_t got = 0;
    while (std::size_t n = r->Read(buf)) {
      sha_down.Update(ByteView(buf).first(n));
      got += n;
    }
    auto t2 = std::chrono::steady_clock::now();
    std::string up = sha_up.FinalHex(), down = sha_down.FinalHex();
    double up_s = std::chrono::duration<double>(t1 - t0).count();
    double down_s = std::chrono::duration<double>(t2 - t1).count();
    double mib = static_cast<double>(size) / (1 << 20);
    nlohmann::json j = {{"size_mib", mib},
                        {"part_size_mib", c.part_size_mib},
                        {"upload_concurrency", c.upload_concurrency},
                        {"upload_seconds", up_s},
                        {"upload_mib_per_s", mib / up_s},
                        {"download_seconds", down_s},
                        {"download_mib_per_s", mib / down_s},
                        {"identical", up == down && got == size},
                        {"peak_rss_mib_before", static_cast<double>(rss_before) / (1 << 20)},
                        {"peak_rss_mib_after_upload", static_cast<double>(rss_upload) / (1 << 20)},
                        {"peak_rss_mib", static_cast<double>(test::PeakRssBytes()) / (1 << 20)}};
    s->DeleteMany({"object"});
    std::cout << j.dump() << std::endl;
    return up == down && got == size ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "gravl_s3_bench: " << e.what() << "\n";
    return 1;
  }
}
