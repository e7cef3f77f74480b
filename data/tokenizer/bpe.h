// GPT-2's byte-level BPE tokenizer: reads the standard encoder.json (token -> id) and vocab.bpe (merges, one
// "left right" pair per line in rank order), encodes any bytes and decodes them back exactly.
//
// encode(text):
//   1. special tokens (<|endoftext|> and those added with add_special_token, e.g. <|im_start|>) are found
//      first, longest match at each position, and become their ids; the text between them goes on alone;
//   2. pre-tokenisation by GPT-2's pattern, implemented by hand over code points (\p{L}, \p{N} from the
//      generated Unicode tables, \s = White_Space, as Oniguruma and HF tokenizers read it):
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      an invalid UTF-8 byte is one character of the [^\s\p{L}\p{N}] class;
//   3. each piece's bytes start as one token per byte (the 256 byte tokens, spelt in encoder.json through
//      GPT-2's bytes_to_unicode map), then the adjacent pair of lowest merge rank is merged, leftmost first,
//      until no pair has a rank. Pieces' results are cached (bounded; shared by threads behind a mutex).
// decode(ids) concatenates each token's bytes, so decode(encode(x)) == x for any byte string x.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nabla::data {

class Gpt2Tokenizer {
 public:
  // encoder: byte-level spelling (as in encoder.json) -> id; merges: pairs of byte-level spellings in rank
  // order. Throws nabla::Error when a byte has no token, or a merge names a token the encoder lacks.
  Gpt2Tokenizer(const std::vector<std::pair<std::string, int32_t>>& encoder,
                const std::vector<std::pair<std::string, std::string>>& merges);
  // Reads the two files; errors name the file (and the line of vocab.bpe).
  static Gpt2Tokenizer from_files(const std::string& encoder_json, const std::string& vocab_bpe);

  // Registers a special token matched whole in encode(); returns its id: the encoder's id when the encoder
  // has the text (<|endoftext|> is registered so at construction), else the next free id. Idempotent.
  int32_t add_special_token(const std::string& text);

  // allow_special = false: special tokens' text is encoded as ordinary text.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  std::string decode(std::span<const int32_t> ids) const;  // throws for an unknown id
  // The pieces of step 2 (for tests), as byte strings.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  int32_t vocab_size() const { return static_cast<int32_t>(token_bytes_.size()); }  // with added specials
  int32_t eot_id() const { return eot_id_; }                                        // -1 when absent
  int32_t token_to_id(std::string_view bytes) const;                                // -1 when absent
  const std::string& id_to_bytes(int32_t id) const;

  // GPT-2's bytes_to_unicode: the code point that spells byte b in encoder.json and vocab.bpe.
  static char32_t byte_to_unicode(uint8_t b);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int32_t rank, id;
  };

  template <class Piece>
  void for_each_piece(std::string_view text, Piece&& piece) const;
  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
  void bpe_uncached(std::string_view piece, std::vector<int32_t>& out) const;

  std::vector<std::string> token_bytes_;  // id -> raw bytes
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  int32_t byte_id_[256];
  std::vector<std::pair<std::string, int32_t>> specials_;  // sorted longest first
  int32_t eot_id_ = -1;

  struct Cache {                               // behind a pointer, so that the tokenizer stays movable
    static constexpr size_t kLimit = 1 << 17;  // pieces; cleared whole when full
    static constexpr size_t kMaxPieceBytes = 256;
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> pieces;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace nabla::data
