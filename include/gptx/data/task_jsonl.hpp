// gptx/data/task_jsonl.hpp: labelled task files, one JSON object a line, in five forms:
// {"text","label"}, {"premise","hypothesis","label"}, {"a","b","label"},
// {"context","choices","label"}, {"input","output"}. Tested by tests/data/test_task_jsonl.cpp.
#pragma once
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/error.hpp"
#include "../core/file.hpp"

namespace gptx {

enum class task_form { text, entailment, similarity, choice, generation };

inline std::string_view task_form_keys(task_form f) {
    switch (f) {
    case task_form::text:
        return "{\"text\",\"label\"}";
    case task_form::entailment:
        return "{\"premise\",\"hypothesis\",\"label\"}";
    case task_form::similarity:
        return "{\"a\",\"b\",\"label\"}";
    case task_form::choice:
        return "{\"context\",\"choices\",\"label\"}";
    case task_form::generation:
        return "{\"input\",\"output\"}";
    }
    return "?";
}

// One example. first/second by form: text/-, premise/hypothesis, a/b, context/-, input/output.
struct task_example {
    std::string first, second;
    std::vector<std::string> choices; // choice form: the candidate completions
    int label = -1;                   // class, or the right choice; -1 for generation
    friend bool operator==(const task_example&, const task_example&) = default;
};

struct task_set {
    task_form form = task_form::text;
    std::vector<task_example> examples;
    // Classes of a labelled form: 1 + the largest label (choice: the most choices of a line).
    int classes() const {
        int k = 0;
        for (const auto& e : examples)
            k = std::max(k, form == task_form::choice ? int(e.choices.size()) : e.label + 1);
        return k;
    }
};

namespace detail {

inline std::string task_string(const nlohmann::json& j, const char* key, const std::string& where) {
    const auto it = j.find(key);
    GPTX_CHECK(it != j.end(), where, ": missing \"", key, "\"");
    GPTX_CHECK(it->is_string(), where, ": \"", key, "\" must be a string, got ", it->type_name());
    return it->get<std::string>();
}

inline int task_label(const nlohmann::json& j, const std::string& where) {
    const auto it = j.find("label");
    GPTX_CHECK(it != j.end(), where, ": missing \"label\"");
    GPTX_CHECK(it->is_number(), where, ": \"label\" must be an integer, got ", it->type_name());
    const double v = it->get<double>(); // 2.0 is a label; 1e20 is out of range, not a fraction
    GPTX_CHECK(std::trunc(v) == v, where, ": \"label\" must be an integer, got a fraction (",
               it->dump(), ")");
    GPTX_CHECK(v >= 0 && v < 1000000, where, ": \"label\" must be in [0, 1000000), got ",
               it->dump());
    return int(v);
}

inline task_form detect_task_form(const nlohmann::json& j, const std::string& where) {
    if (j.contains("choices"))
        return task_form::choice;
    if (j.contains("premise") || j.contains("hypothesis"))
        return task_form::entailment;
    if (j.contains("a") || j.contains("b"))
        return task_form::similarity;
    if (j.contains("text"))
        return task_form::text;
    if (j.contains("input") || j.contains("output"))
        return task_form::generation;
    detail::fail(where, ": not a task line: expected one of {\"text\",\"label\"}, "
                        "{\"premise\",\"hypothesis\",\"label\"}, {\"a\",\"b\",\"label\"}, "
                        "{\"context\",\"choices\",\"label\"}, {\"input\",\"output\"}");
}

inline task_example parse_task_line(const nlohmann::json& j, task_form f,
                                    const std::string& where) {
    task_example e;
    switch (f) {
    case task_form::text:
        e.first = task_string(j, "text", where);
        e.label = task_label(j, where);
        break;
    case task_form::entailment:
        e.first = task_string(j, "premise", where);
        e.second = task_string(j, "hypothesis", where);
        e.label = task_label(j, where);
        break;
    case task_form::similarity:
        e.first = task_string(j, "a", where);
        e.second = task_string(j, "b", where);
        e.label = task_label(j, where);
        break;
    case task_form::choice: {
        e.first = task_string(j, "context", where);
        const auto& c = j["choices"];
        GPTX_CHECK(c.is_array(), where, ": \"choices\" must be an array of strings, got ",
                   c.type_name());
        GPTX_CHECK(c.size() >= 2, where, ": \"choices\" needs at least 2 entries, got ", c.size());
        for (std::size_t i = 0; i < c.size(); ++i) {
            GPTX_CHECK(c[i].is_string(), where, ": choice ", i, " must be a string, got ",
                       c[i].type_name());
            GPTX_CHECK(!c[i].get<std::string>().empty(), where, ": choice ", i, " is empty");
            e.choices.push_back(c[i].get<std::string>());
        }
        e.label = task_label(j, where);
        GPTX_CHECK(e.label < int(e.choices.size()), where, ": \"label\" ", e.label,
                   " is not the index of one of the ", e.choices.size(), " choices");
        break;
    }
    case task_form::generation:
        e.first = task_string(j, "input", where);
        e.second = task_string(j, "output", where);
        GPTX_CHECK(!e.second.empty(), where, ": \"output\" is empty");
        break;
    }
    return e;
}

} // namespace detail

// Parses JSONL text; `name` is the file named in errors ("file:line: what is wrong"). Blank lines
// are skipped; every line must have the first line's form.
inline task_set parse_task_jsonl(std::string_view text, const std::string& name) {
    task_set out;
    bool have_form = false;
    std::size_t pos = 0;
    for (int n = 1; pos <= text.size(); ++n) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos)
            continue;
        const std::string where = name + ":" + std::to_string(n);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) { // parse_error, or out_of_range (1e999)
            detail::fail(where, ": not valid JSON (", e.what(), ")");
        }
        GPTX_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
        const task_form f = detail::detect_task_form(j, where);
        if (!have_form) {
            out.form = f;
            have_form = true;
        }
        GPTX_CHECK(f == out.form, where, ": a ", task_form_keys(f), " line in a file of ",
                   task_form_keys(out.form), " lines");
        out.examples.push_back(detail::parse_task_line(j, f, where));
    }
    GPTX_CHECK(!out.examples.empty(), name, ": no examples");
    return out;
}

inline task_set read_task_jsonl(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    GPTX_CHECK(in.good(), "cannot open '", path.string(), "'");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    GPTX_CHECK(!in.bad(), "cannot read '", path.string(), "'");
    return parse_task_jsonl(text, path.string());
}

inline nlohmann::json task_json(task_form f, const task_example& e) {
    switch (f) {
    case task_form::text:
        return {{"text", e.first}, {"label", e.label}};
    case task_form::entailment:
        return {{"premise", e.first}, {"hypothesis", e.second}, {"label", e.label}};
    case task_form::similarity:
        return {{"a", e.first}, {"b", e.second}, {"label", e.label}};
    case task_form::choice:
        return {{"context", e.first}, {"choices", e.choices}, {"label", e.label}};
    case task_form::generation:
        return {{"input", e.first}, {"output", e.second}};
    }
    return {};
}

// Writes path + ".tmp" and renames it over path: a reader never sees half a file.
inline void write_task_jsonl(const std::filesystem::path& path, const task_set& s) {
    std::string text;
    for (const auto& e : s.examples)
        text.append(task_json(s.form, e).dump()).push_back('\n');
    detail::write_whole_file(path, text);
}

} // namespace gptx
