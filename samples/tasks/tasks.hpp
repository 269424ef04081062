// samples/tasks/tasks.hpp: the instruction task family of the InstructGPT pipeline (short strings
// and numbers), the programmatic labeler that stands in for the paper's human labelers, and the
// generators of the pre-training corpus, demonstrations and prompts. Sample code, not the library.
// Tested by tests/data/test_tasks.cpp.
#pragma once
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <gptx/core/error.hpp>
#include <gptx/core/rng.hpp>

namespace gptx::tasks {

// One instruction ("reverse abc") and its one correct answer ("cba").
struct task {
    std::string instruction;
    std::string answer;
    friend bool operator==(const task&, const task&) = default;
};

// The kinds of instruction, each with one fixed phrasing the labeler can read back.
enum class task_kind : std::uint8_t { reverse, uppercase, add, length, sort, first, last };
inline constexpr int task_kind_count = 7;

// What the model sees: "Q: reverse abc\nA: "; the response follows, then end-of-text.
inline std::string task_prompt(std::string_view instruction) {
    std::string p = "Q: ";
    p += instruction;
    p += "\nA: ";
    return p;
}

namespace detail {

inline bool all_lower(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}
inline std::optional<int> parse_small_int(std::string_view s) {
    int v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < 0 || s.empty() ||
        (s.size() > 1 && s[0] == '0'))
        return std::nullopt;
    return v;
}
inline std::optional<std::string_view> after(std::string_view s, std::string_view prefix) {
    if (s.substr(0, prefix.size()) != prefix)
        return std::nullopt;
    return s.substr(prefix.size());
}

// Levenshtein distance, O(|a| |b|) with one row.
inline int edit_distance(std::string_view a, std::string_view b) {
    std::vector<int> row(b.size() + 1);
    std::iota(row.begin(), row.end(), 0);
    for (std::size_t i = 1; i <= a.size(); ++i) {
        int diag = row[0];
        row[0] = int(i);
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const int up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// Short pronounceable words (consonant-vowel patterns) and a few real ones.
inline std::string random_word(rng& r, int min_len = 3, int max_len = 5) {
    static constexpr std::string_view consonants = "bcdfghklmnprstvz", vowels = "aeiou";
    const int n = min_len + int(r.below(std::uint64_t(max_len - min_len + 1)));
    std::string w;
    const bool start_vowel = r.below(4) == 0;
    for (int i = 0; i < n; ++i) {
        const bool vowel = (i % 2 == 1) != start_vowel;
        const std::string_view set = vowel ? vowels : consonants;
        w += set[r.below(set.size())];
    }
    return w;
}

} // namespace detail

// The correct answer to an instruction of the family, read from its text alone (as a human
// labeler would), or nullopt when the text is not one of the family's instructions.
inline std::optional<std::string> solve_instruction(std::string_view ins) {
    using detail::after;
    if (auto w = after(ins, "reverse "); w && detail::all_lower(*w))
        return std::string(w->rbegin(), w->rend());
    if (auto w = after(ins, "uppercase "); w && detail::all_lower(*w)) {
        std::string s(*w);
        for (char& c : s)
            c = char(std::toupper(static_cast<unsigned char>(c)));
        return s;
    }
    if (auto rest = after(ins, "add ")) {
        const auto k = rest->find(" and ");
        if (k == std::string_view::npos)
            return std::nullopt;
        const auto a = detail::parse_small_int(rest->substr(0, k)),
                   b = detail::parse_small_int(rest->substr(k + 5));
        if (!a || !b || *a > 9999 || *b > 9999)
            return std::nullopt;
        return std::to_string(*a + *b);
    }
    if (auto w = after(ins, "length of "); w && detail::all_lower(*w))
        return std::to_string(w->size());
    if (auto w = after(ins, "first letter of "); w && detail::all_lower(*w))
        return std::string(1, w->front());
    if (auto w = after(ins, "last letter of "); w && detail::all_lower(*w))
        return std::string(1, w->back());
    if (auto rest = after(ins, "sort ")) {
        // single lowercase letters separated by single spaces
        std::string letters;
        for (std::size_t i = 0; i < rest->size(); ++i) {
            const char c = (*rest)[i];
            if (i % 2 == 0 ? !(c >= 'a' && c <= 'z') : c != ' ')
                return std::nullopt;
            if (i % 2 == 0)
                letters += c;
        }
        if (letters.empty() || rest->size() % 2 == 0)
            return std::nullopt;
        std::sort(letters.begin(), letters.end());
        std::string out;
        for (char c : letters) {
            if (!out.empty())
                out += ' ';
            out += c;
        }
        return out;
    }
    return std::nullopt;
}

// The instruction inside a prompt made by task_prompt, or nullopt.
inline std::optional<std::string_view> instruction_of_prompt(std::string_view prompt) {
    auto rest = detail::after(prompt, "Q: ");
    if (!rest || rest->size() < 4 || rest->substr(rest->size() - 4) != "\nA: ")
        return std::nullopt;
    return rest->substr(0, rest->size() - 4);
}

// A random instruction of the given kind. Words are 3-5 letters, numbers 0-49, sorts 3-4 letters.
inline task make_task(task_kind kind, rng& r) {
    std::string ins;
    switch (kind) {
    case task_kind::reverse:
        ins = "reverse " + detail::random_word(r);
        break;
    case task_kind::uppercase:
        ins = "uppercase " + detail::random_word(r);
        break;
    case task_kind::add:
        ins = "add " + std::to_string(r.below(50)) + " and " + std::to_string(r.below(50));
        break;
    case task_kind::length:
        ins = "length of " + detail::random_word(r, 2, 7);
        break;
    case task_kind::first:
        ins = "first letter of " + detail::random_word(r);
        break;
    case task_kind::last:
        ins = "last letter of " + detail::random_word(r);
        break;
    case task_kind::sort: {
        const int n = 3 + int(r.below(2));
        ins = "sort";
        for (int i = 0; i < n; ++i) {
            ins += ' ';
            ins += char('a' + r.below(26));
        }
        break;
    }
    }
    return {ins, *solve_instruction(ins)};
}
inline task make_task(rng& r) { return make_task(task_kind(r.below(task_kind_count)), r); }

// How a set is drawn. Held-out sets are `distinct` (no instruction twice) and disjoint from every
// other set. Training sets are `iid`: independent draws of the family that skip only the held-out
// instructions, so they follow the distribution the held-out sets are drawn from. Drawing every
// set distinct from all sets drawn before it would not: the small instruction spaces (2,500 sums,
// about 1,700 three-letter words) run out, so later sets get fewer sums and longer words.
enum class draws { distinct, iid };

// n tasks from seed, none of whose instructions is in `exclude`.
inline std::vector<task> make_tasks(std::uint64_t seed, int n,
                                    const std::unordered_set<std::string>& exclude = {},
                                    draws how = draws::distinct) {
    rng r(seed);
    std::vector<task> out;
    std::unordered_set<std::string> seen;
    for (int tries = 0; int(out.size()) < n; ++tries) {
        GPTX_CHECK(tries < 100 * n + 1000, "make_tasks: cannot find ", n, " instructions outside ",
                   exclude.size(), " excluded ones");
        task t = make_task(r);
        if (exclude.count(t.instruction) ||
            (how == draws::distinct && !seen.insert(t.instruction).second))
            continue;
        out.push_back(std::move(t));
    }
    return out;
}

// The task sets of one run, drawn from one distribution: every held-out set first (distinct, and
// disjoint from each other), then the training sets (iid outside the held-out instructions).
class task_splits {
  public:
    explicit task_splits(std::uint64_t seed) : seed_(seed) {}
    std::vector<task> held_out(std::uint64_t salt, int n) {
        GPTX_CHECK(!training_drawn_, "task_splits: held-out sets must be drawn before training "
                                     "sets, which exclude them");
        auto ts = make_tasks(mix64(seed_ ^ salt), n, held_out_);
        for (const auto& t : ts)
            held_out_.insert(t.instruction);
        return ts;
    }
    std::vector<task> training(std::uint64_t salt, int n) {
        training_drawn_ = true;
        return make_tasks(mix64(seed_ ^ salt), n, held_out_, draws::iid);
    }
    const std::unordered_set<std::string>& held_out_instructions() const { return held_out_; }

  private:
    std::uint64_t seed_;
    std::unordered_set<std::string> held_out_;
    bool training_drawn_ = false;
};

// The labeler: a score in [0, 1] for a response to a prompt of the family. It prefers, in order,
// correct answers, then near misses (by edit distance), and answers that end properly with
// end-of-text (ended = the sampler drew end-of-text, so nothing trails the answer):
//   score = 0.2 * ended + 0.8 * (1 if exact else 0.5 * max(0, 1 - edit / max(|answer|,
//   |response|)))
// A correct answer that rambles on instead of ending scores 0.8 * 0.5 * (its similarity).
struct labeler {
    // The share of the score for ending; the score is linear in `ended`, so a trainer can charge
    // a response that did not end this much after scoring it as ended.
    static constexpr double ended_weight = 0.2;
    double score(const task& t, std::string_view response, bool ended) const {
        double correct;
        if (response == t.answer)
            correct = 1.0;
        else {
            const double len = double(std::max(t.answer.size(), response.size()));
            const double sim =
                1.0 - double(detail::edit_distance(response, t.answer)) / std::max(1.0, len);
            correct = 0.5 * std::max(0.0, sim);
        }
        return ended_weight * (ended ? 1.0 : 0.0) + (1.0 - ended_weight) * correct;
    }
    // The same for a prompt made by task_prompt; a prompt outside the family is an error.
    double score(std::string_view prompt, std::string_view response, bool ended) const {
        return score(task_of_prompt(prompt), response, ended);
    }
    static task task_of_prompt(std::string_view prompt) {
        const auto ins = instruction_of_prompt(prompt);
        GPTX_CHECK(ins.has_value(), "labeler: prompt '", prompt,
                   "' is not of the form 'Q: <instruction>\\nA: '");
        auto ans = solve_instruction(*ins);
        GPTX_CHECK(ans.has_value(), "labeler: '", *ins,
                   "' is not an instruction of the task family");
        return {std::string(*ins), std::move(*ans)};
    }
    // Indices of responses from best to worst; equal scores keep their order.
    std::vector<int> rank(const task& t, const std::vector<std::string>& responses,
                          const std::vector<bool>& ended) const {
        GPTX_CHECK(responses.size() == ended.size(), "labeler: ", responses.size(),
                   " responses but ", ended.size(), " end flags");
        std::vector<double> s(responses.size());
        for (std::size_t i = 0; i < s.size(); ++i)
            s[i] = score(t, responses[i], ended[i]);
        std::vector<int> order(s.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
        return order;
    }
};

// Filler a writer may trail an answer with. The labeler counts it against conciseness.
inline constexpr std::array<std::string_view, 6> answer_padding = {
    " and that is all", " i think", " or so they say", " maybe", " ok", " right"};

// A demonstration's response: the correct answer, trailed by padding with probability `padded`
// (0 gives clean demonstrations). Demonstrations of mixed quality are one way preferences can
// teach more than imitation: human labelers preferred RLHF summaries to the human-written TL;DR
// references the supervised baseline imitated (Stiennon et al. 2020). The phrase is drawn from
// those that keep the response within `max_chars`, so a sampler with that cap can reproduce it;
// when none fits, the answer stays clean.
inline std::string demonstration_response(const task& t, rng& r, double padded,
                                          std::size_t max_chars = std::string::npos) {
    GPTX_CHECK(padded >= 0 && padded <= 1, "demonstration_response: padded fraction ", padded,
               " is not in [0, 1]");
    std::string s = t.answer;
    if (r.uniform_double() >= padded)
        return s;
    std::array<std::string_view, answer_padding.size()> fits{};
    std::size_t n = 0;
    for (std::string_view p : answer_padding)
        if (s.size() + p.size() <= max_chars)
            fits[n++] = p;
    if (n > 0)
        s += fits[r.below(n)];
    return s;
}

// Whether a response carries padding: one of the phrases, or the first five characters of one at
// its end (a sample the length cap cut off). Five, because " i t" is also how a sort answer ends.
inline bool is_padded(std::string_view response) {
    return std::any_of(answer_padding.begin(), answer_padding.end(), [&](std::string_view p) {
        if (response.find(p) != std::string_view::npos)
            return true;
        for (std::size_t k = 5; k < p.size(); ++k)
            if (response.ends_with(p.substr(0, k)))
                return true;
        return false;
    });
}

// Natural-ish text for pre-training, about `chars` bytes: filler sentences, the tasks' facts
// stated in prose ("the word kopa backwards is apok."), and question-answer snippets in the
// prompt format as found "on the web": some with wrong answers and some trailing chatter, and
// never an end-of-text, so the pre-trained model knows the tasks only roughly and does not know
// when to stop. Every character that task_prompt and the answers use appears in it.
inline std::string make_pretraining_corpus(std::uint64_t seed, std::size_t chars) {
    static constexpr std::array<std::string_view, 12> nouns = {
        "cat",   "dog",  "bird", "child", "farmer", "river",
        "house", "tree", "king", "ship",  "garden", "teacher"};
    static constexpr std::array<std::string_view, 10> verbs = {
        "saw",     "liked",  "found", "painted", "followed",
        "watched", "helped", "built", "heard",   "carried"};
    static constexpr std::array<std::string_view, 8> adjs = {"small", "old",  "green", "quiet",
                                                             "happy", "tall", "dark",  "bright"};
    rng r(seed);
    auto pick = [&](const auto& arr) { return std::string(arr[r.below(arr.size())]); };
    std::string out =
        "the letters are abcdefghijklmnopqrstuvwxyz, in capitals ABCDEFGHIJKLMNOPQRSTUVWXYZ, "
        "and the digits are 0123456789.\n";
    while (out.size() < chars) {
        const std::uint64_t kind = r.below(10);
        if (kind < 4) { // filler
            std::string s =
                "the " + pick(adjs) + " " + pick(nouns) + " " + pick(verbs) + " the " + pick(nouns);
            if (r.below(2))
                s += " near the " + pick(nouns);
            out += s + ".\n";
        } else if (kind < 7) { // facts in prose
            const task t = make_task(r);
            const auto& ins = t.instruction;
            if (auto w = detail::after(ins, "reverse "))
                out += "the word " + std::string(*w) + " backwards is " + t.answer + ".\n";
            else if (auto w2 = detail::after(ins, "uppercase "))
                out += std::string(*w2) + " in capitals is " + t.answer + ".\n";
            else if (auto w3 = detail::after(ins, "add "))
                out += std::string(*w3) + " make " + t.answer + ".\n";
            else if (auto w4 = detail::after(ins, "length of "))
                out += "the word " + std::string(*w4) + " has " + t.answer + " letters.\n";
            else if (auto w5 = detail::after(ins, "sort "))
                out += "in order, " + std::string(*w5) + " becomes " + t.answer + ".\n";
            else
                out += "the " + ins + " is " + t.answer + ".\n";
        } else { // question-answer snippets, noisy
            const task t = make_task(r);
            std::string ans = t.answer;
            const std::uint64_t noise = r.below(10);
            if (noise < 3)
                ans = make_task(r).answer; // a wrong answer (from another question)
            else if (noise < 5)
                ans += pick(answer_padding);
            out += task_prompt(t.instruction) + ans + "\n";
        }
    }
    return out;
}

} // namespace gptx::tasks
