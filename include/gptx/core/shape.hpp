// gptx/core/shape.hpp: the model shape (a C++20 structural type used as a non-type template
// parameter) and the named presets. Tested by tests/core/test_core.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace gptx {

// Where LayerNorm sits. pre: GPT-2 (x + f(LN(x)), final LayerNorm). post: GPT-1 (LN(x + f(x))).
enum class norm : std::uint8_t { pre = 0, post = 1 };

// The GELU of the MLP. tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the approximation
// GPT-1 and GPT-2 used (Hugging Face's "gelu_new"). erf: x Phi(x) exactly, PyTorch's nn.GELU(),
// which nanoGPT trains with.
enum class gelu_kind : std::uint8_t { tanh = 0, erf = 1 };

struct shape {
    int width = 0;  // C
    int heads = 0;  // NH
    int layers = 0; // L
    norm placement = norm::pre;
    bool bias =
        true; // biases in linear layers and LayerNorms (GPT-1/2: yes; nanoGPT's default: no)
    gelu_kind gelu = gelu_kind::tanh;

    constexpr int head_size() const { return heads > 0 ? width / heads : 0; }
    constexpr bool valid() const {
        return width > 0 && heads > 0 && layers > 0 && width % heads == 0 && width % 4 == 0;
    }
    friend constexpr bool operator==(const shape&, const shape&) = default;
    template <class Os> friend Os& operator<<(Os& os, const shape& s) { return os << to_string(s); }
    // "768/12/12 pre-LN", with ", no bias" for bias-free shapes and ", erf GELU" for exact GELU.
    friend std::string to_string(const shape& s) {
        return std::to_string(s.width) + "/" + std::to_string(s.heads) + "/" +
               std::to_string(s.layers) + (s.placement == norm::pre ? " pre-LN" : " post-LN") +
               (s.bias ? "" : ", no bias") + (s.gelu == gelu_kind::erf ? ", erf GELU" : "");
    }
};

// Runtime sizes that go with a shape: vocabulary and the longest context (rows of wpe).
struct model_config {
    int vocab = 0;
    int context = 0;
};

struct preset {
    std::string_view name;
    shape dims;
    model_config config; // defaults; vocab is replaced by the tokenizer's for char/byte data
};

namespace presets {
inline constexpr shape gpt1{768, 12, 12, norm::post};
inline constexpr shape gpt2{768, 12, 12, norm::pre};
inline constexpr shape gpt2_medium{1024, 16, 24, norm::pre};
inline constexpr shape gpt2_large{1280, 20, 36, norm::pre};
inline constexpr shape gpt2_xl{1600, 25, 48, norm::pre};
// Small CPU presets. baby is nanoGPT's shakespeare_char CPU config (nanoGPT trains without
// biases by default, and with the exact erf GELU); baby-bias is the same with GPT-2's biases.
inline constexpr shape tiny{64, 4, 2, norm::pre};
inline constexpr shape baby{128, 4, 4, norm::pre, false, gelu_kind::erf};
inline constexpr shape baby_bias{128, 4, 4, norm::pre, true, gelu_kind::erf};
inline constexpr shape mini{256, 8, 6, norm::pre};
inline constexpr shape baby_post{128, 4, 4, norm::post};
} // namespace presets

inline constexpr std::array<preset, 10> preset_table{{
    {"tiny", presets::tiny, {256, 256}},
    {"baby", presets::baby, {256, 256}},
    {"baby-bias", presets::baby_bias, {256, 256}},
    {"baby-post", presets::baby_post, {256, 256}},
    {"mini", presets::mini, {256, 512}},
    {"gpt1", presets::gpt1, {40478, 512}},
    {"gpt2", presets::gpt2, {50257, 1024}},
    {"gpt2-medium", presets::gpt2_medium, {50257, 1024}},
    {"gpt2-large", presets::gpt2_large, {50257, 1024}},
    {"gpt2-xl", presets::gpt2_xl, {50257, 1024}},
}};

// X(S) for the shape S of every preset, in preset_table's order: explicit instantiations of a
// template on the shape for every preset (the gptx command's samples/cli/instances/, or a
// project's own translation unit) without repeating the list.
#define GPTX_FOR_EACH_PRESET(X)                                                                    \
    X(::gptx::presets::tiny)                                                                       \
    X(::gptx::presets::baby)                                                                       \
    X(::gptx::presets::baby_bias)                                                                  \
    X(::gptx::presets::baby_post)                                                                  \
    X(::gptx::presets::mini)                                                                       \
    X(::gptx::presets::gpt1)                                                                       \
    X(::gptx::presets::gpt2)                                                                       \
    X(::gptx::presets::gpt2_medium)                                                                \
    X(::gptx::presets::gpt2_large)                                                                 \
    X(::gptx::presets::gpt2_xl)

namespace detail {
#define GPTX_DETAIL_PRESET_SHAPE(S) S,
inline constexpr shape preset_macro_shapes[] = {GPTX_FOR_EACH_PRESET(GPTX_DETAIL_PRESET_SHAPE)};
#undef GPTX_DETAIL_PRESET_SHAPE
consteval bool preset_macro_matches_table() {
    if (std::size(preset_macro_shapes) != preset_table.size())
        return false;
    for (std::size_t i = 0; i < preset_table.size(); ++i)
        if (!(preset_macro_shapes[i] == preset_table[i].dims))
            return false;
    return true;
}
} // namespace detail
static_assert(detail::preset_macro_matches_table(),
              "GPTX_FOR_EACH_PRESET must list preset_table's shapes in its order");

inline const preset* find_preset(std::string_view name) {
    for (const auto& p : preset_table)
        if (p.name == name)
            return &p;
    return nullptr;
}

// Calls f.template operator()<S>() with the compile-time shape of the named preset.
// Returns false when the name is unknown.
template <class F> bool with_preset(std::string_view name, F&& f) {
    bool found = false;
    auto try_one = [&]<std::size_t I>() {
        if (!found && preset_table[I].name == name) {
            found = true;
            f.template operator()<preset_table[I].dims>();
        }
    };
    [&]<std::size_t... I>(std::index_sequence<I...>) { (try_one.template operator()<I>(), ...); }
    (std::make_index_sequence<preset_table.size()>{});
    return found;
}

} // namespace gptx
