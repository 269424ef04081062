// gptx/text/byte_tokenizer.hpp: the byte tokenizer (256 ids, id = byte value).
// Tested by tests/text/test_tokenizers.cpp.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"

namespace gptx {

// Lossless for any input (UTF-8 or not) and needs no training; the baseline vocabulary.
class byte_tokenizer {
  public:
    static constexpr std::string_view name = "byte";

    int vocab_size() const { return 256; }

    std::vector<int> encode(std::string_view text) const {
        std::vector<int> ids(text.size());
        for (std::size_t i = 0; i < text.size(); ++i)
            ids[i] = static_cast<unsigned char>(text[i]);
        return ids;
    }
    std::string decode(std::span<const int> ids) const {
        std::string out;
        out.reserve(ids.size());
        for (int id : ids)
            out += to_char(id);
        return out;
    }
    std::string decode_token(int id) const { return std::string(1, to_char(id)); }

    // Serialized form (see tokenizer.hpp): nothing beyond the kind name.
    std::string payload() const { return {}; }
    static byte_tokenizer from_payload(std::string_view payload) {
        GPTX_CHECK(payload.empty(), "byte tokenizer: unexpected ", payload.size(),
                   "-byte payload (expected none)");
        return {};
    }

    friend bool operator==(const byte_tokenizer&, const byte_tokenizer&) = default;

  private:
    static char to_char(int id) {
        GPTX_CHECK(id >= 0 && id < 256, "token id ", id,
                   " is out of range for the byte tokenizer (valid: 0..255)");
        return static_cast<char>(static_cast<unsigned char>(id));
    }
};

} // namespace gptx
