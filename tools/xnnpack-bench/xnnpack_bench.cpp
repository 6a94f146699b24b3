// The official ExecuTorch C++ runtime (the executorch wheel's libexecutorch + XNNPACK delegate + optimized CPU
// kernels) timing an LLM export the way `etmlx bench` and python/bench_peers.py do, for hosts where the wheel's
// Python bindings cannot run (the GPU machine: a different CPython and torch, no network).
//
// The program must be `forward(input_ids [1,T] int64, cache_position [T] int64) -> logits [1,T,V] float32`
// (optimum-executorch's text-generation export). The wheel ships no standalone library with the LLM custom ops
// (custom_sdpa / update_cache), so exports made with --use_custom_sdpa / --use_custom_kv_cache fail to load here,
// naming the missing kernel; use the plain recipe.
//
//   xnnpack_bench MODEL.pte [-p 128,512] [-n 128] [-r 5] [--threads N] [--seed 0]
// Prints a table line per test on stderr and one JSON object (shaped like `etmlx bench --json`) on stdout.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sys/resource.h>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// The wheel ships libexecutorch_threadpool without its header; these are the two entry points used here.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::extension::Module;
using executorch::runtime::EValue;

namespace {

struct Options {
  std::string model;
  std::vector<int64_t> prompts{128};
  std::vector<int64_t> gens{128};
  int reps = 5;
  int threads = 0;
  uint64_t seed = 0;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "xnnpack_bench: %s\n", message.c_str());
  std::exit(1);
}

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (end == item.c_str() || *end != '\0' || v < 0) fail("not a list of non-negative integers: " + text);
    if (v > 0) out.push_back(v);
  }
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("missing value after " + a);
      return argv[++i];
    };
    if (a == "-p") o.prompts = parse_list(value());
    else if (a == "-n") o.gens = parse_list(value());
    else if (a == "-r") o.reps = std::max(1, std::atoi(value().c_str()));
    else if (a == "--threads") o.threads = std::atoi(value().c_str());
    else if (a == "--seed") o.seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (!a.empty() && a[0] == '-') fail("unknown option " + a);
    else o.model = a;
  }
  if (o.model.empty()) fail("usage: xnnpack_bench MODEL.pte [-p 128] [-n 128] [-r 5] [--threads N] [--seed S]");
  return o;
}

class Runner {
 public:
  explicit Runner(const std::string& path) : module_(path, Module::LoadMode::MmapUseMlockIgnoreErrors) {
    auto t0 = std::chrono::steady_clock::now();
    if (module_.load_method("forward") != executorch::runtime::Error::Ok) fail("cannot load method forward of " + path);
    load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  double load_ms() const { return load_ms_; }

  // Runs forward on `ids` at positions start.. and returns the argmax of the last row of logits.
  int64_t step(const std::vector<int64_t>& ids, int64_t start) {
    std::vector<int64_t> ids_copy(ids);
    std::vector<int64_t> positions(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) positions[i] = start + static_cast<int64_t>(i);
    auto input = executorch::extension::from_blob(ids_copy.data(), {1, static_cast<int>(ids.size())},
                                                  executorch::aten::ScalarType::Long);
    auto pos = executorch::extension::from_blob(positions.data(), {static_cast<int>(ids.size())},
                                                executorch::aten::ScalarType::Long);
    auto out = module_.execute("forward", std::vector<EValue>{EValue(*input), EValue(*pos)});
    if (!out.ok()) fail("forward failed (error " + std::to_string(static_cast<int>(out.error())) + ")");
    const auto& logits = out.get().at(0).toTensor();
    if (logits.scalar_type() != executorch::aten::ScalarType::Float) fail("logits are not float32");
    int64_t vocab = logits.size(logits.dim() - 1);
    const float* row = logits.const_data_ptr<float>() + (logits.numel() - vocab);
    return std::max_element(row, row + vocab) - row;
  }

 private:
  Module module_;
  double load_ms_ = 0;
};

struct Summary {
  std::string name;
  int64_t tokens, calls;
  std::vector<double> seconds;
  std::string json() const {
    std::vector<double> rates, ms;
    for (double s : seconds) rates.push_back(tokens / s), ms.push_back(1e3 * s);
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      size_t n = v.size();
      return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    };
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\"test\":\"%s\",\"tokens\":%lld,\"calls\":%lld,\"tok_s_median\":%.6g,\"tok_s_min\":%.6g,"
                  "\"tok_s_max\":%.6g,\"ms_median\":%.6g,\"ms_min\":%.6g,\"ms_max\":%.6g}",
                  name.c_str(), (long long)tokens, (long long)calls, median(rates),
                  *std::min_element(rates.begin(), rates.end()), *std::max_element(rates.begin(), rates.end()),
                  median(ms), *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()));
    return buf;
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (auto* pool = ::executorch::extension::threadpool::get_threadpool()) pool->_unsafe_reset_threadpool(threads);
  Runner runner(o.model);
  const int64_t vocab_probe = 32000;  // ids below every Llama-family vocabulary size
  std::mt19937_64 rng(o.seed);
  auto prompt_of = [&](int64_t n) {
    std::vector<int64_t> ids(n);
    for (auto& id : ids) id = static_cast<int64_t>(rng() % vocab_probe);
    return ids;
  };
  auto prefill = [&](const std::vector<int64_t>& ids) {
    auto t0 = std::chrono::steady_clock::now();
    runner.step(ids, 0);
    return seconds_since(t0);
  };
  auto decode = [&](int64_t n) {
    int64_t tok = runner.step({1}, 0);
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t pos = 1; pos <= n; ++pos) tok = runner.step({tok}, pos);
    return seconds_since(t0);
  };
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t p : o.prompts) prompts.push_back(prompt_of(p));
  for (auto& ids : prompts) prefill(ids);  // warm-up: every prompt length once + 8 decode steps
  decode(8);
  std::vector<Summary> pre, dec;
  for (auto& ids : prompts) {
    Summary s{"pp" + std::to_string(ids.size()), (int64_t)ids.size(), 1, {}};
    for (int r = 0; r < o.reps; ++r) s.seconds.push_back(prefill(ids));
    std::fprintf(stderr, "%s: %.2f tok/s\n", s.name.c_str(), ids.size() / s.seconds.back());
    pre.push_back(s);
  }
  for (int64_t n : o.gens) {
    Summary s{"tg" + std::to_string(n), n, n, {}};
    for (int r = 0; r < o.reps; ++r) s.seconds.push_back(decode(n));
    std::fprintf(stderr, "%s: %.2f tok/s\n", s.name.c_str(), n / s.seconds.back());
    dec.push_back(s);
  }
  auto join = [](const std::vector<Summary>& v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i].json();
    return out;
  };
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("{\"runtime\":\"xnnpack\",\"peak_memory_bytes\":%lld,\"peak_memory_kind\":\"process peak RSS\",\"engine\":\"executorch C++ runtime (wheel libexecutorch), XNNPACK, %d threads\","
              "\"sampling\":\"host argmax\",\"load_ms\":%.3f,\"repetitions\":%d,\"warmup\":1,\"seed\":%llu,"
              "\"prefill\":[%s],\"decode\":[%s]}\n",
              (long long)usage.ru_maxrss * 1024, threads, runner.load_ms(), o.reps, (unsigned long long)o.seed, join(pre).c_str(), join(dec).c_str());
  return 0;
}
