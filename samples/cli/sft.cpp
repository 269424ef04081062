// samples/cli/sft.cpp: `gptx sft`, supervised fine-tuning of a checkpoint on JSONL
// {"prompt","response"} demonstrations, with model selection and exact resume: the options of
// run_sft (gptx/recipes/sft.hpp) and its dispatch on the checkpoint's shape.
// Tested by tests/cli/test_sft_cli.cpp.
#include <functional>

#include <CLI/CLI.hpp>

#include <gptx/recipes/sft.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "instances/sft.hpp"

namespace gptx::cli {

using sft_options = sft_run_options;

inline void add_sft_command(CLI::App& app, sft_options& o, std::function<void()>& run) {
    auto* c = app.add_subcommand(
        "sft", "Supervised fine-tuning on JSONL {\"prompt\",\"response\"} demonstrations (loss on "
               "the response and its end-of-text only)");
    auto* from = c->add_option("--init", o.init, "Checkpoint (file or run folder) to start from");
    add_weights_option(c, from, o.init);
    c->add_option("--data", o.data, "Demonstrations, JSONL {\"prompt\",\"response\"}")->required();
    c->add_option("--val-data", o.val_data,
                  "Held-out demonstrations: the model with the lowest loss on them is selected");
    c->add_option("--epochs", o.epochs, "Passes over the demonstrations");
    c->add_option("--batch", o.batch, "Packed rows (of the model's context) per step");
    c->add_option("--lr", o.lr, "Peak learning rate (cosine decay over all epochs)");
    c->add_option("--min-lr", o.min_lr, "Cosine floor (default: --lr / 10)");
    c->add_option("--warmup", o.warmup, "Linear warmup steps");
    c->add_option("--weight-decay", o.weight_decay, "AdamW decay on 2-D weights");
    c->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)");
    c->add_option("--dropout", o.dropout, "Dropout rate (InstructGPT's SFT: 0.2)");
    c->add_option("--select-every", o.select_every,
                  "Steps between model-selection points (default: every epoch)");
    c->add_option("--log-every", o.log_every, "Steps between progress lines");
    c->add_option("--seed", o.seed, "Seed for packing order, batches and dropout");
    c->add_option("--out", o.out,
                  "Run folder: model.gptx (latest), best.gptx (selected), metrics.jsonl");
    c->add_flag("--resume", o.resume, "Continue from DIR/model.gptx exactly where it stopped");
    c->add_option("--stop-at", o.stop_at, "Stop after this step, as if interrupted (for tests)")
        ->group("");
    c->callback([&] { run(); });
}

inline void sft_command(const sft_options& o) {
    validate_sft_options(o);
    fs::create_directories(o.out);
    const fs::path init = sft_start_checkpoint(o);
    const checkpoint_info info = read_model_info(init);
    const bool found = with_checkpoint_preset(info, [&]<shape S>() { run_sft<S>(o, init, info); });
    GPTX_CHECK(found, init.string(), ": no preset has the checkpoint's shape ",
               to_string(info.dims));
}

void add_sft_command(commands& cmds) { cmds.add(add_sft_command, sft_command); }

} // namespace gptx::cli
