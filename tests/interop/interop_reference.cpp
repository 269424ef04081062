// tests/interop/interop_reference.cpp: what gptx computes, for llama.cpp to be compared with
// (tests/interop/check_llama_cpp.mjs). Usage:
//   gptx_interop_reference MODEL PROMPTS.json OUT.json   (MODEL: a .gptx checkpoint or a GGUF)
// For each prompt: its GPT-2 token ids, gptx's greedy continuation of 32 tokens (KV cache, stops
// only at the context) and the log-probabilities of the next token after the prompt (double
// log-softmax of the float logits).
//   gptx_interop_reference --compare A B PROMPTS.json
// loads two model files (e.g. F32 GGUF and a Q8_0 one llama.cpp wrote) and prints the largest
// next-token log-probability difference; exit 1 if a file fails to load.
//   gptx_interop_reference --random VOCAB_DIR OUT_PREFIX
// writes OUT_PREFIX-f32.gguf and OUT_PREFIX-f16.gguf: a randomly initialised tiny GPT-2 (seed 42,
// context 64) with GPT-2's tokenizer, whose greedy continuations change token often (a briefly
// trained model soon repeats a newline), so the continuations test more decisions.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <gptx/gptx.hpp>

using namespace gptx;
namespace fs = std::filesystem;

namespace {

constexpr int continuation = 32;

template <shape S>
std::vector<double> next_logprobs(transformer<S>& m, const std::vector<int>& ids) {
    m.forward(ids.data(), 1, int(ids.size()));
    lm_head<transformer<S>> head;
    std::vector<float> logits(ids.size() * std::size_t(m.vocab()));
    head.logits(m, m.hidden(), logits.data(), std::int64_t(ids.size()));
    const float* last = logits.data() + (ids.size() - 1) * std::size_t(m.vocab());
    double mx = -1e300, sum = 0;
    for (int v = 0; v < m.vocab(); ++v)
        mx = std::max(mx, double(last[v]));
    for (int v = 0; v < m.vocab(); ++v)
        sum += std::exp(double(last[v]) - mx);
    std::vector<double> out(std::size_t(m.vocab()));
    for (int v = 0; v < m.vocab(); ++v)
        out[std::size_t(v)] = double(last[v]) - mx - std::log(sum);
    return out;
}

template <class F> void with_model(const fs::path& file, F&& f) {
    const checkpoint_info info = read_model_info(file);
    const bool found = with_checkpoint_preset(info, [&]<shape S>() {
        transformer<S> m(info.config);
        tokenizer tok;
        load_model<S>(file, m, &tok);
        f(m, tok);
    });
    GPTX_CHECK(found, file.string(), ": no preset has the shape ", to_string(info.dims));
}

std::vector<std::string> read_prompts(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}))
        .get<std::vector<std::string>>();
}

} // namespace

int main(int argc, char** argv) try {
    if (argc == 4 && std::string(argv[1]) == "--random") {
        const tokenizer tok = make_tokenizer("gpt2", "", argv[2]);
        transformer<presets::tiny> m({tok.vocab_size(), 64});
        m.init(42);
        const std::string prefix = argv[3];
        save_gguf<presets::tiny>(prefix + "-f32.gguf", m, tok);
        save_gguf<presets::tiny>(prefix + "-f16.gguf", m, tok, gguf_dtype::f16);
        return 0;
    }
    if (argc == 5 && std::string(argv[1]) == "--compare") {
        const auto prompts = read_prompts(argv[4]);
        std::vector<std::vector<double>> a;
        with_model(argv[2], [&](auto& m, const tokenizer& tok) {
            for (const auto& p : prompts)
                a.push_back(next_logprobs(m, tok.encode(p)));
        });
        double worst = 0;
        std::size_t i = 0;
        with_model(argv[3], [&](auto& m, const tokenizer& tok) {
            for (const auto& p : prompts) {
                const auto b = next_logprobs(m, tok.encode(p));
                for (std::size_t v = 0; v < b.size(); ++v)
                    worst = std::max(worst, std::abs(b[v] - a[i][v]));
                ++i;
            }
        });
        std::printf("max next-token log-prob difference: %.6g\n", worst);
        return 0;
    }
    if (argc != 4) {
        std::fprintf(stderr,
                     "usage: %s MODEL PROMPTS.json OUT.json | --compare A B PROMPTS.json | "
                     "--random VOCAB_DIR OUT_PREFIX\n",
                     argv[0]);
        return 2;
    }
    const auto prompts = read_prompts(argv[2]);
    nlohmann::json out = nlohmann::json::array();
    with_model(argv[1], [&](auto& m, const tokenizer& tok) {
        for (const auto& p : prompts) {
            const std::vector<int> ids = tok.encode(p);
            GPTX_CHECK(int(ids.size()) + continuation <= m.context(), "prompt '", p, "' has ",
                       ids.size(), " tokens: too long for the context ", m.context());
            sampling_config greedy;
            greedy.temperature = 0;
            const generation g = generate(m, ids, continuation, greedy, {});
            const auto lp = next_logprobs(m, ids);
            out.push_back({{"prompt", p},
                           {"ids", ids},
                           {"greedy", g.tokens},
                           {"text", tok.decode(g.tokens)},
                           {"logprobs", lp}});
        }
    });
    std::ofstream(argv[3]) << out.dump();
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "gptx_interop_reference: error: %s\n", e.what());
    return 1;
}
