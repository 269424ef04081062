#!/usr/bin/env bash
# The interactive `gptx chat` in a real terminal: tmux runs it in a detached session, keys are
# typed with send-keys and the screen is read with capture-pane. Checks that a reply streams (the
# screen shows it growing over several captures), that Ctrl-C stops a reply but not the program,
# and /reset and /quit.
# Usage: test_chat_tmux.sh GPTX MAKE_CHAT_FIXTURE WORKDIR   (exit 77 = skipped)
set -euo pipefail
gptx="$1" fixture="$2" work="$3"
if ! command -v tmux > /dev/null; then
  echo "SKIP: tmux is not installed (tools/setup.sh installs it)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
# CTest's chat_fixture test made the checkpoint once (GPTX_CHAT_FIXTURE_DIR); else make it here.
ckpt="${GPTX_CHAT_FIXTURE_DIR:-}"
if [[ -z "$ckpt" || ! -f "$ckpt/model.gptx" ]]; then
  ckpt="$work/ckpt"
  "$fixture" "$ckpt"
fi
session="gptx_chat_test_$$"
unset TMUX                 # also when the tests themselves run inside tmux
export TMUX_TMPDIR="$work" # a private tmux server
cleanup() { tmux kill-server 2> /dev/null || true; }
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "---- screen ----"
  tmux capture-pane -p -t "$session" || true
  exit 1
}
screen() { tmux capture-pane -p -t "$session"; }
# Waits up to 20 s for the screen to match a grep -E pattern.
wait_for() {
  for _ in $(seq 200); do
    screen | grep -qE "$1" && return 0
    sleep 0.1
  done
  fail "timed out waiting for /$1/"
}

# Waits until at least $2 screen lines match $1.
wait_for_count() {
  for _ in $(seq 200); do
    [ "$(screen | grep -cE "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "timed out waiting for $2 lines matching /$1/"
}

tmux new-session -d -s "$session" -x 200 -y 50 \
  "'$gptx' chat --checkpoint '$ckpt' --temperature 0 --token-delay-ms 150 --threads 2; echo CHAT-EXITED-\$?; sleep 30"
wait_for '^you> ?$'
echo "ok: banner and prompt"

# Streaming: a long reply at 150 ms per token; the reply line must be seen at several lengths.
tmux send-keys -t "$session" 'story' Enter
wait_for '^gptx> .'
lengths=()
for _ in $(seq 12); do
  line=$(screen | grep -E '^gptx> ' | tail -1)
  lengths+=("${#line}")
  sleep 0.25
done
wait_for '^you> ?$'
distinct=$(printf '%s\n' "${lengths[@]}" | sort -un | wc -l)
[ "$distinct" -ge 3 ] || fail "the reply did not stream (line lengths seen: ${lengths[*]})"
first_reply=$(screen | grep -E '^gptx> ' | tail -1)
[ "${#first_reply}" -gt 20 ] || fail "reply too short: '$first_reply'"
echo "ok: streaming (reply line lengths seen: ${lengths[*]})"

# Ctrl-C stops the reply, not the program.
tmux send-keys -t "$session" 'story' Enter
wait_for_count '^gptx> .{3}' 2
tmux send-keys -t "$session" C-c
wait_for '\[stopped\]'
wait_for '^you> ?$'
stopped=$(screen | grep -E '\[stopped\]' | tail -1)
[ "${#stopped}" -lt "$((${#first_reply} + 10))" ] || fail "Ctrl-C did not cut the reply: '$stopped'"
echo "ok: Ctrl-C stopped the reply and the chat goes on"

# /reset: the same message gets the first reply again (greedy decoding, fresh history).
tmux send-keys -t "$session" '/reset' Enter
wait_for 'conversation reset'
tmux send-keys -t "$session" 'story' Enter
wait_for_count '^gptx> .' 3
wait_for '^you> ?$'
again=$(screen | grep -E '^gptx> ' | tail -1)
[ "$again" = "$first_reply" ] || fail "after /reset: '$again', expected '$first_reply'"
echo "ok: /reset"

# /quit ends the program with status 0.
tmux send-keys -t "$session" '/quit' Enter
wait_for 'CHAT-EXITED-0'
echo "ok: /quit"
echo "PASS"
