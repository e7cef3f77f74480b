// The chat template of our GPT models and the instruction-tuning data that uses it.
//
// Template (each marker is ONE special token, registered on the GPT-2 tokenizer with add_special_token;
// with GPT-2's 50,257 ids they get 50257..50260, inside the padded vocabulary of 50,304 that train_gpt
// uses, so the model has an embedding row for each):
//
//   <|system|>\n{system text}<|end|>\n          (optional, first)
//   <|user|>\n{user text}<|end|>\n
//   <|assistant|>\n{assistant text}<|end|>\n
//   ... more turns ...
//
// A prompt for generation ends with "<|assistant|>\n" and generation stops at <|end|> (or <|endoftext|>).
//
// Instruction data: JSONL, one example per line, in either shape:
//   {"instruction": "...", "input": "...", "output": "..."}   (Alpaca's; "input" may be absent or "")
//       -> user = instruction, or instruction + "\n\n" + input; assistant = output
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
// Loss mask: the targets are the tokens of every assistant turn's text and its closing <|end|>; every
// other token (markers, system and user text, the "\n" after a marker, padding) has label -100 (ignored),
// so the loss is the response tokens' alone. Errors name the file and the line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer/bpe.h"

namespace nabla::data {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct ChatTokens {
  int32_t system = -1, user = -1, assistant = -1, end = -1, eot = -1;
};

// Registers the four markers on `tok` (idempotent) and returns their ids.
ChatTokens add_chat_tokens(Gpt2Tokenizer& tok);

// The template's text for `messages` (see above); with add_generation_prompt, "<|assistant|>\n" at the end.
std::string format_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

struct SftExample {
  std::vector<int64_t> ids;     // the whole conversation
  std::vector<int64_t> labels;  // ids where the loss applies, -100 elsewhere
};

// Tokenizes a conversation with the mask above. Throws for a role other than the three.
SftExample tokenize_chat(const Gpt2Tokenizer& tok, const ChatTokens& ct,
                         const std::vector<ChatMessage>& messages);

// Parses one JSONL line in either shape; `where` ("file:line") prefixes errors.
std::vector<ChatMessage> parse_instruction_line(const std::string& line, const std::string& where);
// Every non-blank line of a JSONL file.
std::vector<std::vector<ChatMessage>> read_instruction_file(const std::string& path);

// Examples cut or right-padded to `length` tokens (pad id `pad`, label -100): ids and labels [N, length] i64.
// Examples with no target left after the cut are dropped (counted in `dropped`, when given).
struct SftBatchData {
  std::vector<int64_t> ids, labels;
  int64_t rows = 0, length = 0;
};
SftBatchData pack_sft_examples(const std::vector<SftExample>& examples, int64_t length, int64_t pad,
                               int64_t* dropped = nullptr);

}  // namespace nabla::data
