// The chat template and instruction data (see chat.h).
#include "data/chat.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace nabla::data {
namespace {

const char* marker(const std::string& role) {
  if (role == "system") return "<|system|>";
  if (role == "user") return "<|user|>";
  if (role == "assistant") return "<|assistant|>";
  return nullptr;
}

int32_t marker_id(const ChatTokens& ct, const std::string& role) {
  if (role == "system") return ct.system;
  if (role == "user") return ct.user;
  if (role == "assistant") return ct.assistant;
  fail("chat: role '", role, "' is not one of system, user, assistant");
}

}  // namespace

ChatTokens add_chat_tokens(Gpt2Tokenizer& tok) {
  ChatTokens ct;
  ct.system = tok.add_special_token("<|system|>");
  ct.user = tok.add_special_token("<|user|>");
  ct.assistant = tok.add_special_token("<|assistant|>");
  ct.end = tok.add_special_token("<|end|>");
  ct.eot = tok.eot_id();
  return ct;
}

std::string format_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (auto& m : messages) {
    const char* mk = marker(m.role);
    NABLA_CHECK(mk, "chat: role '", m.role, "' is not one of system, user, assistant");
    out += mk;
    out += "\n" + m.content + "<|end|>\n";
  }
  if (add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

SftExample tokenize_chat(const Gpt2Tokenizer& tok, const ChatTokens& ct,
                         const std::vector<ChatMessage>& messages) {
  SftExample ex;
  const std::vector<int32_t> newline = tok.encode("\n", false);
  auto put = [&](const std::vector<int32_t>& ids, bool target) {
    for (int32_t id : ids) {
      ex.ids.push_back(id);
      ex.labels.push_back(target ? id : -100);
    }
  };
  for (auto& m : messages) {
    const bool target = m.role == "assistant";
    put({marker_id(ct, m.role)}, false);
    put(newline, false);
    // The text is ordinary text: a marker spelt inside it is not a marker (allow_special false).
    put(tok.encode(m.content, false), target);
    put({ct.end}, target);  // the model learns to close its turn
    put(newline, false);
  }
  return ex;
}

std::vector<ChatMessage> parse_instruction_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not valid JSON: ", e.what());
  }
  NABLA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto text = [&](const nlohmann::json& o, const char* key, bool required) -> std::string {
    if (!o.contains(key) || (!required && o[key].is_null())) {
      NABLA_CHECK(!required, where, ": missing \"", key, "\"");
      return "";
    }
    NABLA_CHECK(o[key].is_string(), where, ": \"", key, "\" must be a string, got ", o[key].type_name());
    return o[key].get<std::string>();
  };
  std::vector<ChatMessage> out;
  if (j.contains("messages")) {
    NABLA_CHECK(j["messages"].is_array() && !j["messages"].empty(), where,
                ": \"messages\" must be a non-empty array");
    bool has_assistant = false;
    for (auto& m : j["messages"]) {
      NABLA_CHECK(m.is_object(), where, ": each message must be an object {\"role\", \"content\"}");
      ChatMessage cm{text(m, "role", true), text(m, "content", true)};
      NABLA_CHECK(marker(cm.role), where, ": role '", cm.role, "' is not one of system, user, assistant");
      has_assistant = has_assistant || cm.role == "assistant";
      out.push_back(std::move(cm));
    }
    NABLA_CHECK(has_assistant, where, ": no assistant message: nothing to train on");
    return out;
  }
  NABLA_CHECK(j.contains("instruction") && j.contains("output"), where,
              ": expected {\"instruction\", \"input\", \"output\"} or {\"messages\": [...]}");
  std::string user = text(j, "instruction", true);
  const std::string input = text(j, "input", false);
  if (!input.empty()) user += "\n\n" + input;
  out.push_back({"user", user});
  out.push_back({"assistant", text(j, "output", true)});
  return out;
}

std::vector<std::vector<ChatMessage>> read_instruction_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  NABLA_CHECK(f.good(), "instruction data: cannot open ", path);
  std::vector<std::vector<ChatMessage>> out;
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(parse_instruction_line(line, path + ":" + std::to_string(n)));
  }
  NABLA_CHECK(!out.empty(), "instruction data: ", path, " holds no example");
  return out;
}

SftBatchData pack_sft_examples(const std::vector<SftExample>& examples, int64_t length, int64_t pad,
                               int64_t* dropped) {
  NABLA_CHECK(length >= 2, "sft: sequence length must be >= 2, got ", length);
  SftBatchData d;
  d.length = length;
  int64_t drop = 0;
  for (auto& ex : examples) {
    const auto n = std::min<int64_t>(length, static_cast<int64_t>(ex.ids.size()));
    bool any = false;
    for (int64_t i = 1; i < n; ++i) any = any || ex.labels[static_cast<size_t>(i)] != -100;
    if (!any) {
      ++drop;
      continue;
    }
    for (int64_t i = 0; i < length; ++i) {
      d.ids.push_back(i < n ? ex.ids[static_cast<size_t>(i)] : pad);
      d.labels.push_back(i < n ? ex.labels[static_cast<size_t>(i)] : -100);
    }
    ++d.rows;
  }
  if (dropped) *dropped = drop;
  return d;
}

}  // namespace nabla::data
