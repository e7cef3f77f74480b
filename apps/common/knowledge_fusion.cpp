// Knowledge fusion through an OpenAI-compatible endpoint, cached per user (see knowledge_fusion.h).
#include "apps/common/knowledge_fusion.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "algorithms/hkf/behaviour_text.h"
#include "engine/error.h"

namespace nabla::apps {

namespace {

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

KnowledgeFusion::KnowledgeFusion(FusionOptions options) : o_(std::move(options)) {
  NABLA_CHECK(!o_.cache_dir.empty(), "knowledge fusion: a cache folder is required");
  std::filesystem::create_directories(o_.cache_dir);
}

std::string KnowledgeFusion::cache_path(const std::string& key, const std::string& text) const {
  NABLA_CHECK(!key.empty(), "knowledge fusion: empty cache key");
  for (char c : key)
    NABLA_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-',
                "knowledge fusion: cache key '", key, "' has '", std::string(1, c),
                "'; expected letters, digits, '_' and '-'");
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(fnv1a64(o_.model + "\n" + hkf::fusion_prompt(text))));
  return o_.cache_dir + "/" + key + "-" + hex + ".txt";
}

std::string KnowledgeFusion::fuse(const std::string& key, const std::string& text) {
  const std::string path = cache_path(key, text);
  if (std::filesystem::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    ++hits_;
    return ss.str();
  }
  if (!client_)
    client_ = std::make_unique<OpenAIClient>(ClientOptions{.base_url = o_.base_url, .api_key = o_.api_key});
  nlohmann::json req = {{"model", o_.model},
                        {"messages", {{{"role", "user"}, {"content", hkf::fusion_prompt(text)}}}},
                        {"max_tokens", o_.max_tokens},
                        {"temperature", o_.temperature}};
  CompletionResult r;
  try {
    r = client_->chat(req);
  } catch (const std::exception& e) {
    fail("knowledge fusion: ", o_.base_url, "/chat/completions for ", key, ": ", e.what());
  }
  ++requests_;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << r.text;
    NABLA_CHECK(out.good(), "knowledge fusion: cannot write ", tmp);
  }
  std::filesystem::rename(tmp, path);
  return r.text;
}

}  // namespace nabla::apps
