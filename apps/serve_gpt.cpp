// serve_gpt: serves a GPT through OpenAI's HTTP API (/v1/models, /v1/completions, /v1/chat/completions,
// streaming included); the protocol, limits and concurrency are described in apps/common/openai_server.h.
//
//   ./build/serve_gpt --model-dir run/hf [--adapter run/adapter] --port 8000 --device cuda
//   curl -s localhost:8000/v1/chat/completions -d
//   '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":20}'
//
// --model-dir is a transformers GPT-2 folder (config.json + model.safetensors: what train_gpt
// --save-pretrained writes, or a Hugging Face GPT-2 checkpoint); --adapter a PEFT LoRA folder (train_gpt
// --mode sft --adapter-out), merged into the weights at start-up. The tokenizer is GPT-2's BPE with the chat
// markers of data/chat.h added. Runs until SIGINT / SIGTERM, then closes its connections and exits 0.
#include <omp.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "apps/common/openai_server.h"
#include "apps/common/options.h"
#include "engine/device_runtime.h"
#include "engine/error.h"
#include "models/nn/lora.h"

using namespace nabla;

namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int sig) { g_stop = sig; }

struct Options {
  std::string model_dir, adapter, encoder, vocab_bpe, host, model_name, device;
  int64_t port, max_body_bytes, max_connections, threads, default_max_tokens;
  bool log_requests;
};

int run(const Options& o) {
  if (o.threads > 0) omp_set_num_threads(static_cast<int>(o.threads));
  const Device dev = Device::parse(o.device);
  runtime::require_device(dev, ("--device " + o.device).c_str());
  apps::GptBackend backend;
  backend.model = models::GPT::from_pretrained(o.model_dir);
  if (!o.adapter.empty()) {
    nn::load_lora(*backend.model, o.adapter);
    nn::merge_lora(*backend.model);
  }
  backend.model->to(dev);
  backend.model->eval();
  backend.tokenizer =
      std::make_shared<data::Gpt2Tokenizer>(data::Gpt2Tokenizer::from_files(o.encoder, o.vocab_bpe));
  backend.chat = data::add_chat_tokens(*backend.tokenizer);
  NABLA_CHECK(backend.tokenizer->vocab_size() <= backend.model->config().vocab_size, o.model_dir, " has ",
              backend.model->config().vocab_size,
              " embedding rows; the tokenizer with the chat markers needs ", backend.tokenizer->vocab_size(),
              " (train_gpt pads the vocabulary to 50304)");
  apps::ServerOptions so;
  so.host = o.host;
  so.port = static_cast<int>(o.port);
  so.max_body_bytes = static_cast<size_t>(o.max_body_bytes);
  so.max_connections = static_cast<int>(o.max_connections);
  so.model_name = o.model_name;
  so.default_chat_max_tokens = o.default_max_tokens;
  so.log_requests = o.log_requests;
  apps::OpenAIServer server(backend, so);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  server.start();
  std::printf("serving %s (%lld parameters, context %lld) on http://%s:%d/v1\n", o.model_name.c_str(),
              static_cast<long long>(backend.model->num_parameters()),
              static_cast<long long>(backend.model->config().n_positions), o.host.c_str(), server.port());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.stop();
  std::printf("stopped on signal %d after %lld requests\n", static_cast<int>(g_stop),
              static_cast<long long>(server.requests_served()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  apps::OptionSet cli("serve_gpt", "Serves a GPT through OpenAI's HTTP API (completions, chat, streaming).");
  cli.section("Model");
  cli.add("model-dir", &o.model_dir, "", "transformers GPT-2 folder (config.json, model.safetensors)")
      .value_name("DIR");
  cli.add("adapter", &o.adapter, "", "PEFT LoRA folder merged into the model (optional)").value_name("DIR");
  cli.add("encoder", &o.encoder, ".cache/tokenizers/gpt2/encoder.json", "GPT-2's encoder.json")
      .value_name("FILE");
  cli.add("vocab-bpe", &o.vocab_bpe, ".cache/tokenizers/gpt2/vocab.bpe", "GPT-2's vocab.bpe")
      .value_name("FILE");
  cli.add("model-name", &o.model_name, "nabla-gpt", "the id /v1/models lists");
  cli.add("device", &o.device, "cpu", "cpu | cuda | cuda:N").value_name("DEV");
  cli.add("threads", &o.threads, 0, "CPU threads (0: all cores)").in_range(0, 4096);
  cli.section("Server");
  cli.add("host", &o.host, "127.0.0.1", "address to listen on (0.0.0.0: every interface)");
  cli.add("port", &o.port, 8000, "TCP port (0: any free port, printed)").in_range(0, 65535);
  cli.add("max-body-bytes", &o.max_body_bytes, 1 << 20, "larger request bodies get 413")
      .in_range(1, int64_t{1} << 30);
  cli.add("max-connections", &o.max_connections, 16, "open connections at most (more get 503)")
      .in_range(1, 4096);
  cli.add("default-max-tokens", &o.default_max_tokens, 256, "chat completions' max_tokens when absent")
      .positive();
  cli.add_switch("log-requests", &o.log_requests, "one line per request");
  cli.example("--model-dir run/hf --port 8000", "serve a model that train_gpt --save-pretrained wrote");
  cli.example("--model-dir run/hf --adapter run/adapter --device cuda", "with a LoRA adapter, on the GPU");
  if (auto code =
          cli.parse(argc, argv, [&] { NABLA_CHECK(!o.model_dir.empty(), "--model-dir is required"); }))
    return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_gpt: %s\n", e.what());
  }
  return 1;
}
