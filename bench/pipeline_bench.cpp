// Throughput of the streaming filters on 64 MiB of half-compressible data.
// Run: build/bench/gravl_pipeline_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include "io/compress.h"
#include "io/crypto.h"
#include "io/hash.h"
#include "io/pipeline.h"
#include "support/test_util.h"

namespace gravl::io {
namespace {

constexpr std::int64_t kSize = 64 << 20;

const Key& BenchKey() {
  static const Key key(Bytes(kKeySize, 1));
  return key;
}

template <typename Build>
void RunChain(benchmark::State& state, Build build) {
  for (auto _ : state) {
    NullSink null;
    FilterChain chain(null);
    build(chain);
    test::GeneratedSource source(static_cast<std::uint64_t>(kSize), 42);
    Pump(source, chain.head());
  }
  state.SetBytesProcessed(state.iterations() * kSize);
}

void BM_Generate(benchmark::State& state) {
  RunChain(state, [](FilterChain&) {});
}
void BM_Sha256(benchmark::State& state) {
  RunChain(state, [](FilterChain& c) { c.Prepend<HashSink>(); });
}
void BM_Compress(benchmark::State& state) {
  auto type = static_cast<CompressionType>(state.range(0));
  RunChain(state, [type](FilterChain& c) {
    c.PrependWith([type](Sink& next) {
      return MakeCompressor(type, type == CompressionType::kGzip ? 6 : 1, next);
    });
  });
}
void BM_Encrypt(benchmark::State& state) {
  RunChain(state, [](FilterChain& c) {
    c.PrependWith([](Sink& next) { return MakeEncryptor(BenchKey(), next); });
  });
}
void BM_FullWriteChain(benchmark::State& state) {
  RunChain(state, [](FilterChain& c) {
    c.PrependWith([](Sink& next) { return MakeEncryptor(BenchKey(), next); });
    c.PrependWith([](Sink& next) { return MakeCompressor(CompressionType::kZstd, 1, next); });
    c.Prepend<HashSink>();
  });
}

BENCHMARK(BM_Generate)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sha256)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Compress)
    ->Arg(static_cast<int>(CompressionType::kZstd))
    ->Arg(static_cast<int>(CompressionType::kLz4))
    ->Arg(static_cast<int>(CompressionType::kGzip))
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Encrypt)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FullWriteChain)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gravl::io

BENCHMARK_MAIN();
